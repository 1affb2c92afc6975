// The asset service: the one path from an asset request to a verified cache entry, used by
// `boot-assets build` and the `/image` routes alike:
//   request → sources resolved and verified (pulled by digest) → build profile → cache key → cache lookup
//   → single-flight on the key → concurrency limit → imager → cache put (atomic) → entry.
// Upstream's counterpart is internal/asset (builder.go: profile hash, single-flight, semaphore, cache).
//
// The cache key covers everything that changes the bytes: the build profile (profileHash, with its global
// salt), a per-kind salt bumped when a fix changes one kind's output, and the build options outside the
// profile (file timestamps, the installer's repo tag).

import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { unsupported } from "../../errors.ts";
import { build } from "../../imager/builders.ts";
import { type BuildKind, buildKinds, canonicalJson, createBuildProfile, profileHash } from "../../imager/profile.ts";
import { type AssetRequest, mimeTypeFor } from "../../talos/asset-path.ts";
import type { Schematic } from "../../talos/schematic.ts";
import { Semaphore, SingleFlight } from "../../util/concurrency.ts";
import type { ImagerInputResolver, SourceProgress } from "../sources/imager-inputs.ts";

/** Bump one kind's salt when a fix changes that kind's bytes, so stale entries are never served. */
export const assetKindSalts: Readonly<Record<BuildKind, number>> = {
  kernel: 1,
  initramfs: 1,
  cmdline: 1,
  uki: 1,
  installer: 1,
  iso: 1,
  disk: 1,
};

/** A cache entry as served: a readable file whose bytes were checked against the recorded digests. */
export interface CachedAsset {
  key: string;
  /** The file; read it, never write it. */
  path: string;
  size: number;
  /** `sha256:<hex>`: the ETag and the `.sha256` file. */
  sha256: string;
  sha512: string;
  filename: string;
  contentType: string;
  /** true when this call built it. */
  built: boolean;
}

interface EntryRecord {
  key: string;
  size: number;
  sha256: string;
  sha512: string;
  kind: BuildKind;
}

export interface AssetServiceOptions {
  resolver: Pick<ImagerInputResolver, "resolve">;
  /** Cache root: `<dir>/<key>/asset` and `<key>/entry.json`. */
  dir: string;
  /** Builds at once (upstream -asset-builder-max-concurrency). Default 6. */
  maxConcurrency?: number;
  /** A build's time limit. Default 30 minutes. */
  buildTimeoutMs?: number;
  /** Aborted at shutdown: stops builds under way. */
  signal?: AbortSignal;
  /** File timestamps in the outputs (part of the key). */
  mtime?: number;
  installerRepoTag?: string;
  schematicAuthor?: string;
  /** A build finished (seconds building, after `waitedSeconds` for a build slot). */
  onBuilt?: (asset: CachedAsset, request: AssetRequest, timing: { seconds: number; waitedSeconds: number }) => void;
  /** A request answered from the cache. */
  onHit?: (asset: CachedAsset, request: AssetRequest) => void;
  log?: (line: string) => void;
}

export interface GetAssetOptions {
  /** The caller's signal: stops waiting, never the build others may wait on. */
  signal?: AbortSignal;
  progress?: (event: SourceProgress) => void;
  log?: (line: string) => void;
}

async function digests(path: string): Promise<{ sha256: string; sha512: string; size: number }> {
  const h256 = createHash("sha256");
  const h512 = createHash("sha512");
  let size = 0;
  await pipeline(createReadStream(path), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      h256.update(chunk);
      h512.update(chunk);
      size += chunk.length;
    }
  });
  return { sha256: `sha256:${h256.digest("hex")}`, sha512: `sha512:${h512.digest("hex")}`, size };
}

function waitFor<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
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

export class AssetService {
  readonly #options: AssetServiceOptions;
  readonly #limit: Semaphore;
  readonly #flights = new SingleFlight<string, CachedAsset>();
  /** Entries whose bytes were checked in this process (key → sha256), so a hit re-reads nothing. */
  readonly #verified = new Map<string, string>();

  constructor(options: AssetServiceOptions) {
    this.#options = options;
    this.#limit = new Semaphore(options.maxConcurrency ?? 6);
  }

  /** The cache key of a request whose sources are pinned. */
  cacheKey(profile: Parameters<typeof profileHash>[0]): string {
    const extra = canonicalJson({
      kindSalt: assetKindSalts[profile.kind],
      mtime: this.#options.mtime ?? null,
      installerRepoTag: this.#options.installerRepoTag ?? null,
    });
    return createHash("sha256").update(profileHash(profile)).update("\n").update(extra).digest("hex");
  }

