// Garbage collection of the embedded store (store.ts layout): mark and sweep, as distribution's
// `registry garbage-collect --delete-untagged=false` does for blobs.
//   mark   every manifest linked into any repository, and every blob such a manifest references
//          (config, layers, the manifests an index lists);
//   sweep  blob links no manifest of their repository references, and blob files nobody references.
// Things younger than the grace period are kept whatever the marks say: a push puts its blobs before the
// manifest that references them, so a blob seconds old may be waiting for its manifest.
// Runs in the process that holds the store's writer lock (the factory, on its schedule, or `factory gc`).

import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Digest, parseDigest } from "../oci/digest.ts";
import { parseManifest, referencedDescriptors } from "../oci/manifest.ts";
import { fileDigests } from "../util/file-digest.ts";
import { isNotFoundError } from "../util/fs.ts";
import type { RegistryStore } from "./store.ts";

export interface StoreGcResult {
  /** Blob files removed, and their bytes. */
  blobsRemoved: number;
  bytesFreed: number;
  /** Blob links removed from repositories. */
  linksRemoved: number;
}

/** Default grace period: longer than any push between its first blob and its manifest. */
export const defaultStoreGcGraceMs = 60 * 60 * 1000;

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFoundError(err)) return [];
    throw err;
  }
}

/** The digests named by `<dir>/<alg>/<hex>` files. */
async function digestsUnder(dir: string): Promise<{ digest: Digest; path: string }[]> {
  const found: { digest: Digest; path: string }[] = [];
  for (const algorithm of await entries(dir)) {
    for (const hex of await entries(join(dir, algorithm))) {
      try {
        found.push({ digest: parseDigest(`${algorithm}:${hex}`), path: join(dir, algorithm, hex) });
      } catch {
        // not a digest: not ours to judge
      }
    }
  }
  return found;
}

async function olderThan(path: string, cutoffMs: number): Promise<{ old: boolean; size: number }> {
  try {
    const info = await stat(path);
    return { old: info.mtimeMs < cutoffMs, size: info.size };
  } catch (err) {
    if (isNotFoundError(err)) return { old: false, size: 0 };
    throw err;
  }
}

export async function collectStoreGarbage(
  store: RegistryStore,
  options: { graceMs?: number; signal?: AbortSignal } = {},
): Promise<StoreGcResult> {
  if (store.readOnly) throw new Error("garbage collection needs the store open for writing");
  const cutoff = Date.now() - (options.graceMs ?? defaultStoreGcGraceMs);
  const result: StoreGcResult = { blobsRemoved: 0, bytesFreed: 0, linksRemoved: 0 };
  const referenced = new Set<string>();

  for (const repository of await store.listRepositories()) {
    options.signal?.throwIfAborted();
    const dir = join(store.root, "repositories", repository);
    const inRepository = new Set<string>();
    for (const { digest } of await digestsUnder(join(dir, "_manifests"))) {
      inRepository.add(digest);
      let body: Buffer;
      try {
        body = await readFile(store.blobFile(digest));
      } catch (err) {
        if (isNotFoundError(err)) continue;
        throw err;
      }
      try {
        for (const descriptor of referencedDescriptors(parseManifest(body).manifest))
          inRepository.add(descriptor.digest);
      } catch {
        // a manifest we cannot parse keeps only itself
      }
    }
    for (const { digest, path } of await digestsUnder(join(dir, "_blobs"))) {
      if (inRepository.has(digest)) continue;
      if (!(await olderThan(path, cutoff)).old) {
        inRepository.add(digest);
        continue;
      }
      await rm(path, { force: true });
      result.linksRemoved++;
    }
    for (const digest of inRepository) referenced.add(digest);
  }

  for (const { digest, path } of await digestsUnder(join(store.root, "blobs"))) {
    options.signal?.throwIfAborted();
    if (referenced.has(digest)) continue;
    const { old, size } = await olderThan(path, cutoff);
    if (!old) continue;
    await rm(path, { force: true });
    result.blobsRemoved++;
    result.bytesFreed += size;
  }
  return result;
}

/**
 * Removes a blob file whose bytes no longer match its digest (damaged on disk), so the next push of that
 * digest writes it again instead of linking the damaged file. Returns whether it was removed.
 */
export async function removeDamagedBlob(store: RegistryStore, digest: Digest): Promise<boolean> {
  const path = store.blobFile(digest);
  let actual: string;
  try {
    const algorithm = digest.slice(0, digest.indexOf(":"));
    if (algorithm !== "sha256" && algorithm !== "sha512") return false;
    actual = (await fileDigests(path, [algorithm])).digests[algorithm] as string;
  } catch (err) {
    if (isNotFoundError(err)) return false;
    throw err;
  }
  if (actual === digest) return false;
  await rm(path, { force: true });
  return true;
}
