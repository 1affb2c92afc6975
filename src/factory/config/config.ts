// The factory's validated configuration: what the service starts from. Every value is checked here, files
// are read once (keys parsed, regexps compiled, the trusted root loaded), and the result is frozen; nothing
// later re-reads flags or files. Problems are gathered and reported together, one line each, naming the
// flag or configuration key (and its source) that set the value.
//
// The data directory (`--data-dir`, default ./data) has one layout:
//   <data-dir>/store/                        the embedded OCI store (cache, schematics, installers by default)
//   <data-dir>/keys/cache-signing-key.pem    the cache signing key when -cache-signing-key-path is not given
//   <data-dir>/testbed/                      the test bed release
// Validation creates nothing; the service creates what is missing when it starts.

import type { KeyObject, X509Certificate } from "node:crypto";
import { join, resolve } from "node:path";
import { isAppError } from "../../errors.ts";
import { wellKnownCertificatesFromDirectory } from "../../imager/well-known-certificates.ts";
import { dockerHubRegistry, parseReference } from "../../oci/reference.ts";
import { keyPairProblems, keyProblems } from "../../signing/digest-signer.ts";
import { loadPrivateKey } from "../../signing/keys.ts";
import { FileProblem, readPemCertificate, readPemPrivateKey, readSmallTextFile } from "../../signing/pem-files.ts";
import type { IdentityMatcher } from "../../signing/policy.ts";
import {
  type LoadedVerification,
  loadVerification,
  type SignatureHashAlgorithm,
  type VerificationFlagNames,
  type VerificationOptions,
} from "../../signing/verify-options.ts";
import { formatSemVer, parseTolerant } from "../../talos/version.ts";
import { pathKind, readPemCaBundle, readTlsPrivateKey } from "./files.ts";
import { parseAge, parseSize } from "./gc-limits.ts";
import { Problems } from "./problems.ts";
import {
  joinRepositoryParts,
  type RepositoryGroupSpec,
  repositoryGroups,
  upstreamUnanchoredSubjectRegExps,
} from "./settings.ts";
import type { SettingValues } from "./values.ts";

/** A TCP listen address as Go's net.Listen reads it: ":8080" listens on every interface. */
export interface ListenAddress {
  /** undefined: every interface (IPv4 and IPv6), as Go does for ":8080". IPv6 without brackets. */
  readonly host: string | undefined;
  /** 0 picks a free port. */
  readonly port: number;
  /** As configured, for messages. */
  readonly text: string;
}

export interface RemoteRepository {
  readonly kind: "remote";
  readonly registry: string;
  /** Repository path inside the registry (no tag). */
  readonly repository: string;
  readonly insecure: boolean;
  /** registry/repository */
  readonly reference: string;
}

export interface EmbeddedRepository {
  readonly kind: "embedded";
  /** Repository path inside the embedded store. */
  readonly repository: string;
}

export type StoreLocation = EmbeddedRepository | RemoteRepository;

export interface DataDirLayout {
  readonly root: string;
  readonly store: string;
  readonly keys: string;
  readonly cacheSigningKeyFile: string;
  readonly testbed: string;
}

/** Where the imager, installer and catalogs come from: full image names without tag. */
export interface ImageSources {
  readonly registry: string;
  readonly namespace: string;
  readonly insecure: boolean;
  readonly imager: string;
  readonly installerBase: string;
  readonly installer: string;
  readonly extensionManifest: string;
  readonly overlayManifest: string;
  readonly talosctl: string;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "fatal";

/** Trust for every registry the factory reaches (this project's `-ca-file` and `-certs-dir`). */
export interface RegistryTls {
  /** Absolute path of a PEM bundle of extra CAs; undefined: none. */
  readonly caFile: string | undefined;
  /** Absolute certs.d directories replacing the defaults; undefined: the defaults (docker's, containers'). */
  readonly certsDirs: readonly string[] | undefined;
}

export type SecureBootConfig =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      readonly signingKeyFile: string;
      readonly signingKey: KeyObject;
      readonly signingCertFile: string;
      readonly signingCert: X509Certificate;
      readonly pcrKeyFile: string;
      readonly pcrKey: KeyObject;
      /** The operator's directory of the well-known UEFI CA certificates (checked at start); else Debian's. */
      readonly wellKnownCertificatesDir: string | undefined;
    };

