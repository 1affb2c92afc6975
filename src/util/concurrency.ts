// Bounded concurrency and single-flight: the one home of both, so every caller gets the same rules
// (results in order, no new work after a failure, errors only once the work under way has settled).

/**
 * Runs `work` over `items`, at most `limit` at a time, keeping the order of results. After a failure no new
 * item starts, and the first error is thrown only once the items under way have settled, so nothing keeps
 * writing after the caller has been told it failed.
 */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const index = next++;
      try {
        results[index] = await work(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/** A counting semaphore: at most `limit` holders at once, waiters served first come, first served. */
export class Semaphore {
  readonly limit: number;
  #held = 0;
  readonly #waiters: Array<{ grant: () => void; abandon: (reason: unknown) => void }> = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`semaphore limit must be ≥ 1, not ${limit}`);
    this.limit = limit;
  }

  get held(): number {
    return this.#held;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Waits for a place; the returned function gives it back (once). An aborted wait takes no place. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#held < this.limit) {
      this.#held++;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        abandon: reject,
      };
      const onAbort = () => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
    return this.#releaser();
  }

  /** Runs `work` holding a place. */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await work();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      // The place passes straight to the next waiter, so a newcomer cannot overtake it.
      if (next !== undefined) next.grant();
      else this.#held--;
    };
  }
}

/**
 * Single-flight by key: while work for a key is under way, callers for the same key share its promise
 * instead of starting it again. The entry goes once the work settles, so a failure is not remembered.
 */
export class SingleFlight<K, V> {
  readonly #flights = new Map<K, Promise<V>>();

  /** Whether work for `key` is under way. */
  has(key: K): boolean {
    return this.#flights.has(key);
  }

  get size(): number {
    return this.#flights.size;
  }

  keys(): IterableIterator<K> {
    return this.#flights.keys();
  }

  /** The promise under way for `key`, or `work()` started now and shared until it settles. */
  run(key: K, work: () => Promise<V>): Promise<V> {
    const pending = this.#flights.get(key);
    if (pending !== undefined) return pending;
    const started = (async () => work())().finally(() => {
      if (this.#flights.get(key) === started) this.#flights.delete(key);
    });
    this.#flights.set(key, started);
    return started;
  }

  /** Settles when every flight under way now has settled (their outcomes are the callers'). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#flights.values()]);
  }
}

/**
 * Waits for `work`, or rejects with the signal's reason when it aborts first; the work itself goes on (others
 * may be waiting for it too).
 */
export function waitFor<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
