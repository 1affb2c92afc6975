// The intermediate cache: build results that do not depend on the schematic as a whole, kept by content so
// that the next schematic sharing them skips their work (issue 18, docs/caches.md "intermediate cache").
// Today: each extension's squashfs image (extensions.ts) and each compressed block of a disk image
// (disk/frames.ts), keyed by everything that changes their bytes.
//
// Layout under its directory: `<kind>/<key>` one file per entry (key: 64 hex digits), `tmp/` for entries being
// written. An entry is made in `tmp/`, fsynced and renamed into place, so a reader sees a whole entry or none;
// a build that fails or is aborted leaves nothing but its temp file, which is removed (or, after a crash, by the
// next collection). One make per key at a time in this process (single flight); two processes making the same
// key both rename a whole file into place, the second replacing the first with identical bytes.
// A hit is hard-linked into the build's directory (copied across file systems): a collection removing the
// entry meanwhile cannot touch the build's copy. Last use is the entry's mtime, set on every hit.

import { randomUUID } from "node:crypto";
import { copyFile, link, mkdir, open, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { SingleFlight } from "../util/concurrency.ts";
import { fsyncDirectory, isNotFoundError, listDirectory } from "../util/fs.ts";

export type IntermediateKind = "squashfs" | "disk-frame";
const kinds: readonly IntermediateKind[] = ["squashfs", "disk-frame"];
const keyPattern = /^[0-9a-f]{64}$/;
/** A temp file older than this belongs to no build still running. */
const staleTempMs = 24 * 60 * 60 * 1000;

export interface IntermediateGcOptions {
  maxAgeMs?: number | undefined;
  maxSizeBytes?: number | undefined;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface IntermediateGcResult {
  removed: { kind: IntermediateKind; key: string; size: number; reason: "age" | "size" }[];
  kept: number;
  keptBytes: number;
}

export interface IntermediateStats {
  hits: number;
  misses: number;
}

export class IntermediateCache {
  readonly dir: string;
  readonly #flights = new SingleFlight<string, void>();
  readonly stats: IntermediateStats = { hits: 0, misses: 0 };

  constructor(dir: string) {
    this.dir = dir;
  }

  #path(kind: IntermediateKind, key: string): string {
    if (!keyPattern.test(key)) throw new RangeError(`intermediate cache key must be 64 hex digits, not "${key}"`);
    return join(this.dir, kind, key);
  }

  /** Links the entry into `dest` (a new path); false when there is none. */
  async #take(path: string, dest: string): Promise<boolean> {
    try {
      await link(path, dest);
    } catch (err) {
      if (isNotFoundError(err)) return false;
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      try {
        await copyFile(path, dest);
      } catch (copyErr) {
        if (isNotFoundError(copyErr)) return false;
        throw copyErr;
      }
    }
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
    return true;
  }

  /**
   * Puts the entry `kind/key` at `dest`: linked from the cache on a hit; on a miss made by `make(out)` into a
   * temp file, stored, then linked. Answers whether it was a hit.
   */
  async provide(
    kind: IntermediateKind,
    key: string,
    dest: string,
    make: (out: string) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const path = this.#path(kind, key);
    if (await this.#take(path, dest)) {
      this.stats.hits++;
      return true;
    }
    await this.#flights.run(`${kind}/${key}`, async () => {
      if ((await stat(path).catch(() => undefined))?.isFile()) return;
      this.stats.misses++;
      const tmpDir = join(this.dir, "tmp");
      await mkdir(tmpDir, { recursive: true });
      await mkdir(join(this.dir, kind), { recursive: true });
      const temp = join(tmpDir, `${randomUUID()}.part`);
      try {
        await make(temp);
        signal?.throwIfAborted();
        const handle = await open(temp, "r");
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, path);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
      await fsyncDirectory(join(this.dir, kind));
    });
    // Collected between its making and now (a very small limit): make it once more, uncached.
    if (await this.#take(path, dest)) return false;
    await make(dest);
    return false;
  }

  /** Every entry with its size and last use. */
  async list(): Promise<{ kind: IntermediateKind; key: string; size: number; lastUsedMs: number }[]> {
    const entries: { kind: IntermediateKind; key: string; size: number; lastUsedMs: number }[] = [];
    for (const kind of kinds)
      for (const key of await listDirectory(join(this.dir, kind))) {
        if (!keyPattern.test(key)) continue;
        const info = await stat(join(this.dir, kind, key)).catch(() => undefined);
        if (info?.isFile()) entries.push({ kind, key, size: info.size, lastUsedMs: info.mtimeMs });
      }
    return entries;
  }

  /**
   * The asset cache's limits applied here (gc.ts): entries unused for longer than `maxAgeMs` go, then the
   * least recently used until the rest fit in `maxSizeBytes`; stale temp files go too. A build holding an
   * entry has its own link to it, so nothing is ever in use.
   */
  async collect(options: IntermediateGcOptions): Promise<IntermediateGcResult> {
    const entries = (await this.list()).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    const now = Date.now();
    const result: IntermediateGcResult = { removed: [], kept: 0, keptBytes: 0 };
    let total = entries.reduce((sum, entry) => sum + entry.size, 0);
    for (const entry of entries) {
      options.signal?.throwIfAborted();
      const tooOld = options.maxAgeMs !== undefined && now - entry.lastUsedMs > options.maxAgeMs;
      const tooBig = options.maxSizeBytes !== undefined && total > options.maxSizeBytes;
      if (tooOld || tooBig) {
        total -= entry.size;
        result.removed.push({ kind: entry.kind, key: entry.key, size: entry.size, reason: tooOld ? "age" : "size" });
        if (!options.dryRun) await rm(join(this.dir, entry.kind, entry.key), { force: true });
        continue;
      }
      result.kept++;
      result.keptBytes += entry.size;
    }
    if (!options.dryRun) {
      const tmpDir = join(this.dir, "tmp");
      for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
        const info = await stat(join(tmpDir, name)).catch(() => undefined);
        if (info !== undefined && now - info.mtimeMs > staleTempMs) await rm(join(tmpDir, name), { force: true });
      }
    }
    return result;
  }
}
