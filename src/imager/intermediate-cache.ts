// The intermediate cache: build results that do not depend on the schematic as a whole, kept by content so
// that the next schematic sharing them skips their work (issue 18, docs/caches.md "intermediate cache").
// Today: each extension's squashfs image (extensions.ts), each compressed member of the archive appended to
// the initramfs (initramfs-members.ts), each compressed block of a disk image
// (disk/frames.ts) and the GRUB part of GRUB and hybrid ISOs (iso/grub-parts.ts, one tar), keyed by everything
// that changes their bytes.
//
// Layout under its directory: `<kind>/<key>` one file per entry (key: 64 hex digits), `tmp/` for entries being
// written. An entry is made in `tmp/`, given to the build at once (hard link), then fsynced and renamed into
// place in the background (`settled()` waits), so a reader sees a whole entry or none;
// a build that fails or is aborted leaves nothing but its temp file, which is removed (or, after a crash, by the
// next collection). One make per key at a time in this process (single flight); two processes making the same
// key both rename a whole file into place, the second replacing the first with identical bytes.
// A hit is hard-linked into the build's directory (copied across file systems): a collection removing the
// entry meanwhile cannot touch the build's copy. Last use is the entry's mtime, set on every hit.
//
// A second level, optional: a remote (`IntermediateRemote`, the factory's is the cache repository, so replicas
// share entries: src/factory/assets/intermediate-remote.ts). On a local miss the entry is fetched from it into
// the temp file, verified by the remote, and placed like a made one; an entry made here is pushed to it once
// it is in place. The remote failing (an outage, an error) never fails the build: it is logged and the entry
// made (or kept) locally. File entries only: a kind whose entries were directories would stay local-only.

import { randomUUID } from "node:crypto";
import { copyFile, link, mkdir, open, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { SingleFlight } from "../util/concurrency.ts";
import { planEviction } from "../util/eviction.ts";
import { fsyncDirectory, isNotFoundError, listDirectory } from "../util/fs.ts";

export type IntermediateKind = "squashfs" | "initramfs-member" | "disk-frame" | "grub-iso";
const kinds: readonly IntermediateKind[] = ["squashfs", "initramfs-member", "disk-frame", "grub-iso"];
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
  /** Entries found on the local disk. */
  hits: number;
  /** Entries fetched from the remote. */
  remoteHits: number;
  /** Entries made. */
  misses: number;
}

/** Where an entry came from: the local disk, the remote, or made by this call. */
export type IntermediateOutcome = "local" | "remote" | "made";

/** The second level: shared entries, verified by the implementation (e.g. signed, digest-checked). */
export interface IntermediateRemote {
  /** For messages. */
  readonly description: string;
  /** Writes the entry's bytes to `dest` (a new path); false when there is no valid entry. Throws on an outage. */
  get(kind: IntermediateKind, key: string, dest: string, signal?: AbortSignal): Promise<boolean>;
  /** Stores the file as the entry (the file stays where it is). Throws on an outage. */
  put(kind: IntermediateKind, key: string, file: string, signal?: AbortSignal): Promise<void>;
}

export interface IntermediateCacheOptions {
  remote?: IntermediateRemote;
  /** Each lookup's outcome (metrics). */
  onLookup?: (kind: IntermediateKind, outcome: IntermediateOutcome) => void;
  /** The remote failed; the build went on without it. */
  onRemoteError?: (kind: IntermediateKind, operation: "get" | "put", err: unknown) => void;
  log?: (line: string) => void;
}

export class IntermediateCache {
  readonly dir: string;
  readonly #flights = new SingleFlight<string, { made: IntermediateOutcome; temp: string } | undefined>();
  readonly stats: IntermediateStats = { hits: 0, remoteHits: 0, misses: 0 };
  readonly #options: IntermediateCacheOptions;
  /** Entries being kept in the background (#keep). */
  readonly #keeping = new Set<Promise<void>>();

  constructor(dir: string, options: IntermediateCacheOptions = {}) {
    this.dir = dir;
    this.#options = options;
  }

