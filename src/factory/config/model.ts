// The factory's validated configuration, as the service reads it (src/factory/config/config.ts makes it).
//
// The data directory (`--data-dir`, default ./data) has one layout:
//   <data-dir>/store/                        the embedded OCI store (cache, schematics, installers by default)
//   <data-dir>/keys/cache-signing-key.pem    the cache signing key when -cache-signing-key-path is not given
//   <data-dir>/testbed/                      the test bed release

import type { KeyObject, X509Certificate } from "node:crypto";
import type { LoadedVerification, VerificationFlagNames, VerificationOptions } from "../../signing/verify-options.ts";

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
  /** The schematic journal (src/factory/schematic-journal.ts), used with the embedded store. */
  readonly schematicJournal: string;
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
