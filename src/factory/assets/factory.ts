// The factory's asset service: its sources (the verifier, catalogs and versions the routes use), the
// content cache for pulled images and the asset cache under the data directory, the build concurrency
// limit (-asset-builder-max-concurrency), and upstream's asset metrics (internal/asset/metrics.go names).

import { join } from "node:path";
import type { FactoryConfig } from "../config/config.ts";
import type { FactoryMetrics } from "../metrics.ts";
import { SourceContentCache } from "../sources/content-cache.ts";
import { ImagerInputResolver } from "../sources/imager-inputs.ts";
import type { createSources } from "../sources/index.ts";
import { AssetService } from "./service.ts";

export function createAssetService(
  config: FactoryConfig,
  sources: ReturnType<typeof createSources>,
  deps: {
    log: { info(details: object, message: string): void };
    metrics: FactoryMetrics;
    /** Root of `sources/` (pulled images) and `assets/` (built assets). */
    dir: string;
    signal?: AbortSignal;
  },
): AssetService {
  const resolver = new ImagerInputResolver({
    verifier: sources.verifier,
    catalogs: sources.catalogs,
    versions: sources.versions,
    images: config.images,
    cache: new SourceContentCache({ dir: join(deps.dir, "sources") }),
  });
  const { metrics } = deps;
  const labels = (request: { talosVersion: string; kind: string; arch: string }) => ({
    talos_version: request.talosVersion,
    output_kind: request.kind,
    arch: request.arch,
  });
  return new AssetService({
    resolver,
    dir: join(deps.dir, "assets"),
    maxConcurrency: config.maxConcurrency,
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
