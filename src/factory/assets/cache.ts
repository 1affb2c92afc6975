// What the asset service needs of a cache, and the pieces both caches share: the scratch directory builds
// write into (on the cache's filesystem, so an entry is placed by rename), cleared of what a killed process
// left behind, and the record of when each entry was last used (for garbage collection).
//
// Two caches implement it: RegistryAssetCache (the factory's: signed OCI entries in the cache repository,
// upstream's layout) and DirectoryAssetCache (`boot-assets build`'s: plain files under the cache directory).

import { randomUUID } from "node:crypto";
import { mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isNotFoundError } from "../../util/fs.ts";

/** A cache entry as read: a local file whose bytes were checked against its digests in this process. */
export interface CacheEntry {
  /** A readable file; never written to. */
  path: string;
  size: number;
  /** `sha256:<hex>` */
  sha256: string;
  /** `sha512:<hex>` */
  sha512: string;
}

/** An entry as garbage collection sees it. */
export interface CacheEntrySummary {
  key: string;
  size: number;
  /** When it was last put or served (ms since the epoch). */
  lastUsedMs: number;
}

export interface AssetCache {
  /** For messages, e.g. `embedded/image-factory/cache`. */
  readonly description: string;
  /** A fresh scratch directory for one build, on the filesystem entries are placed on. */
  scratch(): Promise<string>;
  /** The entry, verified; undefined for a miss (missing, unsigned, damaged: the caller rebuilds). */
  get(key: string, signal?: AbortSignal): Promise<CacheEntry | undefined>;
  /** Stores the built file (moved or copied; the caller removes its scratch directory afterwards). */
  put(key: string, file: string, signal?: AbortSignal): Promise<CacheEntry>;
  /** Every entry, for garbage collection. */
  list(signal?: AbortSignal): Promise<CacheEntrySummary[]>;
  /** Removes these entries; bytes an entry left in place shares stay. */
  remove(keys: readonly string[]): Promise<void>;
  /** After removals: frees what no entry uses any more. Returns the bytes freed. */
  sweep(signal?: AbortSignal): Promise<number>;
}

/**
 * Scratch directories `<dir>/<pid>-<uuid>`: a build writes there and its result is renamed into the cache.
 * `clearAbandoned` removes those of processes that no longer run (a factory killed mid-build).
 */
export class ScratchSpace {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async create(): Promise<string> {
    const path = join(this.dir, `${process.pid}-${randomUUID()}`);
    await mkdir(path, { recursive: true });
    return path;
  }

  /** Removes the scratch directories of processes that are gone; returns how many. */
  async clearAbandoned(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isNotFoundError(err)) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      const pid = Number(/^(\d+)-/.exec(name)?.[1]);
      if (Number.isInteger(pid) && pid > 0 && processRuns(pid)) continue;
      await rm(join(this.dir, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * When each entry was last used: the modification time of `<dir>/<key>`, touched at most once a minute per
 * entry by this process (a busy entry costs no write per request).
 */
export class UsageRecord {
  readonly #dir: string;
  readonly #touched = new Map<string, number>();
  static readonly touchIntervalMs = 60_000;

  constructor(dir: string) {
    this.#dir = dir;
  }

  async touch(key: string): Promise<void> {
    const now = Date.now();
    const last = this.#touched.get(key);
    if (last !== undefined && now - last < UsageRecord.touchIntervalMs) return;
    this.#touched.set(key, now);
    const path = join(this.#dir, key);
    const date = new Date(now);
    try {
      await utimes(path, date, date);
    } catch (err) {
      if (!isNotFoundError(err)) throw err;
      await mkdir(this.#dir, { recursive: true });
      await writeFile(path, "");
    }
  }

  /** Last use; an entry never recorded counts as used now (it gets a full max-age from here). */
  async lastUsed(key: string): Promise<number> {
    try {
      return (await stat(join(this.#dir, key))).mtimeMs;
    } catch (err) {
      if (!isNotFoundError(err)) throw err;
      this.#touched.delete(key);
      await this.touch(key);
      return Date.now();
    }
  }

  async forget(key: string): Promise<void> {
    this.#touched.delete(key);
    await rm(join(this.#dir, key), { force: true });
  }
}
