import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { createCpio } from "../../src/formats/cpio.ts";
import {
  type Compression,
  createCompressor,
  createDecompressor,
  detectCompression,
  readInitramfs,
  writeCompressedCpio,
} from "../../src/tools/compression.ts";
import { findTool } from "../../src/tools/run.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "compression-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const hasCpio = findTool({ command: "cpio", debianPackage: "cpio" }) !== undefined;

describe("compression", () => {
  for (const kind of ["zstd", "xz", "gzip"] as Compression[])
    test(`${kind}: round trip, detected by magic, readable by the ${kind} CLI`, async () => {
      const data = Buffer.from("initramfs ".repeat(10_000));
      const compressed = await collect(Readable.from([data]).pipe(createCompressor(kind, { level: 3 })));
      assert.equal(detectCompression(compressed), kind);
      assert.ok(compressed.length < data.length / 10);
      assert.deepEqual(await collect(Readable.from([compressed]).pipe(createDecompressor(kind))), data);
      const cli = kind === "gzip" ? "gzip" : kind;
      assert.deepEqual(execFileSync(cli, ["-d", "-c"], { input: compressed, maxBuffer: 1 << 26 }), data);
    });

  test("detects an uncompressed newc cpio as none and unknown data as undefined", async () => {
    const cpio = await collect(createCpio([{ type: "file", path: "a", content: Buffer.from("1") }]));
    assert.equal(detectCompression(cpio), "none");
    assert.equal(detectCompression(Buffer.from("hello world")), undefined);
  });
});

describe("initramfs as concatenated compressed cpio archives", () => {
  test("microcode (plain) + base (zstd) + appended extensions (zstd) read back in order", async () => {
    const initramfs = join(dir, "initramfs.xz");
    // Upstream's layout: an uncompressed early cpio in front, then the compressed base, then the append.
    await writeFile(
      initramfs,
      await collect(
        createCpio([{ type: "file", path: "kernel/x86/microcode/GenuineIntel.bin", content: Buffer.from("ucode") }]),
      ),
    );
    await writeCompressedCpio(
      [
        { type: "file", path: "init", mode: 0o755, content: Buffer.from("#!/bin/sh\n") },
        { type: "file", path: "rootfs.sqsh", content: Buffer.from("squash") },
      ],
      initramfs,
      { compression: "zstd", append: true, level: 3 },
    );
    const written = await writeCompressedCpio(
      [
        { type: "file", path: "0.sqsh", content: Buffer.from("ext") },
        { type: "file", path: "extensions.yaml", content: Buffer.from("layers: []\n") },
      ],
      initramfs,
      { compression: "zstd", append: true },
    );
    assert.ok(written > 0);
    const seen: string[] = [];
    for await (const record of readInitramfs(initramfs))
      if (record.type === "file")
        seen.push(`${record.segment}:${record.path}=${(await collect(record.data)).toString()}`);
    assert.deepEqual(seen, [
      "0:kernel/x86/microcode/GenuineIntel.bin=ucode",
      "1:init=#!/bin/sh\n",
      "1:rootfs.sqsh=squash",
      "1:0.sqsh=ext",
      "1:extensions.yaml=layers: []\n",
    ]);
  });

  test("xz (crc32 check, as the kernel needs) base + append read back, and cpio -t agrees", async () => {
    const initramfs = join(dir, "initramfs-xz");
    await writeCompressedCpio([{ type: "file", path: "init", content: Buffer.from("i") }], initramfs, {
      compression: "xz",
    });
    await writeCompressedCpio([{ type: "file", path: "1.sqsh", content: Buffer.from("s") }], initramfs, {
      compression: "xz",
      append: true,
    });
    const info = execFileSync("xz", ["--robot", "--list", initramfs], { encoding: "utf8" });
    assert.match(info, /\tCRC32\t/);
    const paths: string[] = [];
    for await (const record of readInitramfs(initramfs)) paths.push(record.path);
    assert.deepEqual(paths, ["init", "1.sqsh"]);
    if (hasCpio) {
      // GNU cpio stops at the first trailer; the first archive is what it lists.
      const plain = execFileSync("xz", ["-dc", initramfs]);
      const listed = execFileSync("cpio", ["-t", "--quiet"], { input: plain, encoding: "utf8" });
      assert.equal(listed, "init\n");
      assert.ok((await readFile(initramfs)).length > 0);
    }
  });
});

test("zstd: concatenated frames decompress completely (Node's zlib alone stops after the first)", async () => {
  const frames = await Promise.all(
    ["first ", "second"].map((text) => collect(Readable.from([Buffer.from(text)]).pipe(createCompressor("zstd")))),
  );
  const joined = Buffer.concat(frames);
  assert.equal((await collect(Readable.from([joined]).pipe(createDecompressor("zstd")))).toString(), "first second");
});
