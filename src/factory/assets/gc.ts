// Garbage collection of the asset cache (an addition: upstream's factory keeps every entry forever, and
// its operators ask for this). Two limits, either or both:
//   max age   entries not used (built or served) for longer are removed;
//   max size  then the least recently used are removed until the rest fit.
// An entry in use (being served or built by this process) is never removed; it waits for the next run.
// Afterwards the cache frees the bytes nothing references any more (the embedded store's sweep).

import type { IntermediateGcResult } from "../../imager/intermediate-cache.ts";
import { planEviction } from "../../util/eviction.ts";
import type { AssetCache } from "./cache.ts";

export interface GcOptions {
  /** Entries not used for longer are removed (undefined: no age limit). */
  maxAgeMs?: number | undefined;
  /** Least recently used entries are removed until the rest fit (undefined: no size limit). */
  maxSizeBytes?: number | undefined;
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface GcResult {
  removed: { key: string; size: number; reason: "age" | "size" }[];
  kept: number;
  keptBytes: number;
  /** Entries over a limit but in use: left for the next run. */
  inUse: number;
  /** Bytes the sweep freed (unreferenced store blobs, spool copies). */
  sweptBytes: number;
  /** What the intermediate cache's collection removed and kept, when it ran too. */
  intermediate?: IntermediateGcResult;
}

export async function collectCacheGarbage(
  cache: AssetCache,
  options: GcOptions,
  inUse: (key: string) => boolean = () => false,
): Promise<GcResult> {
  options.signal?.throwIfAborted();
  const plan = planEviction(await cache.list(options.signal), options, Date.now(), (entry) => inUse(entry.key));
  const result: GcResult = {
    removed: plan.remove.map(({ entry, reason }) => ({ key: entry.key, size: entry.size, reason })),
    kept: plan.keep.length,
    keptBytes: plan.keptBytes,
    inUse: plan.inUse,
    sweptBytes: 0,
  };
  if (!options.dryRun) {
    // One removal for all of them (a registry's tags are read once); what got a user meanwhile stays.
    const gone = result.removed.filter((entry) => !inUse(entry.key));
    for (const entry of result.removed.filter((e) => inUse(e.key))) {
      result.inUse++;
      result.kept++;
      result.keptBytes += entry.size;
    }
    result.removed = gone;
    await cache.remove(gone.map((entry) => entry.key));
    result.sweptBytes = await cache.sweep(options.signal);
  }
  return result;
}
