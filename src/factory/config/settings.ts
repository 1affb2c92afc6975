// THE table of the factory's settings: every configuration key (the current `--config` form, upstream's key
// names), its type and default, and the legacy single-dash flag that sets it. Both generations of
// configuration are read into this one table, so a setting has one name in code and two spellings for
// operators.
//
// Deliberate differences from upstream (docs/upstream.md, "Configuration"):
//   - the default subject regexp is the vendor identity matched as a WHOLE string (see signing/policy.ts);
//   - the cache, schematic and internal installer repositories default to EMPTY, meaning "the embedded store
//     under --data-dir" (upstream points at ghcr.io);
//   - `containerSignature.publicKeyHashAlgo` defaults to empty, meaning "by key type" (sha256 for P-256 and
//     RSA keys, as upstream's fixed sha256; sha384/sha512 for P-384/P-521 keys, as cosign signs them);
//   - additions: `cache.gc.*` (garbage collection: upstream has none), `http.readHeaderTimeout`, `http.readTimeout`, `http.shutdownTimeout`,
//     `containerSignature.trustedRootFile`, `artifacts.extraExtensionCatalogs`, `dataDir`,
//     `log.level`, `secureBoot.wellKnownCertificatesDir` (upstream embeds the certificates), and `registry.caFile` / `registry.certsDirs` (upstream's `registry` section only tunes
//     its client's concurrency; it trusts the system roots and nothing else).
// Settings for features not built yet carry `unsupported`: they are read (so an upstream configuration file
// or command line parses) but any value other than the default is refused by name at validation.

import { defaultExternalUrl } from "../../imager/extensions.ts";
import { vendorIdentity } from "../../signing/policy.ts";

export type SettingType = "string" | "bool" | "int" | "duration" | "list";

/** Durations are held in milliseconds; lists as string arrays. */
export type SettingValue = string | boolean | number | readonly string[];

export interface SettingSpec {
  /** Canonical configuration key, e.g. "containerSignature.subjectRegExp". */
  key: string;
  type: SettingType;
  default: SettingValue;
  /** The legacy flag (without dash) that sets it, when there is one. */
  flag?: string;
  /** The feature this belongs to, when it is not built yet. */
  unsupported?: string;
  help: string;
}

/**
 * An OCI repository given as one reference (`-cache-repository localhost:5000/cache`, or a string value
 * for the key) or as its parts `registry`, `namespace`, `repository` and `insecure`.
 */
export interface RepositoryGroupSpec {
  key: string;
  flag?: string;
  insecureFlag?: string;
  default: { registry: string; namespace: string; repository: string };
  unsupported?: string;
  help: string;
}

const minutes = (n: number) => n * 60_000;
const seconds = (n: number) => n * 1000;

export const repositoryGroups: readonly RepositoryGroupSpec[] = [
  {
    key: "cache.oci",
    flag: "cache-repository",
    insecureFlag: "insecure-cache-repository",
    default: { registry: "", namespace: "", repository: "" },
    help: "cache repository for boot assets (default: the embedded store under --data-dir)",
  },
  {
    key: "artifacts.schematic",
    flag: "schematic-service-repository",
    insecureFlag: "insecure-schematic-service-repository",
    default: { registry: "", namespace: "", repository: "" },
    help: "repository for schematics (default: the embedded store under --data-dir)",
  },
  {
    key: "artifacts.installer.internal",
    flag: "installer-internal-repository",
    insecureFlag: "insecure-installer-internal-repository",
    default: { registry: "", namespace: "", repository: "" },
    help: "repository prefix installers are pushed under (default: the embedded store under --data-dir)",
  },
  {
    key: "artifacts.installer.external",
    flag: "installer-external-repository",
    default: { registry: "", namespace: "", repository: "" },
    help: "public repository prefix installer blobs are redirected to (default: proxied through the factory)",
  },
  {
    key: "enterprise.extraExtensions.manifest",
    default: { registry: "", namespace: "", repository: "" },
    unsupported: "upstream Enterprise extra extensions; use -extra-extensions-catalog",
    help: "",
  },
  {
    key: "enterprise.spdx.cache",
    default: { registry: "ghcr.io", namespace: "siderolabs/image-factory", repository: "spdx-cache" },
    unsupported: "SPDX documents (upstream Enterprise)",
    help: "",
  },
  {
    key: "enterprise.vex.data",
    default: { registry: "ghcr.io", namespace: "siderolabs/talos-vex", repository: "talos-vex-data" },
    unsupported: "VEX data (upstream Enterprise)",
    help: "",
  },
];

