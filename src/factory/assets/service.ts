// The asset service: the one path from an asset request to a verified cache entry, used by
// `boot-assets build` and the `/image` routes alike:
//   request → sources resolved, verified and pinned to digests → build profile → cache key → cache lookup;
//   on a miss: single-flight on the key → sources pulled by digest → concurrency limit → imager → cache put
//   (atomic) → entry. A hit pulls nothing.
// Upstream's counterpart is internal/asset (builder.go: profile hash, single-flight, semaphore, cache).
//
// The cache key covers everything that changes the bytes: the build profile (profileHash, with its global
// salt), a per-kind salt bumped when a fix changes one kind's output, and the build options outside the
// profile (file timestamps, the installer's repo tag).

import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { badRequest, unsupported } from "../../errors.ts";
import { build } from "../../imager/builders.ts";
import type { IntermediateCache } from "../../imager/intermediate-cache.ts";
import { type BuildKind, buildKinds, canonicalJson, createBuildProfile, profileHash } from "../../imager/profile.ts";
import type { SecureBootSigners } from "../../imager/secureboot-uki.ts";
import { type AssetRequest, mimeTypeFor } from "../../talos/asset-path.ts";
import type { Schematic } from "../../talos/schematic.ts";
import type { WellKnownCertificates } from "../../talos/secureboot-database.ts";
import { Semaphore, SingleFlight, waitFor } from "../../util/concurrency.ts";
import type {
  FetchedImagerInputs,
  ImagerInputResolver,
  PinnedImagerInputs,
  SourceProgress,
} from "../sources/imager-inputs.ts";
import type { AssetCache } from "./cache.ts";
import { collectCacheGarbage, type GcOptions, type GcResult } from "./gc.ts";

/** Bump one kind's salt when a fix changes that kind's bytes, so stale entries are never served. */
// 2: modules merged in the extensions' order and indexed with upstream's depmod configuration.
// installer 3: artifacts with upstream's tar modes and RepoTag. disk 3: META zeroed without values before
// 1.13, no file systems on pre-1.8 STATE/EPHEMERAL; disk 4: BOOT's XFS reproducible. iso 3: reproducible
// dates and GPT GUIDs; iso 4: the GRUB ISO's EFI FAT serial fixed. uki 3, installer 4, iso 5, disk 5: UKIs
// carry .splash, and from 1.10 .profile sections (main, reset / reset-maintenance); disk 5 also: VHD time
// stamp and unique id, VMDK CID from the inputs, the OVA's VMDK with upstream's compat6/lsilogic options.
// initramfs 3, uki 4, installer 5, iso 6, disk 6: Talos ≥ 1.13 extension squashfs images carry the tar's
// SELinux labels (the embedded config's too). uki 5, disk 7: UKIs for Talos before 1.10 take that imager's
// section order (.initrd third, .linux last); pre-1.10 disks embed one with a chosen sd-boot (pre-1.10 ISOs
// and installers are GRUB-only, no UKI). disk 7 also: the OVA's OVF is upstream's whole template per version
// (ovftool comments, vmw:Config entries, video/VMCI items, nvram; vmx-13 before 1.8, disk.EnableUUID from 1.12).
// installer 7, disk 9: Secure Boot installers and disk images are built (signed systemd-boot and UKI).
// disk 10: .xz and .zst disk images are one xz stream / zstd frame per 8 MiB block (src/imager/disk/frames.ts).
export const assetKindSalts: Readonly<Record<BuildKind, number>> = {
  kernel: 1,
  initramfs: 3,
  cmdline: 1,
  uki: 6,
  installer: 7,
  iso: 7,
  disk: 10,
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
  /**
   * Ends this caller's use of the entry: until then garbage collection leaves it alone. Call it once the
   * file is read (or opened: an open file stays readable after removal); calling it again does nothing.
   */
  release: () => void;
}

