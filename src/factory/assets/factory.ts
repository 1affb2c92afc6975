// The factory's asset service: its sources (the verifier, catalogs and versions the routes use), the
// content cache for pulled images, the signed asset cache in the cache repository (registry-cache.ts), the
// build concurrency limit (-asset-builder-max-concurrency), and upstream's asset metrics
// (internal/asset/metrics.go names).

import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { schematicExtensionAuthor } from "../../imager/extensions.ts";
import { IntermediateCache } from "../../imager/intermediate-cache.ts";
import type { SecureBootSigners } from "../../imager/secureboot-uki.ts";
import { wellKnownCertificatesLoader } from "../../imager/well-known-certificates.ts";
import type { Digest } from "../../oci/digest.ts";
import type { Repository } from "../../oci/repository.ts";
import { collectStoreGarbage, removeDamagedBlob } from "../../registry/gc.ts";
import type { RegistryStore } from "../../registry/store.ts";
import { localCertifiedSigner, localKeySigner } from "../../signing/digest-signer.ts";
import { KeySigner } from "../../signing/signer.ts";
import { SignatureVerifier } from "../../signing/verify.ts";
import { verificationByKey } from "../../signing/verify-options.ts";
import type { FactoryConfig, SecureBootConfig } from "../config/model.ts";
import type { FactoryMetrics } from "../metrics.ts";
import { createImagerInputResolver, type createSources, type ImagerInputResolver } from "../sources/index.ts";
import { factoryGrubArm64EfiDir } from "./grub-arm64.ts";
import { registryIntermediateRemote } from "./intermediate-remote.ts";
import { factoryLabellingMksquashfs } from "./labelling-mksquashfs.ts";
import { RegistryAssetCache } from "./registry-cache.ts";
import { AssetService } from "./service.ts";

export interface AssetCacheSetup {
  repository: Repository;
  /** The cache signing key (its public half verifies entries). */
  privateKey: KeyObject;
  /** The embedded store, when the cache repository is in it. */
  store?: RegistryStore;
  /**
   * How old an unreferenced store blob must be to be freed (default: store gc's hour, as a push may be
   * between its blobs and its manifest). 0 is right only for a process that alone writes the store.
   */
  storeGcGraceMs?: number;
}

/** The signed cache in the cache repository, with the store's blob files when it is embedded. */
export function createRegistryAssetCache(
  config: FactoryConfig,
  setup: AssetCacheSetup,
  dir: string,
  log: (line: string) => void,
): RegistryAssetCache {
  const { repository, privateKey, store } = setup;
  const location = config.stores.cache;
  const verifier = new SignatureVerifier(() => repository, verificationByKey(privateKey, "the cache signing key"));
  return new RegistryAssetCache({
    repository,
    dockerReference: location.kind === "remote" ? location.reference : `embedded/${location.repository}`,
    signer: new KeySigner(privateKey),
    verifier,
    dir,
    log,
    ...(store !== undefined
      ? {
          local: {
            locate: async (digest: Digest) =>
              (await store.statBlob(location.repository, digest)) ? store.blobFile(digest) : undefined,
            discardDamaged: async (digest: Digest) => {
              await removeDamagedBlob(store, digest);
            },
            sweep: async (signal?: AbortSignal) =>
              (
                await collectStoreGarbage(store, {
                  ...(signal ? { signal } : {}),
                  ...(setup.storeGcGraceMs !== undefined ? { graceMs: setup.storeGcGraceMs } : {}),
                })
              ).bytesFreed,
          },
        }
      : {}),
  });
}

/** The signers of the configured Secure Boot key files (read and checked with the configuration). */
export function secureBootSigners(config: Extract<SecureBootConfig, { enabled: true }>): SecureBootSigners {
  return {
    uki: localCertifiedSigner(
      { key: config.signingKey, certificate: config.signingCert },
      `UKI signing key ${config.signingKeyFile}`,
    ),
    pcr: localKeySigner(config.pcrKey, `PCR signing key ${config.pcrKeyFile}`),
  };
}

export async function createAssetService(
  config: FactoryConfig,
  sources: ReturnType<typeof createSources>,
  deps: {
    log: { info(details: object, message: string): void };
    metrics: FactoryMetrics;
    /** Root of `sources/` (pulled images) and `assets/` (builds, spool, last use). */
    dir: string;
    cache: AssetCacheSetup;
    signal?: AbortSignal;
    /** The resolver of source images, when the caller shares it (with the talosctl downloads). */
    resolver?: ImagerInputResolver;
  },
): Promise<AssetService> {
  const resolver = deps.resolver ?? createImagerInputResolver(sources, config.images, deps.dir);
  const { metrics } = deps;
  const labels = (request: { talosVersion: string; kind: string; arch: string }) => ({
    talos_version: request.talosVersion,
    output_kind: request.kind,
    arch: request.arch,
  });
  const cache = createRegistryAssetCache(config, deps.cache, join(deps.dir, "assets"), (line) =>
    deps.log.info({}, line),
  );
  const abandoned = await cache.clearAbandoned();
  if (abandoned > 0) deps.log.info({ abandoned }, "removed the scratch space of builds a stopped process left");
  return new AssetService({
    resolver,
    cache,
    schematicAuthor: schematicExtensionAuthor(config.http.externalUrlAsGiven),
    maxConcurrency: config.maxConcurrency,
    labellingMksquashfs: factoryLabellingMksquashfs(deps.dir, (line) => deps.log.info({}, line)),
    intermediateCache: new IntermediateCache(join(deps.dir, "intermediate"), {
      // Shared through a remote cache repository; the embedded store is on this disk already.
      ...(config.stores.cache.kind === "remote" ? { remote: registryIntermediateRemote(cache) } : {}),
      onLookup: (kind, outcome) => metrics.intermediateLookups.inc({ kind, outcome }),
      onRemoteError: (kind, operation) => metrics.intermediateRemoteErrors.inc({ kind, operation }),
      log: (line) => deps.log.info({}, line),
    }),
    ...(config.cacheGc.intermediateMaxSizeBytes !== undefined
      ? { intermediateMaxSizeBytes: config.cacheGc.intermediateMaxSizeBytes }
      : {}),
    grubArm64EfiDir: factoryGrubArm64EfiDir(deps.dir, (line) => deps.log.info({}, line)),
    ...(config.secureBoot.enabled
      ? {
          secureBoot: secureBootSigners(config.secureBoot),
          wellKnownCertificates: wellKnownCertificatesLoader(
            config.secureBoot.wellKnownCertificatesDir === undefined
              ? { kind: "debian", cacheDir: deps.dir, log: (line) => deps.log.info({}, line) }
              : { kind: "directory", directory: config.secureBoot.wellKnownCertificatesDir },
          ),
        }
      : {}),
    ...(deps.signal !== undefined ? { signal: deps.signal } : {}),
    onBuilt: (asset, request, timing) => {
      metrics.assetsBuilt.inc(labels(request));
      metrics.assetsBuiltBytes.inc(labels(request), asset.size);
      metrics.assetsBuildLatency.observe(timing.seconds);
      metrics.assetsConcurrencyLatency.observe(timing.waitedSeconds);
      deps.log.info({ key: asset.key, size: asset.size, seconds: timing.seconds }, "asset built");
    },
    onHit: (asset, request) => {
      metrics.assetsDeliveredCached.inc(labels(request));
      metrics.assetsCachedBytes.inc(labels(request), asset.size);
    },
    log: (line) => deps.log.info({}, line),
  });
}
