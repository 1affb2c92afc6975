// The asset cache of `boot-assets build`: plain files under the cache directory, no registry and no key.
//   <dir>/<key>/asset        the bytes
//   <dir>/<key>/entry.json   {"key","size","sha256","sha512"}: checked against the bytes on first read
//   <dir>/tmp/<pid>-<uuid>/  builds in progress (cleared of dead processes' leftovers at start)
//   <dir>/used/<key>         last use (its mtime)
// An entry appears whole or not at all: its directory is renamed into place.

import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileDigests } from "../../util/file-digest.ts";
import type { AssetCache, CacheEntry, CacheEntrySummary } from "./cache.ts";
import { ScratchSpace, UsageRecord } from "./cache.ts";

interface EntryRecord {
  key: string;
  size: number;
  sha256: string;
  sha512: string;
}

const keyPattern = /^[0-9a-f]{64}$/;

export class DirectoryAssetCache implements AssetCache {
  readonly description: string;
  readonly #dir: string;
  readonly #scratch: ScratchSpace;
  readonly #usage: UsageRecord;
  /** Entries whose bytes were checked in this process (key → sha256). */
  readonly #checked = new Map<string, string>();
  readonly #log: (line: string) => void;
  #cleared: Promise<number> | undefined;

  constructor(dir: string, log: (line: string) => void = () => {}) {
    this.#dir = dir;
    this.description = dir;
    this.#scratch = new ScratchSpace(join(dir, "tmp"));
    this.#usage = new UsageRecord(join(dir, "used"));
    this.#log = log;
  }

  async scratch(): Promise<string> {
    // What killed runs left is cleared once, before this process's first build.
    this.#cleared ??= this.#scratch.clearAbandoned();
    await this.#cleared;
    return this.#scratch.create();
  }

  async get(key: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    const dir = join(this.#dir, key);
    let record: EntryRecord;
    try {
      record = JSON.parse(await readFile(join(dir, "entry.json"), "utf8")) as EntryRecord;
    } catch {
      return undefined;
    }
    const entry: CacheEntry = {
      path: join(dir, "asset"),
      size: record.size,
      sha256: record.sha256,
      sha512: record.sha512,
    };
    if (this.#checked.get(key) !== record.sha256) {
      let good = false;
      try {
        const info = await stat(entry.path);
        if (info.size === record.size && record.key === key) {
          const actual = await fileDigests(entry.path, ["sha256", "sha512"], signal);
          good = actual.digests.sha256 === record.sha256 && actual.digests.sha512 === record.sha512;
        }
      } catch (err) {
        if (signal?.aborted) throw err;
      }
      if (!good) {
        this.#log(`cache entry ${key} does not match its record: removed, rebuilding`);
        await rm(dir, { recursive: true, force: true });
        return undefined;
      }
      this.#checked.set(key, record.sha256);
    }
    await this.#usage.touch(key);
    return entry;
  }

  async put(key: string, file: string, signal?: AbortSignal): Promise<CacheEntry> {
    const sums = await fileDigests(file, ["sha256", "sha512"], signal);
    const record: EntryRecord = {
      key,
      size: sums.size,
      sha256: sums.digests.sha256 as string,
      sha512: sums.digests.sha512 as string,
    };
    const temp = await this.#scratch.create();
    try {
      await rename(file, join(temp, "asset"));
      await writeFile(join(temp, "entry.json"), `${JSON.stringify(record)}\n`);
      const dir = join(this.#dir, key);
      await rm(dir, { recursive: true, force: true });
      await rename(temp, dir);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
    this.#checked.set(key, record.sha256);
    await this.#usage.touch(key);
    return { path: join(this.#dir, key, "asset"), size: record.size, sha256: record.sha256, sha512: record.sha512 };
  }

  async list(): Promise<CacheEntrySummary[]> {
    await mkdir(this.#dir, { recursive: true });
    const found: CacheEntrySummary[] = [];
    for (const key of (await readdir(this.#dir)).filter((name) => keyPattern.test(name))) {
      try {
        const record = JSON.parse(await readFile(join(this.#dir, key, "entry.json"), "utf8")) as EntryRecord;
        found.push({ key, size: record.size, lastUsedMs: await this.#usage.lastUsed(key) });
      } catch {
        // incomplete: not an entry
      }
    }
    return found;
  }

  async remove(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      await rm(join(this.#dir, key), { recursive: true, force: true });
      this.#checked.delete(key);
      await this.#usage.forget(key);
    }
  }

  async sweep(): Promise<number> {
    return 0;
  }
}
