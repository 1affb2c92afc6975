// Shared by the catalog tests: pushing hand-made images, reading a catalog image with skopeo and GNU tar,
// and parsing the two catalog files by upstream's rules without the project's code (see catalog.test.ts).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import type { RegistryClient } from "../../src/oci/client/client.ts";
import { sha256Digest } from "../../src/oci/digest.ts";
import { buildLayer } from "../../src/oci/layer.ts";
import type { Descriptor, ImageManifest } from "../../src/oci/manifest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import type { TarEntry } from "../../src/oci/tar.ts";
import { skopeo } from "../realclients/skopeo.ts";

const execFileAsync = promisify(execFile);

/** Pushes an image of uncompressed tar layers (any headers: see test/oci/raw-tar.ts) and returns its digest. */
export async function pushRawImage(
  client: RegistryClient,
  reference: string,
  tag: string,
  layers: readonly Buffer[],
): Promise<string> {
  const repository = client.repository(reference);
  const descriptors: Descriptor[] = [];
  for (const layer of layers) {
    const descriptor = { mediaType: MediaType.ociLayerTar, digest: sha256Digest(layer), size: layer.length };
    await repository.putBlob(layer, descriptor);
    descriptors.push(descriptor);
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: descriptors.map((d) => d.digest) },
    }),
  );
  const configDescriptor = { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length };
  await repository.putBlob(config, configDescriptor);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: descriptors,
  };
  return repository.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, tag);
}

/** Pushes a single-layer extension image (manifest.yaml + rootfs) and returns its digest. */
export async function pushExtension(
  client: RegistryClient,
  reference: string,
  tag: string,
  manifestYaml: string | undefined,
  rootfs: TarEntry[],
  scratch: string,
): Promise<string> {
  const entries: TarEntry[] = [
    ...(manifestYaml === undefined
      ? []
      : [{ type: "file" as const, path: "manifest.yaml", mode: 0o644, content: Buffer.from(manifestYaml) }]),
    { type: "directory", path: "rootfs", mode: 0o755 },
    ...rootfs.map((e) => ({ ...e, path: `rootfs/${e.path}` })),
  ];
  const file = join(scratch, `${sha256Digest(reference).slice(7, 19)}.tar.gz`);
  const layer = await buildLayer(entries, file, { compression: "gzip", mtime: 0 });
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.diffId] } }),
  );
  const configDescriptor = { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: [layer.descriptor],
  };
  const repository = client.repository(reference);
  await repository.putBlob(await readFile(file), layer.descriptor);
  await repository.putBlob(config, configDescriptor);
  return repository.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, tag);
}

/** The layer's member names and two files, read by GNU tar from an OCI layout skopeo wrote. */
export async function readWithSkopeoAndTar(reference: string, dir: string) {
  await skopeo(["copy", "--src-tls-verify=false", `docker://${reference}`, `oci:${dir}:x`]);
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const blob = (digest: string) => join(dir, "blobs", "sha256", digest.slice("sha256:".length));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]?.digest ?? ""), "utf8")) as ImageManifest;
  // Later layers win, as when a runtime flattens the image.
  const layers = manifest.layers.map((l) => blob(l.digest));
  const names: string[] = [];
  const holder = new Map<string, string>();
  for (const layer of layers)
    for (const name of (await execFileAsync("tar", ["-tzf", layer])).stdout.split("\n").filter((n) => n !== "")) {
      names.push(name);
      holder.set(name, layer);
    }
  const member = async (name: string) => (await execFileAsync("tar", ["-xzOf", holder.get(name) ?? "", name])).stdout;
  return {
    layerCount: layers.length,
    names,
    imageDigests: await member("image-digests"),
    descriptions: await member("descriptions.yaml"),
  };
}

/** Upstream's rules, applied without the project's code: the lines and the mapping keyed by them. */
export function parseIndependently(imageDigests: string, descriptions: string) {
  const lines = imageDigests.split("\n").filter((l) => l.trim() !== "");
  assert.ok(imageDigests.endsWith("\n"), "image-digests ends with a newline");
  for (const line of lines)
    assert.match(line, /^[a-z0-9.:-]+\/[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]*@sha256:[0-9a-f]{64}$/, line);
  const docs = parseAllDocuments(descriptions);
  assert.ok(!Array.isArray(docs) || docs.length === 1, "descriptions.yaml is one YAML document");
  assert.ok(!descriptions.includes("\n---"), "no document separator");
  const mapping = (Array.isArray(docs) ? docs[0] : docs)?.toJS() as Record<
    string,
    { author: string; description: string }
  >;
  assert.deepEqual(Object.keys(mapping).sort(), [...lines].sort(), "descriptions keys are the image-digests lines");
  return {
    lines,
    entries: lines.map((line) => {
      const at = line.indexOf("@");
      const tagged = line.slice(0, at);
      const colon = tagged.lastIndexOf(":");
      const repository = tagged.slice(0, colon);
      return {
        path: repository.slice(repository.indexOf("/") + 1),
        tag: tagged.slice(colon + 1),
        digest: line.slice(at + 1),
        ...mapping[line],
      };
    }),
  };
}