export interface AssetServiceOptions {
  resolver: Pick<ImagerInputResolver, "pin">;
  cache: AssetCache;
  /** Builds at once (upstream -asset-builder-max-concurrency). Default 6. */
  maxConcurrency?: number;
  /** A build's time limit. Default 30 minutes. */
  buildTimeoutMs?: number;
  /** Aborted at shutdown: stops builds under way. */
  signal?: AbortSignal;
  /** File timestamps in the outputs (part of the key). */
  mtime?: number;
  installerRepoTag?: string;
  /** An mksquashfs ≥ 4.6 for SELinux-labelled extension images (tools/squashfs-tools.ts). */
  labellingMksquashfs?: (signal?: AbortSignal) => Promise<string | undefined>;
  /** Extension images kept across builds (src/imager/intermediate-cache.ts), collected with the asset cache. */
  intermediateCache?: IntermediateCache;
  /** Size limit of the intermediate cache (bytes); default none beyond the asset cache's max age. */
  intermediateMaxSizeBytes?: number;
  /** GRUB's arm64-efi platform directory (arm64 GRUB ISOs and disk images; grub-arm64.ts). */
  grubArm64EfiDir?: (signal?: AbortSignal) => Promise<string>;
  schematicAuthor?: string;
  /** The Secure Boot keys (`-secureboot`); without them secure-boot assets are refused as upstream does. */
  secureBoot?: SecureBootSigners;
  /** The well-known UEFI CA certificates (src/imager/well-known-certificates.ts), for schematics that ask. */
  wellKnownCertificates?: (signal?: AbortSignal) => Promise<WellKnownCertificates>;
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

type Entry = Omit<CachedAsset, "filename" | "contentType" | "built" | "release">;

export class AssetService {
  readonly #options: AssetServiceOptions;
  readonly #limit: Semaphore;
  readonly #flights = new SingleFlight<string, Entry>();
  /** Keys in use by callers (leases not yet released): garbage collection skips them. */
  readonly #inUse = new Map<string, number>();

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
      // A key change must never serve assets signed with the old keys.
      secureBootKeys:
        profile.secureBoot && this.#options.secureBoot !== undefined
          ? { uki: this.#options.secureBoot.uki.fingerprint, pcr: this.#options.secureBoot.pcr.fingerprint }
          : null,
    });
    return createHash("sha256").update(profileHash(profile)).update("\n").update(extra).digest("hex");
  }

  #lease(key: string): () => void {
    this.#inUse.set(key, (this.#inUse.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#inUse.get(key) ?? 1) - 1;
      if (left <= 0) this.#inUse.delete(key);
      else this.#inUse.set(key, left);
    };
  }

  #served(entry: Entry, request: AssetRequest, built: boolean): CachedAsset {
    return {
      ...entry,
      filename: request.filename,
      contentType: mimeTypeFor(request.filename),
      built,
      release: this.#lease(entry.key),
    };
  }

  /** Gets the asset from the cache, or builds and caches it (one build per key however many ask). */
  async get(request: AssetRequest, schematic: Schematic, options: GetAssetOptions = {}): Promise<CachedAsset> {
    const kind = request.kind as BuildKind;
    if (!(buildKinds as readonly string[]).includes(kind))
      throw unsupported(`${request.filename}: ${request.kind} images are not built by this factory yet`);
    // Upstream's words (image-factory internal/profile/profile.go EnhanceFromSchematic, secureboot.ErrDisabled).
    if (request.secureBoot && this.#options.secureBoot === undefined)
      throw badRequest("error enhancing profile from schematic: secure boot is disabled", "SECUREBOOT_DISABLED");
    // Pinned, not pulled: a cached asset is found by the digests alone.
    const pinned = await this.#options.resolver.pin({
      talosVersion: request.talosVersion,
      arch: request.arch,
      schematic,
      kinds: [kind],
      progress: options.progress,
      signal: options.signal,
    });
    const profile = createBuildProfile(request, schematic, {
      ...pinned.sources,
      ...(this.#options.schematicAuthor !== undefined ? { schematicAuthor: this.#options.schematicAuthor } : {}),
    });
    const key = this.cacheKey(profile);
    // Leased before the lookup, so a collection running meanwhile cannot remove what is about to be served.
    const lookupLease = this.#lease(key);
    try {
      const cached = await this.#options.cache.get(key, options.signal);
      if (cached !== undefined) {
        const asset = this.#served({ key, ...cached }, request, false);
        this.#options.onHit?.(asset, request);
        return asset;
      }
      let mine = false;
      const flight = this.#flights.run(key, async () => {
        mine = true;
        return this.#build(key, request, profile, pinned, options);
      });
      const entry = await waitFor(flight, options.signal);
      return this.#served(entry, request, mine);
    } finally {
      lookupLease();
    }
  }

  async #build(
    key: string,
    request: AssetRequest,
    profile: ReturnType<typeof createBuildProfile>,
    pinned: PinnedImagerInputs,
    options: GetAssetOptions,
  ): Promise<Entry> {
    const signals = [AbortSignal.timeout(this.#options.buildTimeoutMs ?? 30 * 60 * 1000)];
    if (this.#options.signal !== undefined) signals.push(this.#options.signal);
    const signal = AbortSignal.any(signals);
    const release = this.#lease(key);
    let fetched: FetchedImagerInputs | undefined;
    let slot: (() => void) | undefined;
    let scratch: string | undefined;
    try {
      // The sources are pulled outside the build slots, as upstream limits only the imager runs.
      fetched = await pinned.fetch({
        signal,
        ...(options.progress !== undefined ? { progress: options.progress } : {}),
      });
      const queued = performance.now();
      slot = await this.#limit.acquire(signal);
      const waitedSeconds = (performance.now() - queued) / 1000;
      // Another process may have put it while this one waited.
      const again = await this.#options.cache.get(key, signal);
      if (again !== undefined) return { key, ...again };
      scratch = await this.#options.cache.scratch();
      const inputs = {
        ...fetched.inputs,
        extensions: profile.inputs.extensions.length > 0 ? fetched.inputs.extensions : [],
      };
      const result = await build(profile, inputs, join(scratch, "asset"), {
        signal,
        ...(options.log !== undefined ? { log: options.log } : {}),
        ...(this.#options.mtime !== undefined ? { mtime: this.#options.mtime } : {}),
        ...(this.#options.installerRepoTag !== undefined ? { installerRepoTag: this.#options.installerRepoTag } : {}),
        ...(this.#options.labellingMksquashfs !== undefined
          ? { labellingMksquashfs: this.#options.labellingMksquashfs }
          : {}),
        ...(this.#options.intermediateCache !== undefined
          ? { intermediateCache: this.#options.intermediateCache }
          : {}),
        ...(this.#options.grubArm64EfiDir !== undefined ? { grubArm64EfiDir: this.#options.grubArm64EfiDir } : {}),
        ...(this.#options.secureBoot !== undefined ? { secureBoot: this.#options.secureBoot } : {}),
        ...(this.#options.wellKnownCertificates !== undefined
          ? { wellKnownCertificates: this.#options.wellKnownCertificates }
          : {}),
      });
      const entry: Entry = { key, ...(await this.#options.cache.put(key, result.path, signal)) };
      const asset: CachedAsset = {
        ...entry,
        filename: profile.filename,
        contentType: mimeTypeFor(profile.filename),
        built: true,
        release: () => {},
      };
      this.#options.onBuilt?.(asset, request, { seconds: result.seconds, waitedSeconds });
      return entry;
    } finally {
      slot?.();
      fetched?.release();
      release();
      if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
    }
  }

  /** Garbage collection (gc.ts) that leaves alone every entry this process is serving or building. */
  async collectGarbage(options: GcOptions): Promise<GcResult> {
    const result = await collectCacheGarbage(this.#options.cache, options, (key) => this.#inUse.has(key));
    // The intermediate cache under the same schedule and age limit, with its own size limit.
    const intermediate = await this.#options.intermediateCache?.collect({
      maxAgeMs: options.maxAgeMs,
      maxSizeBytes: this.#options.intermediateMaxSizeBytes,
      ...(options.dryRun !== undefined ? { dryRun: options.dryRun } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    if (intermediate !== undefined) result.intermediate = intermediate;
    return result;
  }

  /** Waits for the builds under way (at shutdown). */
  async settled(): Promise<void> {
    await this.#flights.settled();
  }
}