const s3 = "the S3 cache";
const cdn = "the CDN cache";
const gsa = "keyless cache signing with a Google service account";
const azure = "Secure Boot keys in Azure Key Vault";
const aws = "Secure Boot keys in AWS KMS";
const auth = "authentication (upstream Enterprise)";
const audit = "the audit log (upstream Enterprise)";
const scanner = "the vulnerability scanner (upstream Enterprise)";
const vex = "VEX data (upstream Enterprise)";
const registryTuning = "registry client tuning";

/** Upstream's defaults for the subject regexp: unanchored, so meaningless (matching nothing) when anchored. */
export const upstreamUnanchoredSubjectRegExps: readonly string[] = [
  "(@siderolabs\\.com$|^releasemgr-svc@talos-production\\.iam\\.gserviceaccount\\.com$)",
  "@siderolabs\\.com$",
];

export const scalarSettings: readonly SettingSpec[] = [
  // http
  {
    key: "http.httpListenAddr",
    type: "string",
    default: ":8080",
    flag: "http-port",
    help: 'HTTP listen address (":8080": all interfaces)',
  },
  {
    key: "http.certFile",
    type: "string",
    default: "",
    flag: "http-cert-file",
    help: "TLS certificate file for HTTPS (optional)",
  },
  {
    key: "http.keyFile",
    type: "string",
    default: "",
    flag: "http-key-file",
    help: "TLS key file for HTTPS (optional)",
  },
  {
    key: "http.externalURL",
    type: "string",
    default: defaultExternalUrl,
    flag: "external-url",
    help: "the factory's public URL",
  },
  {
    key: "http.externalPXEURL",
    type: "string",
    default: "",
    flag: "external-pxe-url",
    help: "public URL for PXE (default: -external-url)",
  },
  { key: "http.allowedOrigins", type: "list", default: ["*"], help: "CORS allowed origins" },
  {
    key: "http.readHeaderTimeout",
    type: "duration",
    default: seconds(20),
    flag: "http-read-header-timeout",
    help: "time a client has to send a request's headers (then 408 and the connection closes)",
  },
  {
    key: "http.readTimeout",
    type: "duration",
    default: minutes(1),
    flag: "http-read-timeout",
    help: "time a client has to send a whole request, body included (then 408 and the connection closes)",
  },
  {
    key: "http.shutdownTimeout",
    type: "duration",
    default: seconds(5),
    flag: "shutdown-timeout",
    help: "on SIGTERM/SIGINT, how long requests in flight may finish before their connections are closed",
  },
  // build
  {
    key: "build.minTalosVersion",
    type: "string",
    default: "1.2.0",
    flag: "min-talos-version",
    help: "minimum Talos version offered",
  },
  { key: "build.brokenTalosVersions", type: "list", default: [], help: "Talos versions never offered" },
  {
    key: "build.maxConcurrency",
    type: "int",
    default: 6,
    flag: "asset-builder-max-concurrency",
    help: "maximum concurrent asset builds",
  },
  // containerSignature
  {
    key: "containerSignature.subjectRegExp",
    type: "string",
    default: vendorIdentity.subjectRegExp as string,
    flag: "container-signature-subject-regexp",
    help: "keyless: RE2 regexp the WHOLE certificate subject must match (empty: no keyless verification)",
  },
  {
    key: "containerSignature.issuerRegExp",
    type: "string",
    default: "",
    flag: "container-signature-issuer-regexp",
    help: "keyless: RE2 regexp the WHOLE OIDC issuer must match (wins over -container-signature-issuer)",
  },
  {
    key: "containerSignature.issuer",
    type: "string",
    default: vendorIdentity.issuer as string,
    flag: "container-signature-issuer",
    help: "keyless: the OIDC issuer, exactly",
  },
  {
    key: "containerSignature.publicKeyFile",
    type: "string",
    default: "",
    flag: "container-signature-pubkey",
    help: "PEM public key source images may be signed with",
  },
  {
    key: "containerSignature.publicKeyHashAlgo",
    type: "string",
    default: "",
    flag: "container-signature-pubkey-hashalgo",
    help: "digest of key signatures: sha256, sha384 or sha512 (default: by key type)",
  },
  {
    key: "containerSignature.trustedRootFile",
    type: "string",
    default: "",
    flag: "container-signature-trusted-root",
    help: "Sigstore trusted_root.json for keyless verification (default: the public-good root, offline)",
  },
  {
    key: "containerSignature.disabled",
    type: "bool",
    default: false,
    flag: "container-signature-disabled",
    help: "disable signature verification (not recommended)",
  },
  // cache
  {
    key: "cache.signingKeyPath",
    type: "string",
    default: "",
    flag: "cache-signing-key-path",
    help: "PEM ECDSA private key cache entries are signed with (default: generated under --data-dir)",
  },
  {
    key: "cache.gc.maxAge",
    type: "string",
    default: "",
    flag: "asset-cache-max-age",
    help: "garbage collection: remove cached assets not used for this long, e.g. 30d (empty: no age limit)",
  },
  {
    key: "cache.gc.maxSize",
    type: "string",
    default: "",
    flag: "asset-cache-max-size",
    help: "garbage collection: remove the least recently used cached assets beyond this size, e.g. 50GiB (empty: no limit)",
  },
  {
    key: "cache.intermediate.maxSize",
    type: "string",
    default: "16GiB",
    flag: "intermediate-cache-max-size",
    help: "garbage collection: remove the least recently used extension images of the intermediate cache beyond this size (empty: no limit)",
  },
  {
    key: "cache.gc.interval",
    type: "duration",
    default: minutes(60),
    flag: "asset-cache-gc-interval",
    help: "how often garbage collection runs when a limit is set (and unreferenced store blobs are freed)",
  },
  { key: "cache.schematic.capacity", type: "int", default: 100_000, help: "schematics kept in memory" },
  {
    key: "cache.schematic.negativeTTL",
    type: "duration",
    default: seconds(30),
    help: "how long an unknown schematic is remembered as unknown",
  },
  { key: "cache.s3.enabled", type: "bool", default: false, flag: "cache-s3-enabled", unsupported: s3, help: "" },
  {
    key: "cache.s3.bucket",
    type: "string",
    default: "image-factory",
    flag: "cache-s3-bucket",
    unsupported: s3,
    help: "",
  },
  { key: "cache.s3.region", type: "string", default: "", flag: "cache-s3-region", unsupported: s3, help: "" },
  { key: "cache.s3.endpoint", type: "string", default: "", flag: "cache-s3-endpoint", unsupported: s3, help: "" },
  { key: "cache.s3.insecure", type: "bool", default: false, flag: "insecure-cache-s3", unsupported: s3, help: "" },
  { key: "cache.s3.presignedURLTTL", type: "duration", default: minutes(60), unsupported: s3, help: "" },
  { key: "cache.cdn.enabled", type: "bool", default: false, flag: "cache-cdn-enabled", unsupported: cdn, help: "" },
  { key: "cache.cdn.host", type: "string", default: "", flag: "cache-cdn-host", unsupported: cdn, help: "" },
  {
    key: "cache.cdn.trimPrefix",
    type: "string",
    default: "",
    flag: "cache-cdn-trim-prefix",
    unsupported: cdn,
    help: "",
  },
  { key: "cache.gsa.serviceAccountEmail", type: "string", default: "", unsupported: gsa, help: "" },
  { key: "cache.gsa.keyFile", type: "string", default: "", unsupported: gsa, help: "" },
  { key: "cache.gsa.fulcioURL", type: "string", default: "", unsupported: gsa, help: "" },
  { key: "cache.gsa.rekorURL", type: "string", default: "", unsupported: gsa, help: "" },
  { key: "cache.gsa.tsaURL", type: "string", default: "", unsupported: gsa, help: "" },
  // metrics, logging
  {
    key: "metrics.addr",
    type: "string",
    default: ":2122",
    flag: "metrics-listen-addr",
    help: "Prometheus metrics listen address (empty: disabled)",
  },
  {
    key: "log.level",
    type: "string",
    default: "info",
    flag: "log-level",
    help: "log level: debug, info, warn, error (dpanic, panic, fatal: as error)",
  },
  // secureBoot
  { key: "secureBoot.enabled", type: "bool", default: false, flag: "secureboot", help: "enable Secure Boot assets" },
  {
    key: "secureBoot.file.signingKeyPath",
    type: "string",
    default: "",
    flag: "secureboot-signing-key-path",
    help: "Secure Boot (UKI) signing key, PEM",
  },
  {
    key: "secureBoot.file.signingCertPath",
    type: "string",
    default: "",
    flag: "secureboot-signing-cert-path",
    help: "Secure Boot (UKI) signing certificate, PEM",
  },
  {
    key: "secureBoot.file.pcrKeyPath",
    type: "string",
    default: "",
    flag: "secureboot-pcr-key-path",
    help: "Secure Boot PCR signing key, PEM",
  },
  {
    key: "secureBoot.wellKnownCertificatesDir",
    type: "string",
    default: "",
    flag: "secureboot-well-known-certificates-dir",
    help: "directory holding the well-known UEFI CA certificates (DER or PEM) for schematics with includeWellKnownCertificates (default: fetched from Debian's python3-virt-firmware on first need)",
  },
  {
    key: "secureBoot.azureKeyVault.url",
    type: "string",
    default: "",
    flag: "secureboot-azure-key-vault-url",
    unsupported: azure,
    help: "",
  },
  {
    key: "secureBoot.azureKeyVault.certificateName",
    type: "string",
    default: "",
    flag: "secureboot-azure-certificate-name",
    unsupported: azure,
    help: "",
  },
  {
    key: "secureBoot.azureKeyVault.keyName",
    type: "string",
    default: "",
    flag: "secureboot-azure-key-name",
    unsupported: azure,
    help: "",
  },
  {
    key: "secureBoot.awsKMS.keyID",
    type: "string",
    default: "",
    flag: "secureboot-aws-kms-id-key-id",
    unsupported: aws,
    help: "",
  },
  {
    key: "secureBoot.awsKMS.pcrKeyID",
    type: "string",
    default: "",
    flag: "secureboot-aws-pcr-kms-key-id",
    unsupported: aws,
    help: "",
  },
  {
    key: "secureBoot.awsKMS.certPath",
    type: "string",
    default: "",
    flag: "secureboot-aws-cert-path",
    unsupported: aws,
    help: "",
  },
  { key: "secureBoot.awsKMS.certARN", type: "string", default: "", unsupported: aws, help: "" },
  {
    key: "secureBoot.awsKMS.region",
    type: "string",
    default: "",
    flag: "secureboot-aws-region",
    unsupported: aws,
    help: "",
  },
  // artifacts
  {
    key: "artifacts.core.registry",
    type: "string",
    default: "ghcr.io",
    flag: "image-registry",
    help: "registry the imager, installer and catalogs are pulled from",
  },
  {
    key: "artifacts.core.namespace",
    type: "string",
    default: "",
    help: "path prefix for every image pulled from the registry (pull-through caches)",
  },
  {
    key: "artifacts.core.insecure",
    type: "bool",
    default: false,
    flag: "insecure-image-registry",
    help: "plain HTTP / unverified TLS to the image registry",
  },
  {
    key: "artifacts.core.components.installerBase",
    type: "string",
    default: "siderolabs/installer-base",
    flag: "installer-base-image",
    help: "installer-base image name",
  },
  {
    key: "artifacts.core.components.installer",
    type: "string",
    default: "siderolabs/installer",
    flag: "installer-image",
    help: "installer image name",
  },
  {
    key: "artifacts.core.components.imager",
    type: "string",
    default: "siderolabs/imager",
    flag: "imager-image",
    help: "imager image name",
  },
  {
    key: "artifacts.core.components.extensionManifest",
    type: "string",
    default: "siderolabs/extensions",
    flag: "extension-manifest-image",
    help: "extensions catalog image name",
  },
  {
    key: "artifacts.core.components.overlayManifest",
    type: "string",
    default: "siderolabs/overlays",
    flag: "overlay-manifest-image",
    help: "overlays catalog image name",
  },
  {
    key: "artifacts.core.components.talosctl",
    type: "string",
    default: "siderolabs/talosctl-all",
    flag: "talosctl-image",
    help: "talosctl image name",
  },
  {
    key: "artifacts.talosVersionRecheckInterval",
    type: "duration",
    default: minutes(15),
    flag: "talos-versions-recheck-interval",
    help: "how often the Talos version list is refreshed",
  },
  {
    key: "artifacts.refreshInterval",
    type: "duration",
    default: minutes(5),
    flag: "registry-refresh-interval",
    help: "how often registry state is refreshed",
  },
  {
    key: "artifacts.extraExtensionCatalogs",
    type: "list",
    default: [],
    flag: "extra-extensions-catalog",
    help: "extra extensions catalog image (repeatable; {version} is replaced by the Talos version)",
  },
  // this project
  {
    key: "dataDir",
    type: "string",
    default: "./data",
    flag: "data-dir",
    help: "directory of the embedded store and generated keys",
  },
  {
    key: "registry.caFile",
    type: "string",
    default: "",
    flag: "ca-file",
    help: "PEM file of extra CA certificates trusted for every registry the factory talks to (image registry, cache, schematic and installer repositories)",
  },
  {
    key: "registry.certsDirs",
    type: "list",
    default: [],
    flag: "certs-dir",
    help: "certs.d directory holding <host[:port]>/ca.crt (and client *.cert/*.key) files, repeatable; replaces the default /etc/docker/certs.d, /etc/containers/certs.d, ~/.config/containers/certs.d",
  },
  // upstream features not built here
  { key: "registry.jobs", type: "int", default: 64, unsupported: registryTuning, help: "" },
  { key: "registry.debug", type: "bool", default: false, unsupported: registryTuning, help: "" },
  { key: "authentication.enabled", type: "bool", default: false, unsupported: auth, help: "" },
  { key: "authentication.provider", type: "string", default: "htpasswd", unsupported: auth, help: "" },
  { key: "authentication.htpasswdPath", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.domain", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.audience", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.machineScope", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.clientID", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.clientSecret", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.auth0.sessionKey", type: "string", default: "", unsupported: auth, help: "" },
  { key: "authentication.downloadTokenKeyPath", type: "string", default: "", unsupported: auth, help: "" },
  {
    key: "authentication.downloadTokenTTL.default",
    type: "duration",
    default: minutes(5),
    unsupported: auth,
    help: "",
  },
  {
    key: "authentication.downloadTokenTTL.max",
    type: "duration",
    default: minutes(8 * 60),
    unsupported: auth,
    help: "",
  },
  { key: "authentication.downloadTokenTTL.min", type: "duration", default: seconds(30), unsupported: auth, help: "" },
  { key: "audit.mode", type: "string", default: "", unsupported: audit, help: "" },
  { key: "audit.file.path", type: "string", default: "", unsupported: audit, help: "" },
  { key: "audit.file.maxAge", type: "int", default: 30, unsupported: audit, help: "" },
  { key: "audit.file.maxSizeMB", type: "int", default: 256, unsupported: audit, help: "" },
  { key: "audit.file.maxBackups", type: "int", default: 16, unsupported: audit, help: "" },
  {
    key: "enterprise.scanner.databaseURL",
    type: "string",
    default: "https://grype.anchore.io/databases",
    unsupported: scanner,
    help: "",
  },
  { key: "enterprise.scanner.databaseUpdateAt", type: "string", default: "07:00", unsupported: scanner, help: "" },
  {
    key: "enterprise.scanner.databaseRootDir",
    type: "string",
    default: "/var/lib/grype",
    unsupported: scanner,
    help: "",
  },
  { key: "enterprise.scanner.cache.ttl", type: "duration", default: minutes(15), unsupported: scanner, help: "" },
  { key: "enterprise.scanner.cache.capacity", type: "int", default: 4096, unsupported: scanner, help: "" },
  { key: "enterprise.vex.cache.ttl", type: "duration", default: minutes(15), unsupported: vex, help: "" },
  { key: "enterprise.vex.cache.capacity", type: "int", default: 65536, unsupported: vex, help: "" },
];