export interface FactoryConfig {
  readonly dataDir: DataDirLayout;
  readonly http: {
    readonly listen: ListenAddress;
    /** Absolute http(s) URL ending in "/". */
    readonly externalUrl: string;
    /** -external-url exactly as given: upstream writes it into the schematic extension's author. */
    readonly externalUrlAsGiven: string;
    /** Absolute http(s) URL ending in "/"; the external URL unless set. */
    readonly externalPxeUrl: string;
    readonly allowedOrigins: readonly string[];
    readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
    readonly readHeaderTimeoutMs: number;
    readonly readTimeoutMs: number;
    /** How long shutdown waits for requests in flight before closing their connections. */
    readonly shutdownTimeoutMs: number;
  };
  /** undefined: no metrics listener (`-metrics-listen-addr ""`). */
  readonly metricsListen: ListenAddress | undefined;
  readonly logLevel: LogLevel;
  readonly versions: {
    /** major.minor.patch */
    readonly minTalosVersion: string;
    /** major.minor.patch[-pre] */
    readonly brokenTalosVersions: readonly string[];
    readonly recheckIntervalMs: number;
  };
  readonly registryRefreshIntervalMs: number;
  readonly maxConcurrency: number;
  readonly images: ImageSources;
  readonly registryTls: RegistryTls;
  /** Catalog image references; "{version}" stands for the Talos version tag, e.g. v1.9.0. */
  readonly extraExtensionCatalogs: readonly string[];
  readonly stores: {
    readonly cache: StoreLocation;
    readonly schematics: StoreLocation;
    /** A repository prefix installers are pushed under. */
    readonly installerInternal: StoreLocation;
    /** Where installer blob requests are redirected; undefined: proxied through the factory. */
    readonly installerExternal: RemoteRepository | undefined;
  };
  readonly schematicCache: { readonly capacity: number; readonly negativeTtlMs: number };
  /** Asset cache garbage collection (an addition: upstream has none). */
  readonly cacheGc: {
    readonly maxAgeMs: number | undefined;
    readonly maxSizeBytes: number | undefined;
    readonly intervalMs: number;
    /** Size limit of the intermediate cache (its age limit is maxAgeMs). */
    readonly intermediateMaxSizeBytes: number | undefined;
  };
  readonly cacheSigningKey: {
    readonly file: string;
    /** Given with -cache-signing-key-path (else the data directory's, generated when missing). */
    readonly explicit: boolean;
    /** undefined only when the data directory's key does not exist yet. */
    readonly privateKey: KeyObject | undefined;
  };
  readonly signatures: {
    readonly options: VerificationOptions;
    /** Names of the settings, for messages of the verifier. */
    readonly flagNames: VerificationFlagNames;
    readonly loaded: LoadedVerification;
  };
  readonly secureBoot: SecureBootConfig;
}

/** Repository paths used inside the embedded store when no repository is configured. */
export const embeddedRepositories = Object.freeze({
  cache: "image-factory/cache",
  schematics: "image-factory/schematics",
  installerInternal: "image-factory/installer",
});

/** The reference of an extra catalog for a Talos version ("{version}" replaced). */
export function extraCatalogReference(template: string, version: string): string {
  return template.replaceAll("{version}", version);
}

// ---- value checks ---------------------------------------------------------------------------------------

const portPattern = /^\d{1,5}$/;

/** Go's net.SplitHostPort rules: "host:port", "[v6]:port" or ":port"; numeric port 0–65535. */
export function parseListenAddress(text: string): ListenAddress {
  let host: string;
  let port: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1 || text[close + 1] !== ":") throw new Error("expected [IPv6]:port");
    host = text.slice(1, close);
    port = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) throw new Error('missing port (e.g. ":8080" or "127.0.0.1:8080")');
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(":")) throw new Error("an IPv6 address needs brackets, e.g. [::1]:8080");
  }
  if (!portPattern.test(port) || Number(port) > 65535) throw new Error(`invalid port ${JSON.stringify(port)}`);
  if (/[\s/]/.test(host)) throw new Error(`invalid host ${JSON.stringify(host)}`);
  return { host: host === "" ? undefined : host, port: Number(port), text };
}

