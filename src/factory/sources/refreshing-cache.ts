// A small keyed cache that loads each key once (concurrent callers share the load), serves what it has from
// memory, and re-loads a key in the background once it is older than the refresh interval while still
// serving the old value. A failed background re-load keeps the old value (reported to `onRefreshError`) and
// is tried again an interval later; a failed first load is not cached, so the next caller tries again.

import type { Clock } from "./runtime.ts";

export interface RefreshingCacheOptions<V> {
  refreshIntervalMs: number;
  /** Keys kept; the least recently used is dropped beyond it. */
  maxEntries: number;
  clock: Clock;
  /** Loads a key; `previous` is the value being refreshed, if any (lets the loader reuse unchanged content). */
  load: (key: string, previous: V | undefined) => Promise<V>;
  onRefreshError: (key: string, err: unknown) => void;
}

interface Entry<V> {
  value?: V;
  /** When the value was last loaded or a refresh of it last attempted. */
  checkedAt: number;
  inflight?: Promise<V>;
}

export class RefreshingCache<V> {
  readonly #options: RefreshingCacheOptions<V>;
  readonly #entries = new Map<string, Entry<V>>();

  constructor(options: RefreshingCacheOptions<V>) {
    this.#options = options;
  }

  get(key: string): Promise<V> {
    const { clock, refreshIntervalMs } = this.#options;
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      // Most recently used last.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    if (entry?.value !== undefined) {
      if (entry.inflight === undefined && clock.now() - entry.checkedAt >= refreshIntervalMs) this.#refresh(key, entry);
      return Promise.resolve(entry.value);
    }
    if (entry?.inflight !== undefined) return entry.inflight;
    const created: Entry<V> = { checkedAt: clock.now() };
    this.#entries.set(key, created);
    this.#evict();
    created.inflight = this.#options.load(key, undefined).then(
      (value) => {
        created.value = value;
        created.checkedAt = clock.now();
        created.inflight = undefined;
        return value;
      },
      (err: unknown) => {
        if (this.#entries.get(key) === created) this.#entries.delete(key);
        throw err;
      },
    );
    return created.inflight;
  }

  /** Waits for every load under way (failures ignored). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#entries.values()].map((e) => e.inflight));
  }

  #refresh(key: string, entry: Entry<V>): void {
    const { clock } = this.#options;
    entry.inflight = this.#options.load(key, entry.value).then(
      (value) => {
        entry.value = value;
        return value;
      },
      (err: unknown) => {
        this.#options.onRefreshError(key, err);
        return entry.value as V;
      },
    );
    void entry.inflight.finally(() => {
      entry.checkedAt = clock.now();
      entry.inflight = undefined;
    });
  }

  #evict(): void {
    while (this.#entries.size > this.#options.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }
}
