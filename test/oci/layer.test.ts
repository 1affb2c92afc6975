import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { buildLayer, decompressLayer, type LayerCompression } from "../../src/oci/layer.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { createTar, type TarEntry } from "../../src/oci/tar.ts";

const work = mkdtempSync(join(tmpdir(), "layer-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const entries: TarEntry[] = [
  { type: "file", path: "usr/lib/data.bin", content: Buffer.alloc(200_000, "talos ") },
  { type: "file", path: "etc/motd", content: Buffer.from("hello\n") },
  { type: "symlink", path: "usr/lib/alias", target: "data.bin" },
];
const expectedTar = () => buffer(createTar(entries));

const cases: Array<[LayerCompression, string, string[] | undefined]> = [
  ["gzip", MediaType.ociLayerGzip, ["gzip", "-dc"]],
  ["zstd", MediaType.ociLayerZstd, ["zstd", "-dcq"]],
  ["none", MediaType.ociLayerTar, undefined],
];

describe("buildLayer", () => {
  for (const [compression, mediaType, decompressCommand] of cases) {
    it(`${compression}: descriptor and diffID match what real tools compute`, async () => {
      const path = join(work, `layer-${compression}`);
      const built = await buildLayer(entries, path, { compression });
      const blob = readFileSync(path);
      assert.equal(built.descriptor.mediaType, mediaType);
      assert.equal(built.descriptor.size, blob.length);
      assert.equal(built.descriptor.digest, sha256(blob));
      const tarBytes = decompressCommand
        ? execFileSync(decompressCommand[0] as string, [...decompressCommand.slice(1), path], {
            maxBuffer: 64 << 20,
          })
        : blob;
      assert.equal(built.diffId, sha256(tarBytes));
      assert.equal(built.diffId, sha256(await expectedTar()));
      if (compression !== "none") assert.ok(blob.length < tarBytes.length / 10, "content should compress");
    });

    it(`${compression}: the same entries give the same blob digest twice`, async () => {
      const a = await buildLayer(entries, join(work, `again-a-${compression}`), { compression });
      const b = await buildLayer([...entries].reverse(), join(work, `again-b-${compression}`), { compression });
      assert.deepEqual(a, b);
    });
  }

  it("gzip header has no name, mtime 0 and the Unix OS byte", async () => {
    const path = join(work, "header.gz");
    await buildLayer(entries, path, { compression: "gzip" });
    const head = readFileSync(path).subarray(0, 10);
    assert.deepEqual([...head.subarray(0, 4)], [0x1f, 0x8b, 8, 0]); // deflate, no FNAME/FEXTRA/FCOMMENT flags
    assert.equal(head.readUInt32LE(4), 0);
    assert.equal(head[9], 3);
  });

  it("removes the partial file when the tar stream fails", async () => {
    const source = join(work, "source.bin");
    writeFileSync(source, Buffer.alloc(1000, 1));
    const path = join(work, "failed.tar.gz");
    await assert.rejects(
      buildLayer([{ type: "file", path: "x", sourcePath: source, size: 5000 }], path),
      (err: unknown) => isAppError(err, "Integrity") && err.message.includes('"x"'),
    );
    assert.equal(existsSync(path), false);
  });
});

describe("decompressLayer", () => {
  it("reads gzip and zstd layers compressed by the real tools, by media type", async () => {
    const tarPath = join(work, "plain.tar");
    const tarBytes = await expectedTar();
    writeFileSync(tarPath, tarBytes);
    execFileSync("gzip", ["-kf9", tarPath]);
    execFileSync("zstd", ["-qf", tarPath, "-o", `${tarPath}.zst`]);
    const gz = await buffer(decompressLayer(createReadStream(`${tarPath}.gz`), MediaType.dockerLayerGzip));
    const zst = await buffer(decompressLayer(createReadStream(`${tarPath}.zst`), MediaType.ociLayerZstd));
    const plain = await buffer(decompressLayer(createReadStream(tarPath), MediaType.ociLayerTar));
    assert.equal(sha256(gz), sha256(tarBytes));
    assert.equal(sha256(zst), sha256(tarBytes));
    assert.equal(sha256(plain), sha256(tarBytes));
  });

  it("reads every frame of a zstd layer made of several frames (as zstd:chunked layers are)", async () => {
    const tarBytes = await expectedTar();
    const half = Math.floor(tarBytes.length / 2);
    const first = execFileSync("zstd", ["-qc"], { input: tarBytes.subarray(0, half) });
    const second = execFileSync("zstd", ["-qc"], { input: tarBytes.subarray(half) });
    const out = await buffer(decompressLayer(Readable.from([Buffer.concat([first, second])]), MediaType.ociLayerZstd));
    assert.equal(sha256(out), sha256(tarBytes));
  });

  it("sniffs compressed content mislabelled as plain tar", async () => {
    const tarBytes = await expectedTar();
    for (const compression of ["gzip", "zstd"] as const) {
      const path = join(work, `mislabelled-${compression}`);
      await buildLayer(entries, path, { compression });
      const out = await buffer(decompressLayer(createReadStream(path), MediaType.ociLayerTar));
      assert.equal(sha256(out), sha256(tarBytes));
    }
  });

  it("handles a source that delivers one byte at a time", async () => {
    const path = join(work, "bytewise.gz");
    await buildLayer(entries, path, { compression: "gzip" });
    const bytes = readFileSync(path);
    async function* oneByOne() {
      for (let i = 0; i < bytes.length; i += i < 16 ? 1 : 4096) yield bytes.subarray(i, i < 16 ? i + 1 : i + 4096);
    }
    const out = await buffer(decompressLayer(Readable.from(oneByOne()), MediaType.ociLayerGzip));
    assert.equal(sha256(out), sha256(await expectedTar()));
  });

  it("refuses plain bytes labelled as gzip", async () => {
    await assert.rejects(
      buffer(decompressLayer(Readable.from([Buffer.from("not compressed at all")]), MediaType.ociLayerGzip)),
      (err: unknown) => isAppError(err, "Integrity") && err.message.includes("gzip"),
    );
  });

  it("refuses corrupt compressed data as Integrity", async () => {
    const path = join(work, "corrupt.gz");
    await buildLayer(entries, path, { compression: "gzip" });
    const bytes = readFileSync(path);
    bytes.fill(0x55, 20, 60);
    await assert.rejects(
      buffer(decompressLayer(Readable.from([bytes]), MediaType.ociLayerGzip)),
      (err: unknown) => isAppError(err, "Integrity") && err.message.includes("corrupt"),
    );
  });

  it("passes source errors through unchanged", async () => {
    const boom = new Error("connection reset");
    async function* failing() {
      yield Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
      throw boom;
    }
    await assert.rejects(buffer(decompressLayer(Readable.from(failing()), MediaType.ociLayerGzip)), boom);
  });
});
