// The factory's sources: the Talos versions (imager tags) and each version's extension and overlay catalogs,
// all read from the configured image registry through one signature verifier. `createSources` is what the
// service wires in; `start()` loads the version list and keeps it fresh, `stop()` ends background reads.

import { join } from "node:path";
import { parseReference } from "../../oci/reference.ts";
import { type RepositoryAccess, SignatureVerifier } from "../../signing/verify.ts";
import type { CatalogImageLimits } from "../../talos/catalog-image.ts";
import type { FactoryConfig } from "../config/model.ts";
import { CatalogService } from "./catalogs.ts";
import { SourceContentCache } from "./content-cache.ts";
import { ImagerInputResolver, type ImagerSourceImages } from "./imager-inputs.ts";
import type { Clock, SourcesLog, SourcesMetrics } from "./runtime.ts";
import { TalosVersionService } from "./versions.ts";

export type { ExtensionInfo, ExtensionSource, OverlayInfo, OverlaySource } from "./catalogs.ts";
export { CatalogService } from "./catalogs.ts";
export { type ContentCacheOptions, type ContentLease, SourceContentCache } from "./content-cache.ts";
export {
  defaultSourceImageLimits,
  ImagerInputResolver,
  type ImagerInputResolverOptions,
  type ImagerSourceImages,
  type ResolvedImagerInputs,
  type ResolveImagerInputsRequest,
  type SourceProgress,
} from "./imager-inputs.ts";
export { registerSourceRoutes } from "./routes.ts";
export type { Clock, SourcesLog, SourcesMetrics } from "./runtime.ts";
export { type TalosctlFile, TalosctlService } from "./talosctl.ts";
export type { TalosVersion } from "./version-selection.ts";
export { TalosVersionService, type TalosVersionsState } from "./versions.ts";

/** The part of the factory configuration the sources read. */
export type SourcesConfig = Pick<FactoryConfig, "versions" | "registryRefreshIntervalMs" | "extraExtensionCatalogs"> & {
  images: Pick<FactoryConfig["images"], "registry" | "namespace" | "imager" | "extensionManifest" | "overlayManifest">;
  signatures: Pick<FactoryConfig["signatures"], "loaded">;
};

export interface SourcesDeps {
  /** How registries are reached: the service's RegistryClient (with its insecure hosts), or a function. */
  client: RepositoryAccess;
  log: SourcesLog;
  metrics?: SourcesMetrics;
  clock?: Clock;
  /** Where catalog images are flattened; default the OS temp dir. */
  workDir?: string;
  catalogLimits?: CatalogImageLimits;
}

export interface FactorySources {
  versions: TalosVersionService;
  catalogs: CatalogService;
  /** The verifier every source image goes through (the imager uses it too). */
  verifier: SignatureVerifier;
  /** True once the version list has loaded. */
  ready(): boolean;
  /** Loads the version list (resolves after the first attempt, never rejects) and keeps it fresh. */
  start(): Promise<void>;
  /** Stops background reads and waits for reads under way. */
  stop(): Promise<void>;
}

export function createSources(config: SourcesConfig, deps: SourcesDeps): FactorySources {
  const verifier = new SignatureVerifier(deps.client, config.signatures.loaded);
  const imager = parseReference(config.images.imager);
  const imagerRepository = () =>
    typeof deps.client === "function" ? deps.client(imager) : deps.client.repository(imager);
  const versions = new TalosVersionService({
    listTags: () => imagerRepository().listTags(),
    imageName: config.images.imager,
    rules: { minVersion: config.versions.minTalosVersion, brokenVersions: config.versions.brokenTalosVersions },
    recheckIntervalMs: config.versions.recheckIntervalMs,
    log: deps.log,
    metrics: deps.metrics,
    clock: deps.clock,
  });
  const catalogs = new CatalogService({
    versions,
    verifier,
    images: config.images,
    extraExtensionCatalogs: config.extraExtensionCatalogs,
    refreshIntervalMs: config.registryRefreshIntervalMs,
    log: deps.log,
    metrics: deps.metrics,
    clock: deps.clock,
    workDir: deps.workDir,
    limits: deps.catalogLimits,
  });
  return {
    versions,
    catalogs,
    verifier,
    ready: () => versions.ready(),
    start: () => versions.start(),
    async stop() {
      await versions.stop();
      await catalogs.settled();
    },
  };
}

/** The resolver of imager inputs over these sources, pulling into the content cache `<cacheDir>/sources`. */
export function createImagerInputResolver(
  sources: FactorySources,
  images: ImagerSourceImages,
  cacheDir: string,
): ImagerInputResolver {
  return new ImagerInputResolver({
    verifier: sources.verifier,
    catalogs: sources.catalogs,
    versions: sources.versions,
    images,
    cache: new SourceContentCache({ dir: join(cacheDir, "sources") }),
  });
}
