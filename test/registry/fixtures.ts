// Test content for the registry tests: blobs, image manifests and indexes built by hand (digests computed here
// with node:crypto, not by the code under test), and a check that a store's files are all where they belong.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";

export const ociManifest = "application/vnd.oci.image.manifest.v1+json";
export const ociIndex = "application/vnd.oci.image.index.v1+json";
export const ociConfig = "application/vnd.oci.image.config.v1+json";
export const ociLayer = "application/vnd.oci.image.layer.v1.tar+gzip";

export function sha256(data: Uint8Array | string): `sha256:${string}` {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface TestBlob {
  data: Buffer;
  digest: `sha256:${string}`;
  size: number;
}

export function testBlob(content: string | Buffer): TestBlob {
  const data = Buffer.from(content);
  return { data, digest: sha256(data), size: data.length };
}

export function descriptor(mediaType: string, blob: TestBlob, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: blob.digest, size: blob.size, ...extra };
}

/** An image manifest (its bytes as a blob) for a config and layers. */
export function imageManifest(config: TestBlob, layers: TestBlob[], extra: Record<string, unknown> = {}): TestBlob {
  return testBlob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: ociManifest,
      config: descriptor(ociConfig, config),
      layers: layers.map((layer) => descriptor(ociLayer, layer)),
      ...extra,
    }),
  );
}

/** A small, valid single-platform image: config, one layer and the manifest. */
export function testImage(architecture: string, label = "") {
  const config = testBlob(
    JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: [] }, label }),
  );
  const layer = testBlob(`layer for ${architecture} ${label} ${"x".repeat(100)}`);
  const manifest = imageManifest(config, [layer]);
  return { config, layer, manifest };
}

export function imageIndex(entries: { manifest: TestBlob; architecture: string }[]): TestBlob {
  return testBlob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: ociIndex,
      manifests: entries.map((entry) =>
        descriptor(ociManifest, entry.manifest, { platform: { architecture: entry.architecture, os: "linux" } }),
      ),
    }),
  );
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}

/**
 * Asserts the store under `root` is consistent: every file is a known top-level file, a blob whose bytes
 * hash to its name, a repository link/tag, or (when allowed) a temp file. Returns the blob digests found.
 */
export async function assertStoreConsistent(root: string, options: { allowTemp?: boolean } = {}): Promise<string[]> {
  const blobs: string[] = [];
  for (const path of await walk(root)) {
    const rel = relative(root, path);
    if (rel === "store-format.json" || rel === "lock") continue;
    if (rel.startsWith("tmp/")) {
      assert.ok(options.allowTemp, `unexpected temp file ${rel}`);
      continue;
    }
    const blobMatch = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(rel);
    if (blobMatch) {
      const digest = `sha256:${blobMatch[1]}`;
      assert.equal(sha256(await readFile(path)), digest, `blob file ${rel} does not hash to its name`);
      blobs.push(digest);
      continue;
    }
    assert.match(rel, /^repositories\/.+\/_(blobs|manifests|tags|referrers)\/.+$/, `stray file ${rel}`);
  }
  return blobs.sort();
}