/** An absolute http(s) URL without query, fragment or credentials, normalized to end in "/". */
export function normalizeExternalUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not an absolute URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`must be an http or https URL, got ${JSON.stringify(url.protocol.replace(/:$/, ""))}`);
  if (url.hostname === "") throw new Error(`must have a host: ${JSON.stringify(text)}`);
  if (url.username !== "" || url.password !== "") throw new Error("must not contain credentials");
  if (url.search !== "" || url.hash !== "") throw new Error("must not have a query or fragment");
  if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`;
  return url.href;
}

/** Tolerant as upstream reads these settings (ParseTolerant): "v1.8.2", "1.8" (→ 1.8.0), "1.9.0-alpha.1" → "1.8.2". */
export function normalizeTalosVersion(text: string): string {
  try {
    return formatSemVer(parseTolerant(text));
  } catch (err) {
    throw new Error(
      `not a version (expected e.g. 1.8.2 or v1.8.2): ${JSON.stringify(text)}: ${(err as Error).message}`,
    );
  }
}

const logLevels: Readonly<Record<string, LogLevel>> = {
  debug: "debug",
  info: "info",
  warn: "warn",
  error: "error",
  // zap's levels beyond error, as upstream accepts them
  dpanic: "error",
  panic: "fatal",
  fatal: "fatal",
};

const hashAlgorithms = new Set<SignatureHashAlgorithm>(["sha256", "sha384", "sha512"]);

// ---- validation -----------------------------------------------------------------------------------------

interface ValidationContext {
  values: SettingValues;
  problems: Problems;
  cwd: string;
}

function str(ctx: ValidationContext, key: string): string {
  return ctx.values.value<string>(key);
}

function check<T>(ctx: ValidationContext, key: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: ${(err as Error).message}`);
    return undefined;
  }
}

function groupKeys(group: RepositoryGroupSpec): string[] {
  return ["registry", "namespace", "repository"].map((part) => `${group.key}.${part}`);
}

function groupName(ctx: ValidationContext, group: RepositoryGroupSpec): string {
  const keys = groupKeys(group);
  const allDefault = keys.every((key) => ctx.values.get(key).origin.kind === "default");
  if (allDefault) return group.flag !== undefined ? `-${group.flag}` : group.key;
  return ctx.values.nameOfLatest(keys);
}

/** A registry host as given (host[:port]); Error when it would not be read as one. */
function checkRegistryHost(registry: string): void {
  if (registry === "") throw new Error("must not be empty");
  let parsed: string;
  try {
    parsed = parseReference(`${registry}/probe`).registry;
  } catch {
    throw new Error(`not a registry host[:port]: ${JSON.stringify(registry)}`);
  }
  if (parsed !== registry && !(registry === "index.docker.io" && parsed === dockerHubRegistry))
    throw new Error(`not a registry host[:port] (needs a "." or ":" or to be localhost): ${JSON.stringify(registry)}`);
}

/** A repository reference with an explicit registry host, no tag and no digest. */
function parseRemoteRepository(reference: string, insecure: boolean): RemoteRepository {
  const ref = parseReference(reference);
  const firstComponent = reference.split("/")[0] as string;
  if (!reference.includes("/") || (ref.registry !== firstComponent && firstComponent !== "index.docker.io"))
    throw new Error(`needs a registry host, e.g. localhost:5000/${reference}`);
  if (ref.tag !== undefined || ref.digest !== undefined) throw new Error("a repository takes no tag or digest");
  return {
    kind: "remote",
    registry: ref.registry,
    repository: ref.repository,
    insecure,
    reference: `${ref.registry}/${ref.repository}`,
  };
}

function repositoryLocation(
  ctx: ValidationContext,
  group: RepositoryGroupSpec,
  embedded: string | undefined,
): StoreLocation | undefined {
  const parts = {
    registry: str(ctx, `${group.key}.registry`),
    namespace: str(ctx, `${group.key}.namespace`),
    repository: str(ctx, `${group.key}.repository`),
  };
  const insecure = ctx.values.value<boolean>(`${group.key}.insecure`);
  const reference = joinRepositoryParts(parts);
  if (reference === "") {
    if (insecure)
      ctx.problems.add(
        `${ctx.values.nameOf(`${group.key}.insecure`)}: set, but there is no repository (${groupName(ctx, group)}) to connect to`,
      );
    return embedded === undefined ? undefined : { kind: "embedded", repository: embedded };
  }
  try {
    return parseRemoteRepository(reference, insecure);
  } catch (err) {
    ctx.problems.add(`${groupName(ctx, group)} ${JSON.stringify(reference)}: ${(err as Error).message}`);
    return undefined;
  }
}

function group(key: string): RepositoryGroupSpec {
  const found = repositoryGroups.find((g) => g.key === key);
  if (found === undefined) throw new Error(`no repository group ${key}`);
  return found;
}

