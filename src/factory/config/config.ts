// The factory's validated configuration: what the service starts from. Every value is checked here, files
// are read once (keys parsed, regexps compiled, the trusted root loaded), and the result is frozen; nothing
// later re-reads flags or files. Problems are gathered and reported together, one line each, naming the
// flag or configuration key (and its source) that set the value.
//
// The configuration's shape is in model.ts; single values are checked in value-checks.ts, the image sources
// and stores in validate-registries.ts, key material in validate-keys.ts.
// Validation creates nothing; the service creates what is missing when it starts.

import { join, resolve } from "node:path";
import { isAppError } from "../../errors.ts";
import { type LoadedVerification, loadVerification } from "../../signing/verify-options.ts";
import { pathKind } from "./files.ts";
import { parseAge, parseSize } from "./gc-limits.ts";
import {
  type DataDirLayout,
  embeddedRepositories,
  type FactoryConfig,
  type ImageSources,
  type ListenAddress,
  type LogLevel,
  type RegistryTls,
  type RemoteRepository,
  type SecureBootConfig,
  type StoreLocation,
} from "./model.ts";
import { Problems } from "./problems.ts";
import { validateCacheSigningKey, validateHttpTls, validateSecureBoot } from "./validate-keys.ts";
import {
  group,
  repositoryLocation,
  validateExtraCatalogs,
  validateImages,
  validateRegistryTls,
  validateSignatureOptions,
} from "./validate-registries.ts";
import { check, intInRange, positiveDuration, str, type ValidationContext } from "./validation-context.ts";
import { logLevels, normalizeExternalUrl, normalizeTalosVersion, parseListenAddress } from "./value-checks.ts";
import type { SettingValues } from "./values.ts";

/**
 * Plain objects and arrays frozen all the way down; class instances (keys, certificates) and the objects in
 * `skip` (trust material owned by the sigstore libraries) are left as they are.
 */