export type RepositoryPart = "registry" | "namespace" | "repository" | "insecure";

/** Every leaf setting: the scalars plus the four parts of each repository group. */
export function allSettings(): SettingSpec[] {
  const leaves: SettingSpec[] = [...scalarSettings];
  for (const group of repositoryGroups) {
    for (const part of ["registry", "namespace", "repository"] as const)
      leaves.push({
        key: `${group.key}.${part}`,
        type: "string",
        default: group.default[part],
        unsupported: group.unsupported,
        help: "",
      });
    leaves.push({
      key: `${group.key}.insecure`,
      type: "bool",
      default: false,
      flag: group.insecureFlag,
      unsupported: group.unsupported,
      help: group.insecureFlag ? `plain HTTP / unverified TLS for -${group.flag}` : "",
    });
  }
  return leaves;
}

/**
 * Splits a repository reference into registry, namespace and repository as upstream does (its
 * OCIRepositoryOptions.UnmarshalText): the first component is the registry when it contains "." or ":",
 * the last is the repository, the ones between the namespace. Empty text leaves the parts unchanged.
 */
export function splitRepositoryReference(text: string): { registry: string; namespace: string; repository: string } {
  const parts = text.split("/");
  const hasRegistry = parts.length > 1 && ((parts[0] as string).includes(".") || (parts[0] as string).includes(":"));
  const registry = hasRegistry ? (parts.shift() as string) : "";
  const repository = parts.pop() ?? "";
  return { registry, namespace: parts.join("/"), repository };
}

/** Joins the parts back into one reference, skipping empty ones. */
export function joinRepositoryParts(parts: { registry: string; namespace: string; repository: string }): string {
  return [parts.registry, parts.namespace, parts.repository].filter((p) => p !== "").join("/");
}
