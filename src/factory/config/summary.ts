// The start-up summary: where the factory listens, which registry it reads, which identities it trusts and
// where it keeps its state, so an operator sees at a glance what a command line or config file amounted to.

import { formatGoDuration } from "./go-duration.ts";
import type { FactoryConfig, ListenAddress, StoreLocation } from "./model.ts";

function listenText(listen: ListenAddress, scheme: string): string {
  const host = listen.host === undefined ? "" : listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  const where = listen.host === undefined ? " (all interfaces)" : "";
  return `${scheme}://${host}:${listen.port}${where}`;
}

function storeText(store: StoreLocation, config: FactoryConfig): string {
  if (store.kind === "embedded") return `embedded store ${config.dataDir.store} (${store.repository})`;
  return `${store.reference}${store.insecure ? " (insecure)" : ""}`;
}

/**
 * The summary lines. Where it will listen is said only for `--check-config` (`planned`): a starting factory
 * prints each address once, as bound, after binding (run.ts).
 */
export function describeFactoryConfig(config: FactoryConfig, options: { planned?: boolean } = {}): string[] {
  const lines: string[] = [];
  const scheme = config.http.tls ? "https" : "http";
  if (options.planned) lines.push(`would listen on ${listenText(config.http.listen, scheme)}`);
  lines.push(
    `external URL ${config.http.externalUrl}${config.http.externalPxeUrl !== config.http.externalUrl ? ` (PXE ${config.http.externalPxeUrl})` : ""}`,
  );
  if (config.metricsListen === undefined) lines.push("metrics disabled");
  else if (options.planned) lines.push(`would serve metrics on ${listenText(config.metricsListen, "http")}`);
  const { images } = config;
  lines.push(
    `reading images from ${images.registry}${images.insecure ? " (insecure)" : ""}: ${images.imager}, ${images.installerBase}, ${images.extensionManifest}, ${images.overlayManifest}`,
  );
  const { caFile, certsDirs } = config.registryTls;
  if (caFile !== undefined) lines.push(`trusting registries' certificates also from ${caFile}`);
  if (certsDirs !== undefined) lines.push(`certs.d directories: ${certsDirs.join(", ")}`);
  for (const catalog of config.extraExtensionCatalogs) lines.push(`extra extensions catalog ${catalog}`);
  lines.push(
    `Talos versions from ${config.versions.minTalosVersion}, rechecked every ${formatGoDuration(config.versions.recheckIntervalMs)}`,
  );
  const { loaded } = config.signatures;
  if (loaded.disabled) {
    lines.push("signature verification DISABLED: source images are pinned by digest but not verified");
  } else {
    if (loaded.key) lines.push(`trusting signatures by key ${loaded.key.description}`);
    if (loaded.keyless)
      lines.push(
        `trusting keyless signatures of ${loaded.keyless.policy.describe()} (root: ${loaded.keyless.rootDescription})`,
      );
  }
  lines.push(`cache: ${storeText(config.stores.cache, config)}`);
  lines.push(`schematics: ${storeText(config.stores.schematics, config)}`);
  lines.push(
    `installers: ${storeText(config.stores.installerInternal, config)}${config.stores.installerExternal ? `, served from ${config.stores.installerExternal.reference}` : ", served through the factory"}`,
  );
  const key = config.cacheSigningKey;
  lines.push(
    key.privateKey ? `cache signing key ${key.file}` : `cache signing key ${key.file} (generated on first start)`,
  );
  lines.push(
    config.secureBoot.enabled
      ? `Secure Boot enabled: signing certificate ${config.secureBoot.signingCert.subject.replace(/\n/g, ", ")}`
      : "Secure Boot disabled",
  );
  lines.push(`data directory ${config.dataDir.root}`);
  return lines;
}