async function checkedFile<T>(
  ctx: ValidationContext,
  key: string,
  read: (path: string) => Promise<T>,
): Promise<T | undefined> {
  const given = str(ctx, key);
  const path = resolve(ctx.cwd, given);
  try {
    return await read(path);
  } catch (err) {
    if (err instanceof FileProblem || isAppError(err)) {
      ctx.problems.add(`${ctx.values.nameOf(key)} ${given}: ${(err as Error).message}`);
      return undefined;
    }
    throw err;
  }
}

function validateImages(ctx: ValidationContext): ImageSources | undefined {
  const registry = str(ctx, "artifacts.core.registry");
  const namespace = str(ctx, "artifacts.core.namespace");
  const registryOk = check(ctx, "artifacts.core.registry", () => {
    checkRegistryHost(registry);
    return true;
  });
  const components = {
    imager: "artifacts.core.components.imager",
    installerBase: "artifacts.core.components.installerBase",
    installer: "artifacts.core.components.installer",
    extensionManifest: "artifacts.core.components.extensionManifest",
    overlayManifest: "artifacts.core.components.overlayManifest",
    talosctl: "artifacts.core.components.talosctl",
  } as const;
  const names: Partial<Record<keyof typeof components, string>> = {};
  for (const [field, key] of Object.entries(components) as Array<[keyof typeof components, string]>) {
    const name = str(ctx, key);
    const full = [registry, namespace, name].filter((p) => p !== "").join("/");
    const ok = check(ctx, key, () => {
      if (name === "") throw new Error("must not be empty");
      if (name.includes("@") || /:[^/]*$/.test(name))
        throw new Error(`an image name takes no tag or digest: ${JSON.stringify(name)}`);
      if (registryOk) {
        const ref = parseReference(full);
        if (ref.registry !== registry) throw new Error(`does not stay on the image registry: ${JSON.stringify(full)}`);
      }
      return true;
    });
    if (ok) names[field] = full;
  }
  if (!registryOk || Object.keys(names).length !== Object.keys(components).length) return undefined;
  return {
    registry,
    namespace,
    insecure: ctx.values.value<boolean>("artifacts.core.insecure"),
    ...(names as Record<keyof typeof components, string>),
  };
}

function validateExtraCatalogs(ctx: ValidationContext): string[] {
  const key = "artifacts.extraExtensionCatalogs";
  const templates = ctx.values.value<readonly string[]>(key);
  const valid: string[] = [];
  for (const template of templates) {
    const ok = check(ctx, key, () => {
      const sample = extraCatalogReference(template, "v1.9.0");
      if (sample.includes("{") || sample.includes("}"))
        throw new Error(`${JSON.stringify(template)}: the only placeholder is {version}`);
      const ref = parseReference(sample);
      const firstComponent = sample.split("/")[0] as string;
      if (!sample.includes("/") || ref.registry !== firstComponent)
        throw new Error(`${JSON.stringify(template)}: needs a registry host, e.g. ghcr.io/team/extensions:{version}`);
      if (template.split("/")[0]?.includes("{version}"))
        throw new Error(`${JSON.stringify(template)}: {version} cannot be part of the registry host`);
      return true;
    });
    if (ok) valid.push(template);
  }
  return valid;
}

/** `-ca-file` must be a readable PEM CA bundle, each `-certs-dir` an existing directory: checked once, here. */
async function validateRegistryTls(ctx: ValidationContext): Promise<RegistryTls | undefined> {
  const caKey = "registry.caFile";
  const dirsKey = "registry.certsDirs";
  let ok = true;
  let caFile: string | undefined;
  if (str(ctx, caKey) !== "") {
    const read = await checkedFile(ctx, caKey, readPemCaBundle);
    if (read === undefined) ok = false;
    else caFile = resolve(ctx.cwd, str(ctx, caKey));
  }
  const given = ctx.values.value<readonly string[]>(dirsKey);
  const certsDirs: string[] = [];
  for (const dir of given) {
    const path = resolve(ctx.cwd, dir);
    const kind = dir === "" ? "missing" : await pathKind(path);
    if (kind === "directory") certsDirs.push(path);
    else {
      ok = false;
      ctx.problems.add(
        `${ctx.values.nameOf(dirsKey)} ${dir}: ${kind === "missing" ? "no such directory" : "not a directory"}`,
      );
    }
  }
  if (!ok) return undefined;
  return { caFile, certsDirs: given.length > 0 ? certsDirs : undefined };
}