  #remoteFailed(kind: IntermediateKind, key: string, operation: "get" | "put", err: unknown): void {
    const remote = this.#options.remote as IntermediateRemote;
    const what = operation === "get" ? "fetching" : "storing";
    this.#options.log?.(
      `intermediate cache: ${what} ${kind}/${key} in ${remote.description} failed, ${operation === "get" ? "making it here" : "kept here only"}: ${err instanceof Error ? err.message : String(err)}`,
    );
    this.#options.onRemoteError?.(kind, operation, err);
  }

  /** The entry from the remote into `temp`; false on a miss or a failure (logged). */
  async #fetch(kind: IntermediateKind, key: string, temp: string, signal?: AbortSignal): Promise<boolean> {
    const remote = this.#options.remote;
    if (remote === undefined) return false;
    try {
      return await remote.get(kind, key, temp, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      await rm(temp, { force: true });
      this.#remoteFailed(kind, key, "get", err);
      return false;
    }
  }

  #path(kind: IntermediateKind, key: string): string {
    if (!keyPattern.test(key)) throw new RangeError(`intermediate cache key must be 64 hex digits, not "${key}"`);
    return join(this.dir, kind, key);
  }

  /** Links the entry into `dest` (a new path); false when there is none. */
  async #take(path: string, dest: string): Promise<boolean> {
    if (!(await this.#linkOrCopy(path, dest))) return false;
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
    return true;
  }

  /**
   * Puts the entry `kind/key` at `dest`: linked from the cache on a hit; on a miss fetched from the remote, or
   * made by `make(out)`, into a temp file that is linked to `dest` at once. Keeping it — fsync, rename into
   * place, push to the remote — happens after, off the build's path (`settled()` waits for it): an fsync while
   * a build has hundreds of MiB unwritten waits for all of them (about 0.15 s each on this machine, a dozen
   * times per initramfs). Until it is in place, a second build of the same key makes it again. `localOnly`:
   * the remote is neither asked nor given the entry (one cheaper to make than a registry round trip). Answers
   * whether it was a hit (local or remote).
   */
  async provide(
    kind: IntermediateKind,
    key: string,
    dest: string,
    make: (out: string) => Promise<void>,
    signal?: AbortSignal,
    options: { localOnly?: boolean } = {},
  ): Promise<boolean> {
    const path = this.#path(kind, key);
    if (await this.#take(path, dest)) {
      this.stats.hits++;
      this.#options.onLookup?.(kind, "local");
      return true;
    }
    const flight = await this.#flights.run(`${kind}/${key}`, async () => {
      if ((await stat(path).catch(() => undefined))?.isFile()) return undefined;
      const tmpDir = join(this.dir, "tmp");
      await mkdir(tmpDir, { recursive: true });
      const temp = join(tmpDir, `${randomUUID()}.part`);
      let made: IntermediateOutcome = "remote";
      try {
        if (options.localOnly || !(await this.#fetch(kind, key, temp, signal))) {
          made = "made";
          await make(temp);
        }
        signal?.throwIfAborted();
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
      if (made === "remote") this.stats.remoteHits++;
      else this.stats.misses++;
      this.#options.onLookup?.(kind, made);
      this.#keep(kind, key, temp, path, made === "made" && !options.localOnly);
      return { made, temp };
    });
    // From the temp file, or from its place once kept (this caller may have joined another's flight).
    if (flight !== undefined && (await this.#linkOrCopy(flight.temp, dest))) return flight.made === "remote";
    if (await this.#take(path, dest)) return false;
    // Collected between its placing and now (a very small limit): make it once more, uncached.
    await make(dest);
    return false;
  }

  /** Links (or, across file systems, copies) `from` to the new path `to`; false when `from` is gone. */
  async #linkOrCopy(from: string, to: string): Promise<boolean> {
    try {
      await link(from, to);
      return true;
    } catch (err) {
      if (isNotFoundError(err)) return false;
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      try {
        await copyFile(from, to);
        return true;
      } catch (copyErr) {
        if (isNotFoundError(copyErr)) return false;
        throw copyErr;
      }
    }
  }

  /** In the background: the temp file fsynced and renamed into place, then (`push`) given to the remote. */
  #keep(kind: IntermediateKind, key: string, temp: string, path: string, push: boolean): void {
    const keeping = (async () => {
      try {
        const handle = await open(temp, "r");
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        await mkdir(join(this.dir, kind), { recursive: true });
        await rename(temp, path);
        await fsyncDirectory(join(this.dir, kind));
      } catch (err) {
        await rm(temp, { force: true });
        this.#options.log?.(
          `intermediate cache: keeping ${kind}/${key} failed, not kept: ${err instanceof Error ? err.message : String(err)}`,
        );
        return;
      }
      const remote = this.#options.remote;
      if (push && remote !== undefined)
        try {
          await remote.put(kind, key, path);
        } catch (err) {
          this.#remoteFailed(kind, key, "put", err);
        }
    })();
    this.#keeping.add(keeping);
    void keeping.finally(() => this.#keeping.delete(keeping));
  }

  /** Resolves once every entry made or fetched so far is in place (and a made one pushed). */
  async settled(): Promise<void> {
    while (this.#keeping.size > 0) await Promise.all([...this.#keeping]);
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
   * The asset cache's limits and rule (src/util/eviction.ts): entries unused for longer than `maxAgeMs` go, then the
   * least recently used until the rest fit in `maxSizeBytes`; stale temp files go too. A build holding an
   * entry has its own link to it, so nothing is ever in use.
   */
  async collect(options: IntermediateGcOptions): Promise<IntermediateGcResult> {
    options.signal?.throwIfAborted();
    const now = Date.now();
    const plan = planEviction(await this.list(), options, now);
    const result: IntermediateGcResult = {
      removed: plan.remove.map(({ entry, reason }) => ({ kind: entry.kind, key: entry.key, size: entry.size, reason })),
      kept: plan.keep.length,
      keptBytes: plan.keptBytes,
    };
    if (!options.dryRun)
      for (const { entry } of plan.remove) {
        options.signal?.throwIfAborted();
        await rm(join(this.dir, entry.kind, entry.key), { force: true });
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
