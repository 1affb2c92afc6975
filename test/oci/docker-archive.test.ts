import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import tar from "tar-stream";
import { type DockerArchiveImage, dockerArchiveEntries, writeDockerArchive } from "../../src/oci/docker-archive.ts";
import { type BuiltLayer, buildLayer, decompressLayer } from "../../src/oci/layer.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { skopeo } from "../realclients/skopeo.ts";

let dir: string;
let image: DockerArchiveImage;
let layers: BuiltLayer[];
let archive: string;

/** name → { header, content } of every entry of a tar stream. */
async function readTar(source: Readable): Promise<Map<string, { header: tar.Header; content: Buffer }>> {
  const out = new Map<string, { header: tar.Header; content: Buffer }>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      out.set(entry.header.name, { header: entry.header, content: Buffer.concat(chunks) });
    }
  })();
  source.pipe(extract);
  await done;
  return out;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "docker-archive-"));
  layers = [
    await buildLayer(
      [{ type: "file", path: "usr/install/amd64/vmlinuz", content: Buffer.from("kernel bytes") }],
      join(dir, "layer1.tar.gz"),
      { mtime: 0 },
    ),
    await buildLayer(
      [{ type: "file", path: "usr/install/amd64/initramfs.xz", content: Buffer.from("initramfs bytes") }],
      join(dir, "layer2.tar"),
      { mtime: 0, compression: "none" },
    ),
  ];
  const config = {
    architecture: "amd64",
    os: "linux",
    config: { Entrypoint: ["/bin/installer"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  };
  image = {
    config: Buffer.from(JSON.stringify(config)),
    layers: layers.map((l, i) => ({
      path: join(dir, i === 0 ? "layer1.tar.gz" : "layer2.tar"),
      digest: l.descriptor.digest,
      size: l.descriptor.size,
      mediaType: l.descriptor.mediaType,
    })),
    repoTags: ["ghcr.io/siderolabs/installer:v1.10.3", "installer:latest"],
  };
  archive = join(dir, "installer-amd64.tar");
  await writeDockerArchive(image, archive, { mtime: 1700000000 });
});
after(() => rm(dir, { recursive: true, force: true }));

describe("docker-save archive", () => {
  test("holds manifest.json, index.json, oci-layout and the blobs; root-owned, fixed mtime, sorted", async () => {
    const entries = await readTar(createReadStream(archive));
    const names = [...entries.keys()];
    assert.deepEqual(names, [...names].sort());
    for (const { header } of entries.values()) {
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.equal(header.mtime?.getTime(), 1700000000_000);
    }
    const manifest = JSON.parse(entries.get("manifest.json")?.content.toString() ?? "");
    assert.equal(manifest.length, 1);
    assert.deepEqual(manifest[0].RepoTags, image.repoTags);
    assert.deepEqual(
      manifest[0].Layers,
      layers.map((l) => `blobs/sha256/${l.descriptor.digest.slice(7)}`),
    );
    assert.deepEqual(entries.get(manifest[0].Config)?.content, Buffer.from(image.config));
    assert.deepEqual(JSON.parse(entries.get("oci-layout")?.content.toString() ?? ""), { imageLayoutVersion: "1.0.0" });
    const index = JSON.parse(entries.get("index.json")?.content.toString() ?? "");
    assert.deepEqual(
      index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations["io.containerd.image.name"]),
      ["ghcr.io/siderolabs/installer:v1.10.3", "docker.io/library/installer:latest"],
    );
    const ociManifest = JSON.parse(
      entries.get(`blobs/sha256/${index.manifests[0].digest.slice(7)}`)?.content.toString() ?? "",
    );
    assert.equal(ociManifest.mediaType, MediaType.ociManifest);
    assert.deepEqual(
      ociManifest.layers.map((l: { digest: string }) => l.digest),
      layers.map((l) => l.descriptor.digest),
    );
    assert.deepEqual(entries.get(manifest[0].Layers[0])?.content, await readFile(join(dir, "layer1.tar.gz")));
  });

  test("same inputs, same bytes", async () => {
    const again = join(dir, "again.tar");
    await writeDockerArchive(image, again, { mtime: 1700000000 });
    assert.deepEqual(await readFile(again), await readFile(archive));
  });

  test("skopeo inspect docker-archive: reads it (architecture, os, one layer per diff_id)", async () => {
    const info = JSON.parse(await skopeo(["inspect", `docker-archive:${archive}`]));
    assert.equal(info.Architecture, "amd64");
    assert.equal(info.Os, "linux");
    assert.equal(info.Layers.length, 2);
  });

  test("skopeo copy docker-archive: → oci: keeps the config and the layer contents", async () => {
    const layout = join(dir, "layout");
    await skopeo(["copy", `docker-archive:${archive}`, `oci:${layout}:copied`]);
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(
      await readFile(join(layout, "blobs", "sha256", index.manifests[0].digest.slice(7)), "utf8"),
    );
    const config = await readFile(join(layout, "blobs", "sha256", manifest.config.digest.slice(7)));
    assert.deepEqual(JSON.parse(config.toString()).rootfs, JSON.parse(Buffer.from(image.config).toString()).rootfs);
    const contents: string[] = [];
    for (const l of manifest.layers) {
      const blob = createReadStream(join(layout, "blobs", "sha256", l.digest.slice(7)));
      for (const [name, { content }] of await readTar(decompressLayer(blob, l.mediaType)))
        if (content.length > 0) contents.push(`${name}=${content}`);
    }
    assert.deepEqual(contents, [
      "usr/install/amd64/vmlinuz=kernel bytes",
      "usr/install/amd64/initramfs.xz=initramfs bytes",
    ]);
  });

  test("the same file is a valid oci-archive: too", async () => {
    const info = JSON.parse(await skopeo(["inspect", `oci-archive:${archive}:v1.10.3`]));
    assert.equal(info.Architecture, "amd64");
  });

  test("a layer used twice is stored once; a tag with a digest is refused", async () => {
    const twice = { ...image, layers: [image.layers[0], image.layers[0]] } as DockerArchiveImage;
    const blobs = dockerArchiveEntries(twice).filter((e) => e.path.startsWith("blobs/"));
    assert.equal(blobs.length, 3); // config, manifest, one layer
    assert.throws(() => dockerArchiveEntries({ ...image, repoTags: [`x@sha256:${"0".repeat(64)}`] }), /name:tag/);
    assert.ok((await stat(archive)).size > 0);
  });

  test("a layer file of the wrong size fails the write and leaves no file", async () => {
    const broken = join(dir, "broken.tar");
    const bad = { ...image, layers: [{ ...(image.layers[0] as DockerArchiveImage["layers"][0]), size: 3 }] };
    await assert.rejects(writeDockerArchive(bad, broken), /larger than 3 bytes|expected 3/);
    await assert.rejects(stat(broken), { code: "ENOENT" });
  });
});