function validateSignatureOptions(ctx: ValidationContext): {
  options: VerificationOptions;
  flagNames: VerificationFlagNames;
  /** A problem was already reported: loading would only repeat it differently. */
  refused: boolean;
} {
  const { values } = ctx;
  const subjectRegExp = str(ctx, "containerSignature.subjectRegExp");
  const issuerRegExp = str(ctx, "containerSignature.issuerRegExp");
  const issuer = str(ctx, "containerSignature.issuer");
  const publicKeyFile = str(ctx, "containerSignature.publicKeyFile");
  const hashAlgo = str(ctx, "containerSignature.publicKeyHashAlgo");
  const trustedRootFile = str(ctx, "containerSignature.trustedRootFile");

  const flagNames: VerificationFlagNames = {
    issuer: values.nameOf("containerSignature.issuer"),
    issuerRegExp: values.nameOf("containerSignature.issuerRegExp"),
    subject: values.nameOf("containerSignature.subjectRegExp"),
    subjectRegExp: values.nameOf("containerSignature.subjectRegExp"),
    key: values.nameOf("containerSignature.publicKeyFile"),
    trustedRoot: values.nameOf("containerSignature.trustedRootFile"),
  };
  const options: VerificationOptions = {
    disabled: values.value<boolean>("containerSignature.disabled"),
    identities: [],
  };
  if (publicKeyFile !== "") options.publicKeyFile = resolve(ctx.cwd, publicKeyFile);
  if (hashAlgo !== "") {
    if (hashAlgorithms.has(hashAlgo as SignatureHashAlgorithm))
      options.publicKeyHashAlgo = hashAlgo as SignatureHashAlgorithm;
    else
      ctx.problems.add(
        `${values.nameOf("containerSignature.publicKeyHashAlgo")}: ${JSON.stringify(hashAlgo)} is not sha256, sha384 or sha512`,
      );
  }
  if (trustedRootFile !== "") options.trustedRootFile = resolve(ctx.cwd, trustedRootFile);
  let refused = false;
  if (upstreamUnanchoredSubjectRegExps.includes(subjectRegExp)) {
    refused = true;
    ctx.problems.add(
      `${flagNames.subjectRegExp}: ${JSON.stringify(subjectRegExp)} is upstream's unanchored default; regexps here match the WHOLE subject, so it would match nothing: leave it unset for the vendor identity or write e.g. ".+@siderolabs\\.com"`,
    );
  } else if (subjectRegExp !== "") {
    // Upstream: the issuer regexp, when set, wins over the exact issuer.
    const identity: IdentityMatcher = { subjectRegExp };
    if (issuerRegExp.trim() !== "") identity.issuerRegExp = issuerRegExp;
    else if (issuer !== "") identity.issuer = issuer;
    options.identities.push(identity);
  }
  return { options, flagNames, refused };
}

async function validateSecureBoot(ctx: ValidationContext): Promise<SecureBootConfig | undefined> {
  const enabled = ctx.values.value<boolean>("secureBoot.enabled");
  const keys = {
    signingKey: "secureBoot.file.signingKeyPath",
    signingCert: "secureBoot.file.signingCertPath",
    pcrKey: "secureBoot.file.pcrKeyPath",
  } as const;
  const wellKnownKey = "secureBoot.wellKnownCertificatesDir";
  if (!enabled) {
    for (const key of [...Object.values(keys), wellKnownKey])
      if (str(ctx, key) !== "")
        ctx.problems.add(
          `${ctx.values.nameOf(key)}: set, but Secure Boot is not enabled (${ctx.values.nameOf("secureBoot.enabled")})`,
        );
    return { enabled: false };
  }
  let missing = false;
  for (const key of Object.values(keys))
    if (str(ctx, key) === "") {
      missing = true;
      ctx.problems.add(`${ctx.values.nameOf("secureBoot.enabled")}: needs ${ctx.values.nameOf(key)}`);
    }
  if (missing) return undefined;
  const wellKnownDir = str(ctx, wellKnownKey) === "" ? undefined : resolve(ctx.cwd, str(ctx, wellKnownKey));
  const [signingKey, signingCert, pcrKey, wellKnownOk] = await Promise.all([
    checkedFile(ctx, keys.signingKey, readPemPrivateKey),
    checkedFile(ctx, keys.signingCert, readPemCertificate),
    checkedFile(ctx, keys.pcrKey, readPemPrivateKey),
    wellKnownDir === undefined
      ? true
      : wellKnownCertificatesFromDirectory(
          wellKnownDir,
          `${ctx.values.nameOf(wellKnownKey)} ${str(ctx, wellKnownKey)}`,
        ).then(
          () => true,
          (err: unknown) => {
            if (!isAppError(err)) throw err;
            ctx.problems.add(err.message);
            return false;
          },
        ),
  ]);
  if (signingKey === undefined || signingCert === undefined || pcrKey === undefined || !wellKnownOk) return undefined;
  // Secure Boot keys are RSA of at least 2048 bits, the certificate this key's and valid now
  // (src/signing/digest-signer.ts).
  const origin = (key: string) => `${ctx.values.nameOf(key)} ${str(ctx, key)}`;
  const keyProblemsFound = [
    ...keyPairProblems(
      { key: signingKey, certificate: signingCert },
      { key: origin(keys.signingKey), certificate: origin(keys.signingCert) },
    ),
    ...keyProblems(pcrKey, origin(keys.pcrKey)),
  ];
  for (const problem of keyProblemsFound) ctx.problems.add(problem);
  if (keyProblemsFound.length > 0) return undefined;
  return {
    enabled: true,
    signingKeyFile: resolve(ctx.cwd, str(ctx, keys.signingKey)),
    signingKey,
    signingCertFile: resolve(ctx.cwd, str(ctx, keys.signingCert)),
    signingCert,
    pcrKeyFile: resolve(ctx.cwd, str(ctx, keys.pcrKey)),
    pcrKey,
    wellKnownCertificatesDir: wellKnownDir,
  };
}

