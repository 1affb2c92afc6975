import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { buildLayer } from "../../src/oci/layer.ts";
import { OciLayout, refNameAnnotation } from "../../src/oci/layout.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";

const work = mkdtempSync(join(tmpdir(), "layout-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const skopeo = (...args: string[]) => execFileSync("skopeo", args, { encoding: "utf8", timeout: 60_000 });

/** Writes a one-layer image into the layout and names it `refName`; returns what was written. */
async function writeImage(layout: OciLayout, refName: string, text: string) {
  const layerPath = join(work, `layer-${refName}.tar.gz`);
  const layer = await buildLayer([{ type: "file", path: "hello.txt", content: Buffer.from(text) }], layerPath);
  await layout.putBlob(createReadStream(layerPath), { digest: layer.descriptor.digest, size: layer.descriptor.size });
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [layer.diffId] },
    }),
  );
  const configInfo = await layout.putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configInfo.digest, size: configInfo.size },
      layers: [layer.descriptor],
    }),
  );
  const descriptor = await layout.putManifest(manifest, MediaType.ociManifest);
  await layout.addToIndex(descriptor, refName);
  return { descriptor, manifest, layer, layerBytes: readFileSync(layerPath), config };
}

describe("OCI image layout", () => {
  it("creates the marker, index and blob files the spec describes", async () => {
    const dir = join(work, "fresh");
    const layout = await OciLayout.create(dir);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8")), { imageLayoutVersion: "1.0.0" });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "index.json"), "utf8")), {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [],
    });
    const info = await layout.putBlob(Buffer.from("hello"));
    assert.equal(info.digest, sha256(Buffer.from("hello")));
    assert.equal(readFileSync(join(dir, "blobs/sha256", info.digest.slice(7)), "utf8"), "hello");
    assert.deepEqual(readdirSync(join(dir, "blobs/sha256")), [info.digest.slice(7)], "no temp files left");
  });

  it("is read by the real skopeo: inspect and copy out byte-identical", async () => {
    const dir = join(work, "for-skopeo");
    const layout = await OciLayout.create(dir);
    const image = await writeImage(layout, "v1", "hi from the layout");
    const inspected = JSON.parse(skopeo("inspect", `oci:${dir}:v1`)) as { Digest: string; Layers: string[] };
    assert.equal(inspected.Digest, sha256(image.manifest));
    assert.deepEqual(inspected.Layers, [image.layer.descriptor.digest]);

    const out = join(work, "skopeo-dir");
    skopeo("copy", `oci:${dir}:v1`, `dir:${out}`);
    assert.deepEqual(readFileSync(join(out, "manifest.json")), image.manifest);
    assert.deepEqual(readFileSync(join(out, image.layer.descriptor.digest.slice(7))), image.layerBytes);
    assert.deepEqual(readFileSync(join(out, sha256(image.config).slice(7))), image.config);
  });

  it("reads a layout skopeo wrote, verifying blobs", async () => {
    const source = join(work, "source");
    const sourceLayout = await OciLayout.create(source);
    const image = await writeImage(sourceLayout, "orig", "round trip");
    const copied = join(work, "skopeo-wrote");
    skopeo("copy", `oci:${source}:orig`, `oci:${copied}:copy`);
    const layout = await OciLayout.open(copied);
    const descriptor = await layout.resolve("copy");
    assert.equal(descriptor.digest, image.descriptor.digest);
    const manifest = JSON.parse((await buffer(await layout.getBlob(descriptor.digest))).toString("utf8"));
    const layerDigest = manifest.layers[0].digest as Digest;
    assert.deepEqual(await buffer(await layout.getBlob(layerDigest)), image.layerBytes);
  });

  it("replaces the index entry with the same ref name and keeps others", async () => {
    const dir = join(work, "refs");
    const layout = await OciLayout.create(dir);
    const first = await writeImage(layout, "latest", "one");
    await writeImage(layout, "stable", "two");
    const third = await writeImage(layout, "latest", "three");
    const index = await layout.readIndex();
    assert.deepEqual(
      index.manifests.map((m) => [m.annotations?.[refNameAnnotation], m.digest]),
      [
        ["stable", (await layout.resolve("stable")).digest],
        ["latest", third.descriptor.digest],
      ],
    );
    assert.notEqual(first.descriptor.digest, third.descriptor.digest);
    const inspected = JSON.parse(skopeo("inspect", `oci:${dir}:latest`)) as { Digest: string };
    assert.equal(inspected.Digest, third.descriptor.digest);
  });

  it("refuses content that does not match the expected digest or size, storing nothing", async () => {
    const dir = join(work, "bad");
    const layout = await OciLayout.create(dir);
    const claimed = sha256(Buffer.from("the real thing"));
    await assert.rejects(
      layout.putBlob(Readable.from([Buffer.from("an impostor")]), { digest: claimed }),
      (err: unknown) => isAppError(err, "Integrity") && err.code === "DIGEST_INVALID",
    );
    await assert.rejects(
      layout.putBlob(Buffer.from("the real thing"), { digest: claimed, size: 3 }),
      (err: unknown) => isAppError(err, "Integrity") && err.code === "SIZE_INVALID",
    );
    assert.equal(await layout.hasBlob(claimed), false);
    assert.deepEqual(readdirSync(join(dir, "blobs/sha256")), []);
  });

  it("fails reading a blob whose file was corrupted on disk", async () => {
    const dir = join(work, "corrupt");
    const layout = await OciLayout.create(dir);
    const info = await layout.putBlob(Buffer.from("original content"));
    writeFileSync(layout.blobPath(info.digest), "tampered content");
    await assert.rejects(buffer(await layout.getBlob(info.digest)), (err: unknown) => isAppError(err, "Integrity"));
  });

  it("reports missing blobs, refs and layouts as NotFound, and refuses bad manifests and ref names", async () => {
    const dir = join(work, "errors");
    const layout = await OciLayout.create(dir);
    await assert.rejects(layout.getBlob(sha256(Buffer.from("absent"))), (err: unknown) => isAppError(err, "NotFound"));
    await assert.rejects(layout.resolve("nope"), (err: unknown) => isAppError(err, "NotFound"));
    await assert.rejects(OciLayout.open(join(work, "no-such-layout")), (err: unknown) => isAppError(err, "NotFound"));
    await assert.rejects(
      layout.putManifest(Buffer.from('{"schemaVersion":1}'), MediaType.ociManifest),
      (err: unknown) => isAppError(err, "BadRequest") && err.code === "MANIFEST_INVALID",
    );
    const descriptor = { mediaType: MediaType.ociManifest, digest: sha256(Buffer.from("x")), size: 1 };
    await assert.rejects(layout.addToIndex(descriptor, "bad name!"), (err: unknown) => isAppError(err, "BadRequest"));
  });

  it("serializes concurrent index updates without losing entries", async () => {
    const dir = join(work, "concurrent");
    const layout = await OciLayout.create(dir);
    const names = Array.from({ length: 10 }, (_, i) => `tag-${i}`);
    await Promise.all(
      names.map((name, i) =>
        layout.addToIndex({ mediaType: MediaType.ociManifest, digest: sha256(Buffer.from(String(i))), size: 1 }, name),
      ),
    );
    const refs = (await layout.readIndex()).manifests.map((m) => m.annotations?.[refNameAnnotation]).sort();
    assert.deepEqual(refs, [...names].sort());
  });
});