function deepFreeze<T>(value: T, skip: ReadonlySet<unknown>): T {
  if (typeof value !== "object" || value === null || skip.has(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype) return value;
  for (const child of Object.values(value)) deepFreeze(child, skip);
  return Object.freeze(value);
}

/** Validates the assembled settings into a FactoryConfig; ConfigError listing every problem otherwise. */
export async function validateSettings(
  values: SettingValues,
  options: { cwd: string; problems?: Problems },
): Promise<FactoryConfig> {
  // Problems already found while reading values (a malformed duration…) are reported with the others.
  const problems = options.problems ?? new Problems();
  const ctx: ValidationContext = { values, problems, cwd: options.cwd };

  for (const { key, feature } of values.unsupportedInUse())
    problems.add(`${values.nameOf(key)} is not supported yet (${feature})`);

  const root = resolve(options.cwd, str(ctx, "dataDir"));
  const layout: DataDirLayout = {
    root,
    store: join(root, "store"),
    keys: join(root, "keys"),
    cacheSigningKeyFile: join(root, "keys", "cache-signing-key.pem"),
    testbed: join(root, "testbed"),
    schematicJournal: join(root, "schematics.journal"),
  };
  const rootKind = await pathKind(root);
  if (rootKind !== "missing" && rootKind !== "directory")
    problems.add(`${values.nameOf("dataDir")} ${str(ctx, "dataDir")}: exists and is not a directory`);

  const listen = check(ctx, "http.httpListenAddr", () => parseListenAddress(str(ctx, "http.httpListenAddr")));
  const metricsText = str(ctx, "metrics.addr");
  const metricsListen =
    metricsText === "" ? undefined : check(ctx, "metrics.addr", () => parseListenAddress(metricsText));
  if (listen && metricsListen && listen.port !== 0 && listen.port === metricsListen.port) {
    if (listen.host === undefined || metricsListen.host === undefined || listen.host === metricsListen.host)
      problems.add(
        `${values.nameOf("metrics.addr")}: ${metricsText} clashes with ${values.nameOf("http.httpListenAddr")} ${listen.text}`,
      );
  }
  const externalUrl = check(ctx, "http.externalURL", () => normalizeExternalUrl(str(ctx, "http.externalURL")));
  const pxeText = str(ctx, "http.externalPXEURL");
  const externalPxeUrl =
    pxeText === "" ? externalUrl : check(ctx, "http.externalPXEURL", () => normalizeExternalUrl(pxeText));
  const allowedOrigins = values.value<readonly string[]>("http.allowedOrigins");

  const levelText = str(ctx, "log.level");
  const logLevel = logLevels[levelText.toLowerCase()];
  if (logLevel === undefined)
    problems.add(
      `${values.nameOf("log.level")}: ${JSON.stringify(levelText)} is not one of ${Object.keys(logLevels).join(", ")}`,
    );

  const minTalosVersion = check(ctx, "build.minTalosVersion", () =>
    normalizeTalosVersion(str(ctx, "build.minTalosVersion")),
  );
  const brokenTalosVersions: string[] = [];
  for (const version of values.value<readonly string[]>("build.brokenTalosVersions")) {
    const normalized = check(ctx, "build.brokenTalosVersions", () => normalizeTalosVersion(version));
    if (normalized !== undefined) brokenTalosVersions.push(normalized);
  }
  const recheckIntervalMs = positiveDuration(ctx, "artifacts.talosVersionRecheckInterval");
  const registryRefreshIntervalMs = positiveDuration(ctx, "artifacts.refreshInterval");
  const maxConcurrency = intInRange(ctx, "build.maxConcurrency", 1, 1024);
  const schematicCapacity = intInRange(ctx, "cache.schematic.capacity", 1, 10_000_000);
  const negativeTtlMs = positiveDuration(ctx, "cache.schematic.negativeTTL", true);
  const gcMaxAgeMs = check(ctx, "cache.gc.maxAge", () => parseAge(str(ctx, "cache.gc.maxAge")));
  const gcMaxSizeBytes = check(ctx, "cache.gc.maxSize", () => parseSize(str(ctx, "cache.gc.maxSize")));
  const gcIntervalMs = positiveDuration(ctx, "cache.gc.interval");
  const intermediateMaxSizeBytes = check(ctx, "cache.intermediate.maxSize", () =>
    parseSize(str(ctx, "cache.intermediate.maxSize")),
  );
  const readHeaderTimeoutMs = positiveDuration(ctx, "http.readHeaderTimeout");
  const readTimeoutMs = positiveDuration(ctx, "http.readTimeout");
  const shutdownTimeoutMs = positiveDuration(ctx, "http.shutdownTimeout", true);

  const images = validateImages(ctx);
  const extraExtensionCatalogs = validateExtraCatalogs(ctx);

  const stores = {
    cache: repositoryLocation(ctx, group("cache.oci"), embeddedRepositories.cache),
    schematics: repositoryLocation(ctx, group("artifacts.schematic"), embeddedRepositories.schematics),
    installerInternal: repositoryLocation(
      ctx,
      group("artifacts.installer.internal"),
      embeddedRepositories.installerInternal,
    ),
    installerExternal: repositoryLocation(ctx, group("artifacts.installer.external"), undefined) as
      | RemoteRepository
      | undefined,
  };

  const signature = validateSignatureOptions(ctx);
  const [tls, secureBoot, cacheSigningKey, registryTls, loaded] = await Promise.all([
    validateHttpTls(ctx),
    validateSecureBoot(ctx),
    validateCacheSigningKey(ctx, layout),
    validateRegistryTls(ctx),
    (signature.refused ? Promise.resolve(undefined) : loadVerification(signature.options, signature.flagNames)).catch(
      (err: unknown) => {
        if (!isAppError(err)) throw err;
        problems.add(err.message);
        return undefined;
      },
    ),
  ]);

  problems.throwIfAny();
  // Every check above either produced a value or added a problem, so nothing is undefined past this point.
  const config: FactoryConfig = {
    dataDir: layout,
    http: {
      listen: listen as ListenAddress,
      externalUrl: externalUrl as string,
      externalUrlAsGiven: str(ctx, "http.externalURL"),
      externalPxeUrl: externalPxeUrl as string,
      allowedOrigins: [...allowedOrigins],
      tls: tls ?? undefined,
      readHeaderTimeoutMs: readHeaderTimeoutMs as number,
      readTimeoutMs: readTimeoutMs as number,
      shutdownTimeoutMs: shutdownTimeoutMs as number,
    },
    metricsListen,
    logLevel: logLevel as LogLevel,
    versions: {
      minTalosVersion: minTalosVersion as string,
      brokenTalosVersions,
      recheckIntervalMs: recheckIntervalMs as number,
    },
    registryRefreshIntervalMs: registryRefreshIntervalMs as number,
    maxConcurrency: maxConcurrency as number,
    images: images as ImageSources,
    registryTls: registryTls as RegistryTls,
    extraExtensionCatalogs,
    stores: {
      cache: stores.cache as StoreLocation,
      schematics: stores.schematics as StoreLocation,
      installerInternal: stores.installerInternal as StoreLocation,
      installerExternal: stores.installerExternal,
    },
    schematicCache: { capacity: schematicCapacity as number, negativeTtlMs: negativeTtlMs as number },
    cacheGc: {
      maxAgeMs: gcMaxAgeMs,
      maxSizeBytes: gcMaxSizeBytes,
      intervalMs: gcIntervalMs as number,
      intermediateMaxSizeBytes,
    },
    cacheSigningKey: cacheSigningKey as FactoryConfig["cacheSigningKey"],
    signatures: { options: signature.options, flagNames: signature.flagNames, loaded: loaded as LoadedVerification },
    secureBoot: secureBoot as SecureBootConfig,
  };
  return deepFreeze(config, new Set([loaded]));
}

/** What a command that only pulls source images needs of the factory's settings (`boot-assets build`). */
export type SourceSettings = Pick<
  FactoryConfig,
  "images" | "registryTls" | "signatures" | "versions" | "extraExtensionCatalogs"
>;

/**
 * Validates only the settings that say where the imager, installer and catalogs come from and how their
 * signatures are checked, with the factory's rules and messages: commands that pull what the factory pulls
 * take the same flags and mean the same by them.
 */
export async function validateSourceSettings(values: SettingValues, options: { cwd: string }): Promise<SourceSettings> {
  const problems = new Problems();
  const ctx: ValidationContext = { values, problems, cwd: options.cwd };
  const images = validateImages(ctx);
  const extraExtensionCatalogs = validateExtraCatalogs(ctx);
  const minTalosVersion = check(ctx, "build.minTalosVersion", () =>
    normalizeTalosVersion(str(ctx, "build.minTalosVersion")),
  );
  const signature = validateSignatureOptions(ctx);
  const registryTls = await validateRegistryTls(ctx);
  const loaded = signature.refused
    ? undefined
    : await loadVerification(signature.options, signature.flagNames).catch((err: unknown) => {
        if (!isAppError(err)) throw err;
        problems.add(err.message);
        return undefined;
      });
  problems.throwIfAny();
  const settings: SourceSettings = {
    images: images as ImageSources,
    registryTls: registryTls as RegistryTls,
    extraExtensionCatalogs,
    versions: {
      minTalosVersion: minTalosVersion as string,
      brokenTalosVersions: [],
      recheckIntervalMs: values.value<number>("artifacts.talosVersionRecheckInterval"),
    },
    signatures: { options: signature.options, flagNames: signature.flagNames, loaded: loaded as LoadedVerification },
  };
  return deepFreeze(settings, new Set([loaded]));
}
