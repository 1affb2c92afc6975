// Garbage collection of the asset cache (an addition: upstream's factory keeps every entry forever, and
// its operators ask for this). Two limits, either or both:
//   max age   entries not used (built or served) for longer are removed;
//   max size  then the least recently used are removed until the rest fit.
// An entry in use (being served or built by this process) is never removed; it waits for the next run.
// Afterwards the cache frees the bytes nothing references any more (the embedded store's sweep).

import type { IntermediateGcResult } from "../../imager/intermediate-cache.ts";
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
  const entries = (await cache.list(options.signal)).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  const now = Date.now();
  const result: GcResult = { removed: [], kept: 0, keptBytes: 0, inUse: 0, sweptBytes: 0 };
  let total = entries.reduce((sum, entry) => sum + entry.size, 0);
  for (const entry of entries) {
    options.signal?.throwIfAborted();
    const tooOld = options.maxAgeMs !== undefined && now - entry.lastUsedMs > options.maxAgeMs;
    const tooBig = options.maxSizeBytes !== undefined && total > options.maxSizeBytes;
    if (tooOld || tooBig) {
      if (!inUse(entry.key)) {
        total -= entry.size;
        result.removed.push({ key: entry.key, size: entry.size, reason: tooOld ? "age" : "size" });
        continue;
      }
      result.inUse++;
    }
    result.kept++;
    result.keptBytes += entry.size;
  }
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