async function readCacheSigningKey(path: string): Promise<KeyObject> {
  await readSmallTextFile(path); // existence, type and size, with a FileProblem naming them
  const key = await loadPrivateKey(path);
  if (key.asymmetricKeyType !== "ec")
    throw new FileProblem(
      `a ${key.asymmetricKeyType} key; cache entries are signed with an ECDSA key (PEM EC private key)`,
    );
  return key;
}

async function validateCacheSigningKey(
  ctx: ValidationContext,
  layout: DataDirLayout,
): Promise<FactoryConfig["cacheSigningKey"] | undefined> {
  const key = "cache.signingKeyPath";
  if (str(ctx, key) !== "") {
    const privateKey = await checkedFile(ctx, key, readCacheSigningKey);
    if (privateKey === undefined) return undefined;
    return { file: resolve(ctx.cwd, str(ctx, key)), explicit: true, privateKey };
  }
  const file = layout.cacheSigningKeyFile;
  if ((await pathKind(file)) === "missing") return { file, explicit: false, privateKey: undefined };
  try {
    return { file, explicit: false, privateKey: await readCacheSigningKey(file) };
  } catch (err) {
    ctx.problems.add(
      `the data directory's cache signing key ${file}: ${(err as Error).message} (or give -cache-signing-key-path)`,
    );
    return undefined;
  }
}

async function validateHttpTls(ctx: ValidationContext): Promise<FactoryConfig["http"]["tls"] | null> {
  const certKey = "http.certFile";
  const keyKey = "http.keyFile";
  const certFile = str(ctx, certKey);
  const keyFile = str(ctx, keyKey);
  if (certFile === "" && keyFile === "") return undefined;
  if (certFile === "" || keyFile === "") {
    const [given, missing] = certFile === "" ? [keyKey, certKey] : [certKey, keyKey];
    ctx.problems.add(`${ctx.values.nameOf(given)}: needs ${ctx.values.nameOf(missing)} too`);
    return null;
  }
  const [cert, key] = await Promise.all([
    checkedFile(ctx, certKey, readPemCertificate),
    checkedFile(ctx, keyKey, readTlsPrivateKey),
  ]);
  if (cert === undefined || key === undefined) return null;
  if (!cert.checkPrivateKey(key)) {
    ctx.problems.add(
      `${ctx.values.nameOf(certKey)} ${certFile}: does not certify the key of ${ctx.values.nameOf(keyKey)}`,
    );
    return null;
  }
  return { certFile: resolve(ctx.cwd, certFile), keyFile: resolve(ctx.cwd, keyFile) };
}

function positiveDuration(ctx: ValidationContext, key: string, allowZero = false): number | undefined {
  const ms = ctx.values.value<number>(key);
  if (ms < 0 || (!allowZero && ms === 0)) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: must be ${allowZero ? "zero or more" : "more than zero"}`);
    return undefined;
  }
  return ms;
}

function intInRange(ctx: ValidationContext, key: string, min: number, max: number): number | undefined {
  const value = ctx.values.value<number>(key);
  if (value < min || value > max) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: ${value} is not between ${min} and ${max}`);
    return undefined;
  }
  return value;
}

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
