// The factory's Prometheus metrics, under upstream image-factory's names so its dashboards and alerts keep
// working (upstream image-factory docs/api.md and its metric names). Every metric is registered here, in one registry per factory
// (never prom-client's global one, so several factories can run in one process, e.g. in tests); the asset
// metrics exist with their labels from the start so the serving work only increments them.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Labels of the per-asset counters, as upstream: the Talos version tag, the output kind and the arch. */
export type AssetLabels = "talos_version" | "output_kind" | "arch";

export interface FactoryMetrics {
  readonly registry: Registry;
  readonly schematicGets: Counter;
  readonly schematicCreates: Counter;
  readonly schematicDuplicateCreates: Counter;
  readonly schematicMemoSize: Gauge;
  readonly assetsDeliveredCached: Counter<AssetLabels>;
  readonly assetsBuilt: Counter<AssetLabels>;
  readonly assetsCachedBytes: Counter<AssetLabels>;
  readonly assetsBuiltBytes: Counter<AssetLabels>;
  readonly assetsCachedErrors: Counter<AssetLabels>;
  readonly assetsConcurrencyLatency: Histogram;
  readonly assetsBuildLatency: Histogram;
  readonly systemExtensionHits: Counter<"extension">;
  readonly httpRequestDuration: Histogram<"code" | "handler" | "method">;
  readonly httpRequestsInflight: Gauge<"handler">;
  readonly sourceRefreshes: Counter<"source" | "outcome">;
  readonly sourceRefreshDuration: Histogram<"source">;
  readonly talosVersionsStale: Gauge;
  readonly talosVersions: Gauge;
  readonly intermediateLookups: Counter<"kind" | "outcome">;
  readonly intermediateRemoteErrors: Counter<"kind" | "operation">;
}

export interface FactoryMetricsOptions {
  /** Process metrics (CPU, memory, event loop, GC); default on. */
  processMetrics?: boolean;
}

const assetLabels: AssetLabels[] = ["talos_version", "output_kind", "arch"];
// Upstream's buckets: builds take seconds to minutes.
const buildBuckets = [1, 10, 60, 180, 600];

export function createFactoryMetrics(options: FactoryMetricsOptions = {}): FactoryMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    schematicGets: new Counter({
      name: "image_factory_schematic_get_total",
      help: "Number of schematics retrieved.",
      registers,
    }),
    schematicCreates: new Counter({
      name: "image_factory_schematic_create_total",
      help: "Number of schematics created (including ones that already existed).",
      registers,
    }),
    schematicDuplicateCreates: new Counter({
      name: "image_factory_schematic_duplicate_create_total",
      help: "Number of schematic creations that found the schematic already stored.",
      registers,
    }),
    schematicMemoSize: new Gauge({
      // Upstream's metric name; in this project the thing it measures is called the schematic memo.
      name: "image_factory_schematic_cache_size",
      help: "Number of schematics in the in-memory cache.",
      registers,
    }),
    assetsDeliveredCached: new Counter({
      name: "image_factory_assets_delivered_cached_total",
      help: "Number of assets delivered from the cache.",
      labelNames: assetLabels,
      registers,
    }),
    assetsBuilt: new Counter({
      name: "image_factory_assets_built_total",
      help: "Number of assets built (missing in the cache).",
      labelNames: assetLabels,
      registers,
    }),
    assetsCachedBytes: new Counter({
      name: "image_factory_assets_cached_bytes_total",
      help: "Number of bytes delivered with cached assets.",
      labelNames: assetLabels,
      registers,
    }),
    assetsBuiltBytes: new Counter({
      name: "image_factory_assets_built_bytes_total",
      help: "Number of bytes delivered with assets built (missing in the cache).",
      labelNames: assetLabels,
      registers,
    }),
    assetsCachedErrors: new Counter({
      name: "image_factory_assets_cached_errors_total",
      help: "Number of errors retrieving assets from the cache.",
      labelNames: assetLabels,
      registers,
    }),
    assetsConcurrencyLatency: new Histogram({
      name: "image_factory_assets_concurrency_latency_seconds",
      help: "Time an asset build waited for a free builder (the concurrency limit).",
      buckets: buildBuckets,
      registers,
    }),
    assetsBuildLatency: new Histogram({
      name: "image_factory_assets_build_latency_seconds",
      help: "Time of the asset build itself (excluding the wait for a free builder).",
      buckets: buildBuckets,
      registers,
    }),
    systemExtensionHits: new Counter({
      name: "image_factory_profile_system_extension_hits_total",
      help: "Number of times a system extension was requested in a built profile.",
      labelNames: ["extension"],
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: "http_request_duration_seconds",
      help: "Duration of HTTP requests, by route (handler), method and status code.",
      labelNames: ["code", "handler", "method"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300],
      registers,
    }),
    httpRequestsInflight: new Gauge({
      name: "http_requests_inflight",
      help: "HTTP requests being served, by route (handler).",
      labelNames: ["handler"],
      registers,
    }),
    // This project's own: how reading the source images from the registry goes (not upstream names).
    sourceRefreshes: new Counter({
      name: "boot_assets_source_refresh_total",
      help: "Reads of the source registry (Talos versions, catalogs), by source and outcome (ok, error).",
      labelNames: ["source", "outcome"],
      registers,
    }),
    sourceRefreshDuration: new Histogram({
      name: "boot_assets_source_refresh_duration_seconds",
      help: "Duration of reads of the source registry, by source.",
      labelNames: ["source"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    talosVersionsStale: new Gauge({
      name: "boot_assets_talos_versions_stale",
      help: "1 while the last read of the Talos version list failed and the previous list is served.",
      registers,
    }),
    talosVersions: new Gauge({
      name: "boot_assets_talos_versions",
      help: "Number of Talos versions offered.",
      registers,
    }),
    // The intermediate cache (src/imager/intermediate-cache.ts): where each entry a build needed came from.
    intermediateLookups: new Counter({
      name: "boot_assets_intermediate_cache_lookups_total",
      help: "Intermediate results (e.g. extension squashfs images) a build needed, by kind and outcome: local (a hit on the data directory), remote (fetched from the cache repository), made.",
      labelNames: ["kind", "outcome"],
      registers,
    }),
    intermediateRemoteErrors: new Counter({
      name: "boot_assets_intermediate_cache_remote_errors_total",
      help: "Failures reading (get) or writing (put) intermediate results in the cache repository; the build went on without it.",
      labelNames: ["kind", "operation"],
      registers,
    }),
  };
}

/** The sources' metric hooks (sources/runtime.ts SourcesMetrics), recorded in these metrics. */
export function sourcesMetricsHooks(metrics: FactoryMetrics) {
  return {
    sourceRefreshed(source: string, outcome: "ok" | "error", durationMs: number): void {
      metrics.sourceRefreshes.inc({ source, outcome });
      metrics.sourceRefreshDuration.observe({ source }, durationMs / 1000);
    },
    versionsStale(stale: boolean): void {
      metrics.talosVersionsStale.set(stale ? 1 : 0);
    },
    versionsCount(count: number): void {
      metrics.talosVersions.set(count);
    },
  };
}
