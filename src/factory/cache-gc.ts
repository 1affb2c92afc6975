// `boot-assets factory gc`: one garbage collection of the asset cache, outside a running factory, with the
// factory's own configuration (the same flags). With the embedded store it needs the store's writer lock,
// so it runs while the factory is stopped (a running factory collects on its own schedule,
// -asset-cache-gc-interval, and knows what it is serving); with a remote cache repository it can run any
// time, and a running factory rebuilds what it finds gone. `--dry-run` reads the embedded store without the
// lock, so it also runs beside a running factory.

import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { IntermediateCache } from "../imager/intermediate-cache.ts";
import { RegistryClient } from "../oci/client/client.ts";
import { openStore, type RegistryStore } from "../registry/store.ts";
import { isNotFoundError } from "../util/fs.ts";
import { createRegistryAssetCache } from "./assets/factory.ts";
import { collectCacheGarbage, type GcOptions, type GcResult } from "./assets/gc.ts";
import type { FactoryConfig } from "./config/model.ts";
import { registryClientOptionsFor } from "./registry-access.ts";

/** The cache key; an ephemeral one when none exists yet (collection neither signs nor verifies). */
async function signingKey(config: FactoryConfig): Promise<KeyObject> {
  const key = config.cacheSigningKey;
  if (key.privateKey !== undefined) return key.privateKey;
  try {
    return createPrivateKey(await readFile(key.file));
  } catch (err) {
    if (!isNotFoundError(err)) throw err;
    return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
  }
}

export async function collectFactoryCacheGarbage(
  config: FactoryConfig,
  options: Omit<GcOptions, "signal"> & { signal?: AbortSignal; log?: (line: string) => void },
): Promise<GcResult & { cache: string }> {
  const location = config.stores.cache;
  let store: RegistryStore | undefined;
  const client = new RegistryClient(registryClientOptionsFor(config));
  try {
    // A dry run changes nothing, so it reads the store without its lock (beside a running factory).
    if (location.kind === "embedded")
      store = await openStore(config.dataDir.store, { readOnly: options.dryRun === true });
    const repository =
      location.kind === "embedded"
        ? (store as RegistryStore).repository(location.repository)
        : client.repository(location.reference);
    const cache = createRegistryAssetCache(
      config,
      {
        repository,
        privateKey: await signingKey(config),
        // This process holds the store's writer lock: no push can be half done, so no grace is needed.
        ...(store !== undefined ? { store, storeGcGraceMs: 0 } : {}),
      },
      join(config.dataDir.root, "assets"),
      options.log ?? (() => {}),
    );
    if (!options.dryRun) await cache.clearAbandoned();
    const result = await collectCacheGarbage(cache, options);
    // The intermediate cache (extension images) under the same age limit, with its own size limit.
    result.intermediate = await new IntermediateCache(join(config.dataDir.root, "intermediate")).collect({
      maxAgeMs: options.maxAgeMs,
      maxSizeBytes: config.cacheGc.intermediateMaxSizeBytes,
      ...(options.dryRun !== undefined ? { dryRun: options.dryRun } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    return { ...result, cache: cache.description };
  } finally {
    await client.close();
    await store?.close();
  }
}
