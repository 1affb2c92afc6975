// The eviction planner both caches use (src/util/eviction.ts): examples, then properties over random entries,
// limits and leases — it never removes a leased entry, what it keeps fits unless only leased entries are left,
// it removes the oldest first and no more than the limits ask.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { planEviction } from "../../src/util/eviction.ts";

interface Entry {
  id: number;
  size: number;
  lastUsedMs: number;
  leased: boolean;
}

const now = 1_000_000_000;
const entry = (id: number, size: number, ageMs: number, leased = false): Entry => ({
  id,
  size,
  lastUsedMs: now - ageMs,
  leased,
});
const ids = (entries: readonly { entry: Entry }[] | readonly Entry[]) =>
  entries.map((e) => ("entry" in e ? e.entry.id : e.id));

describe("planEviction", () => {
  it("without limits keeps everything", () => {
    const plan = planEviction([entry(1, 10, 5), entry(2, 20, 1)], {}, now);
    assert.deepEqual(plan.remove, []);
    assert.equal(plan.keptBytes, 30);
  });

  it("removes what is too old, then the least recently used until the rest fit", () => {
    const entries = [entry(1, 10, 100), entry(2, 10, 50), entry(3, 10, 40), entry(4, 10, 30), entry(5, 10, 1)];
    const plan = planEviction(entries, { maxAgeMs: 60, maxSizeBytes: 25 }, now);
    assert.deepEqual(
      plan.remove.map((r) => [r.entry.id, r.reason]),
      [
        [1, "age"],
        [2, "size"],
        [3, "size"],
      ],
    );
    assert.deepEqual(ids(plan.keep), [4, 5]);
    assert.equal(plan.keptBytes, 20);
  });

  it("keeps a leased entry over a limit, counts it, and removes the next one instead", () => {
    const entries = [entry(1, 10, 100, true), entry(2, 10, 50), entry(3, 10, 1)];
    const plan = planEviction(entries, { maxSizeBytes: 20 }, now, (e) => e.leased);
    assert.deepEqual(ids(plan.remove), [2]);
    assert.equal(plan.inUse, 1);
    assert.equal(plan.keptBytes, 20);
  });

  const arbitraryEntries = fc
    .array(
      fc.record({
        size: fc.nat({ max: 1000 }),
        ageMs: fc.nat({ max: 10_000 }),
        leased: fc.boolean(),
      }),
      { maxLength: 40 },
    )
    .map((list) => list.map((e, id) => entry(id, e.size, e.ageMs, e.leased)));
  const arbitraryLimits = fc.record({
    maxAgeMs: fc.option(fc.nat({ max: 10_000 }), { nil: undefined }),
    maxSizeBytes: fc.option(fc.nat({ max: 20_000 }), { nil: undefined }),
  });

  it("properties: partition, leases, fit, age, oldest first, minimal", () => {
    fc.assert(
      fc.property(arbitraryEntries, arbitraryLimits, (entries, limits) => {
        const plan = planEviction(entries, limits, now, (e) => e.leased);
        const removed = ids(plan.remove);
        const kept = ids(plan.keep);
        // Every entry is either removed or kept, once.
        assert.deepEqual(
          [...removed, ...kept].sort((x, y) => x - y),
          entries.map((e) => e.id),
        );
        assert.equal(
          plan.keptBytes,
          plan.keep.reduce((sum, e) => sum + e.size, 0),
        );
        // A leased entry is never removed.
        assert.ok(plan.remove.every((r) => !r.entry.leased));
        const keptFree = plan.keep.filter((e) => !e.leased);
        // What is kept fits, unless nothing unleased is left to remove.
        if (limits.maxSizeBytes !== undefined && plan.keptBytes > limits.maxSizeBytes)
          assert.equal(keptFree.length, 0, "over the size limit only with leased entries alone");
        // Age: what is kept is young enough, what goes for age is too old.
        if (limits.maxAgeMs !== undefined) {
          const maxAgeMs = limits.maxAgeMs;
          assert.ok(keptFree.every((e) => now - e.lastUsedMs <= maxAgeMs));
        }
        for (const r of plan.remove) {
          if (r.reason === "age") assert.ok(now - r.entry.lastUsedMs > (limits.maxAgeMs ?? Number.POSITIVE_INFINITY));
          else assert.notEqual(limits.maxSizeBytes, undefined);
        }
        // Oldest first: nothing removed for size is newer than an unleased entry kept.
        const newestBySize = Math.max(
          ...plan.remove.filter((r) => r.reason === "size").map((r) => r.entry.lastUsedMs),
          Number.NEGATIVE_INFINITY,
        );
        assert.ok(keptFree.every((e) => e.lastUsedMs >= newestBySize));
        // Minimal: the last entry removed for size was needed (keeping it would not have fit).
        const bySize = plan.remove.filter((r) => r.reason === "size");
        const last = bySize[bySize.length - 1];
        if (last !== undefined && limits.maxSizeBytes !== undefined)
          assert.ok(plan.keptBytes + last.entry.size > limits.maxSizeBytes);
        // Removed in order of last use.
        const order = plan.remove.map((r) => r.entry.lastUsedMs);
        assert.deepEqual(
          order,
          [...order].sort((x, y) => x - y),
        );
      }),
      { numRuns: 500 },
    );
  });
});
