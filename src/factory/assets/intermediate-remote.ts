// The intermediate cache's second level (src/imager/intermediate-cache.ts) in the cache repository, so that
// replicas sharing one (-cache-repository) share their intermediate results too (issue 18, docs/caches.md).
// An entry is an asset-cache entry in every respect (registry-cache.ts: one application/data layer, signed with
// the cache signing key, the signature and the layer digest checked on every read), tagged by a key of its
// own: the SHA-256 of a salt naming this use, the kind and the intermediate key. An asset key is the SHA-256 of
// a profile hash and its options (service.ts cacheKey), so the two never meet. Being asset-cache entries, they
// are listed, aged and collected by the asset cache's garbage collection with the assets (gc.ts).

import { createHash } from "node:crypto";
import type { IntermediateKind, IntermediateRemote } from "../../imager/intermediate-cache.ts";
import type { RegistryAssetCache } from "./registry-cache.ts";

/** Bump when the meaning of a remote intermediate entry changes (its bytes are already keyed by content). */
const salt = "boot-assets intermediate cache entry 1";

/** The cache repository tag of an intermediate entry. */
export function remoteIntermediateKey(kind: IntermediateKind, key: string): string {
  return createHash("sha256").update(`${salt}\n${kind}\n${key}`).digest("hex");
}

export function registryIntermediateRemote(
  cache: Pick<RegistryAssetCache, "description" | "copyTo" | "store">,
): IntermediateRemote {
  return {
    description: cache.description,
    get: (kind, key, dest, signal) => cache.copyTo(remoteIntermediateKey(kind, key), dest, signal),
    put: (kind, key, file, signal) => cache.store(remoteIntermediateKey(kind, key), file, signal),
  };
}
