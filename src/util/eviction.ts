// The one eviction rule of the factory's caches (the asset cache, src/factory/assets/gc.ts, and the intermediate
// cache, src/imager/intermediate-cache.ts), as a pure plan: given every entry with its size and last use,
// which go and why. Two limits, either or both:
//   max age   entries not used for longer than maxAgeMs go;
//   max size  then the least recently used go until the rest fit in maxSizeBytes.
// An entry in use (leased) never goes; it stays counted in the total and waits for the next run. Entries are
// considered oldest first, so of two entries over the size limit the older goes first.

export interface EvictionCandidate {
  size: number;
  /** Last use, ms since the epoch. */
  lastUsedMs: number;
}

export interface EvictionLimits {
  /** Entries not used for longer go (undefined: no age limit). */
  maxAgeMs?: number | undefined;
  /** Least recently used entries go until the rest fit (undefined: no size limit). */
  maxSizeBytes?: number | undefined;
}

export interface EvictionPlan<T extends EvictionCandidate> {
  /** Oldest first, with the limit that removes each. */
  remove: { entry: T; reason: "age" | "size" }[];
  /** Everything else, leased entries over a limit included. */
  keep: T[];
  /** Entries over a limit but in use. */
  inUse: number;
  keptBytes: number;
}

export function planEviction<T extends EvictionCandidate>(
  entries: readonly T[],
  limits: EvictionLimits,
  now: number,
  inUse: (entry: T) => boolean = () => false,
): EvictionPlan<T> {
  const sorted = [...entries].sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  const plan: EvictionPlan<T> = { remove: [], keep: [], inUse: 0, keptBytes: 0 };
  let total = sorted.reduce((sum, entry) => sum + entry.size, 0);
  for (const entry of sorted) {
    const tooOld = limits.maxAgeMs !== undefined && now - entry.lastUsedMs > limits.maxAgeMs;
    const tooBig = limits.maxSizeBytes !== undefined && total > limits.maxSizeBytes;
    if (tooOld || tooBig) {
      if (!inUse(entry)) {
        total -= entry.size;
        plan.remove.push({ entry, reason: tooOld ? "age" : "size" });
        continue;
      }
      plan.inUse++;
    }
    plan.keep.push(entry);
    plan.keptBytes += entry.size;
  }
  return plan;
}