  /** Gets the asset from the cache, or builds and caches it (one build per key however many ask). */
  async get(request: AssetRequest, schematic: Schematic, options: GetAssetOptions = {}): Promise<CachedAsset> {
    const kind = request.kind as BuildKind;
    if (!(buildKinds as readonly string[]).includes(kind))
      throw unsupported(`${request.filename}: ${request.kind} images are not built by this factory yet`);
    const resolved = await this.#options.resolver.resolve({
      talosVersion: request.talosVersion,
      arch: request.arch,
      schematic,
      kinds: [kind],
      progress: options.progress,
      signal: options.signal,
    });
    let releaseLater = false;
    try {
      const profile = createBuildProfile(request, schematic, {
        ...resolved.sources,
        ...(this.#options.schematicAuthor !== undefined ? { schematicAuthor: this.#options.schematicAuthor } : {}),
      });
      const key = this.cacheKey(profile);
      const cached = await this.#lookup(key, request.filename);
      if (cached !== undefined) {
        this.#options.onHit?.(cached, request);
        return cached;
      }
      const inputs = {
        ...resolved.inputs,
        extensions: profile.inputs.extensions.length > 0 ? resolved.inputs.extensions : [],
      };
      let mine = false;
      const flight = this.#flights.run(key, async () => {
        mine = true;
        return this.#build(key, request, profile, inputs, options.log);
      });
      // The inputs stay pinned until the build settles, even when this caller stops waiting.
      releaseLater = true;
      flight.then(resolved.release, resolved.release);
      const asset = await waitFor(flight, options.signal);
      return { ...asset, filename: request.filename, contentType: mimeTypeFor(request.filename), built: mine };
    } finally {
      if (!releaseLater) resolved.release();
    }
  }

  /** A verified entry, or undefined (missing, unreadable or not matching its record: removed). */
  async #lookup(key: string, filename: string): Promise<CachedAsset | undefined> {
    const dir = join(this.#options.dir, key);
    let record: EntryRecord;
    try {
      record = JSON.parse(await readFile(join(dir, "entry.json"), "utf8")) as EntryRecord;
    } catch {
      return undefined;
    }
    const path = join(dir, "asset");
    const asset: CachedAsset = {
      key,
      path,
      size: record.size,
      sha256: record.sha256,
      sha512: record.sha512,
      filename,
      contentType: mimeTypeFor(filename),
      built: false,
    };
    if (this.#verified.get(key) === record.sha256) return asset;
    try {
      const info = await stat(path);
      const actual = info.size === record.size ? await digests(path) : undefined;
      if (record.key === key && actual?.sha256 === record.sha256 && actual.sha512 === record.sha512) {
        this.#verified.set(key, record.sha256);
        return asset;
      }
    } catch {
      // unreadable: a miss
    }
    this.#options.log?.(`cache entry ${key} does not match its record: removed, rebuilding`);
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }

  async #build(
    key: string,
    request: AssetRequest,
    profile: ReturnType<typeof createBuildProfile>,
    inputs: Parameters<typeof build>[1],
    log?: (line: string) => void,
  ): Promise<CachedAsset> {
    const signals = [AbortSignal.timeout(this.#options.buildTimeoutMs ?? 30 * 60 * 1000)];
    if (this.#options.signal !== undefined) signals.push(this.#options.signal);
    const signal = AbortSignal.any(signals);
    const queued = performance.now();
    const release = await this.#limit.acquire(signal);
    const waitedSeconds = (performance.now() - queued) / 1000;
    const temp = join(this.#options.dir, `.tmp-${randomUUID()}`);
    try {
      // Another process may have put it while this one waited.
      const again = await this.#lookup(key, profile.filename);
      if (again !== undefined) return again;
      await mkdir(temp, { recursive: true });
      const result = await build(profile, inputs, join(temp, "asset"), {
        signal,
        ...(log !== undefined ? { log } : {}),
        ...(this.#options.mtime !== undefined ? { mtime: this.#options.mtime } : {}),
        ...(this.#options.installerRepoTag !== undefined ? { installerRepoTag: this.#options.installerRepoTag } : {}),
      });
      const sums = await digests(result.path);
      const record: EntryRecord = {
        key,
        size: sums.size,
        sha256: sums.sha256,
        sha512: sums.sha512,
        kind: profile.kind,
      };
      await writeFile(join(temp, "entry.json"), `${JSON.stringify(record)}\n`);
      // The entry appears whole or not at all: a directory renamed into place.
      const dir = join(this.#options.dir, key);
      await rm(dir, { recursive: true, force: true });
      await rename(temp, dir);
      this.#verified.set(key, sums.sha256);
      const asset: CachedAsset = {
        key,
        path: join(dir, "asset"),
        size: sums.size,
        sha256: sums.sha256,
        sha512: sums.sha512,
        filename: profile.filename,
        contentType: mimeTypeFor(profile.filename),
        built: true,
      };
      this.#options.onBuilt?.(asset, request, { seconds: result.seconds, waitedSeconds });
      return asset;
    } finally {
      release();
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Waits for the builds under way (at shutdown). */
  async settled(): Promise<void> {
    await this.#flights.settled();
  }
}
