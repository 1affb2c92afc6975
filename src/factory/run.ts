// Starting the factory from a validated configuration: open the stores (the embedded one under --data-dir
// when any store is embedded), build the services, serve HTTP and metrics, and on SIGINT/SIGTERM shut down
// gracefully: stop accepting, let requests in flight finish for at most -shutdown-timeout (then abort the
// shutdown signal and close their connections), then close the stores (nothing half-written:
// schematics are pushed layer, config, then the tagged manifest, and the store writes by rename).

import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import { type Logger, pino } from "pino";
import { AppError } from "../errors.ts";
import { RegistryClient } from "../oci/client/client.ts";
import { sha256Digest } from "../oci/digest.ts";
import type { Repository } from "../oci/repository.ts";
import { openStore, type RegistryStore } from "../registry/store.ts";
import { publicKeyPem } from "../signing/keys.ts";
import { KeySigner } from "../signing/signer.ts";
import { certificatePem } from "../talos/secureboot-database.ts";
import { buildFactoryApp } from "./app.ts";
import { createAssetService } from "./assets/factory.ts";
import type { AssetService } from "./assets/service.ts";
import type { FactoryConfig, ListenAddress, StoreLocation } from "./config/model.ts";
import { startMetricsServer } from "./http/metrics-server.ts";
import { registerTalosctlRoutes } from "./http/talosctl-routes.ts";
import { registerUiRoutes } from "./http/ui-routes.ts";
import { InstallerService } from "./installers/service.ts";
import { createFactoryMetrics, sourcesMetricsHooks } from "./metrics.ts";
import { registryClientOptionsFor } from "./registry-access.ts";
import { SchematicJournal } from "./schematic-journal.ts";
import { SchematicService } from "./schematics.ts";
import { createImagerInputResolver, createSources, registerSourceRoutes, TalosctlService } from "./sources/index.ts";

export interface StartFactoryOptions {
  /** Default: pino JSON lines on stdout at the configured level. */
  logger?: Logger;
  /** Start-up lines for the operator (default: stdout). */
  print?: (line: string) => void;
  /** Process metrics (off in tests that start several factories). Default on. */
  processMetrics?: boolean;
  /**
   * runFactory only: shut down gracefully when the parent process goes (this process is re-parented), as
   * for a SIGTERM. For `npm start`: npm runs the factory under a shell that does not pass SIGTERM on.
   */
  stopWithParent?: boolean;
}

/** How often the parent is looked at with `stopWithParent`. */
const parentCheckMs = 500;

/**
 * Binds, or fails naming which listener and flag could not bind and why (EADDRINUSE alone names neither).
 */
async function bindOrExplain<T>(
  what: string,
  flag: string,
  address: ListenAddress,
  bind: () => Promise<T>,
): Promise<T> {
  try {
    return await bind();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reasons: Record<string, string> = {
      EADDRINUSE: "the address is already in use (another process listens there)",
      EACCES: "permission denied (ports below 1024 need privileges)",
      EADDRNOTAVAIL: "no interface of this machine has that address",
    };
    const reason = code === undefined ? undefined : reasons[code];
    if (reason === undefined) throw err;
    throw new AppError("Conflict", `${what} cannot listen on ${flag} ${address.text}: ${reason}`, {
      code,
      cause: err,
    });
  }
}

export interface RunningFactory {
  /** Where the factory answers, e.g. http://127.0.0.1:8080 (the bound port, also when 0 was asked for). */
  url: string;
  metricsUrl: string | undefined;
  logger: Logger;
  schematics: SchematicService;
  /** The asset service (builds, the cache, garbage collection). */
  assets: AssetService;
  /** Aborted at shutdown once the drain timeout has passed: what long work for a request listens to. */
  shutdownSignal: AbortSignal;
  /**
   * Stops accepting, lets requests in flight finish for at most the shutdown timeout (then aborts the
   * shutdown signal and closes their connections), then closes sources, clients and stores.
   */
  close(): Promise<void>;
}

function usesEmbeddedStore(config: FactoryConfig): boolean {
  const { cache, schematics, installerInternal } = config.stores;
  return [cache, schematics, installerInternal].some((store) => store.kind === "embedded");
}

/** The cache signing key (read from the data directory when it was generated at this start). */
async function cacheSigningPrivateKey(config: FactoryConfig): Promise<KeyObject> {
  const key = config.cacheSigningKey;
  return key.privateKey ?? createPrivateKey(await readFile(key.file));
}

/** The source-image proxy's names (upstream's ImageMap) → repository paths on the image registry. */
function sourceProxyImages(config: FactoryConfig): Record<string, string> {
  const { images } = config;
  const path = (full: string) => full.slice(images.registry.length + 1);
  return {
    "installer-base": path(images.installerBase),
    installer: path(images.installer),
    imager: path(images.imager),
    extensions: path(images.extensionManifest),
    overlays: path(images.overlayManifest),
    "talosctl-all": path(images.talosctl),
  };
}

/** Creates the data directory's cache signing key when it is missing (the config said it would be). */
async function ensureCacheSigningKey(config: FactoryConfig, log: Logger): Promise<void> {
  const key = config.cacheSigningKey;
  const cache = config.stores.cache;
  // A remote cache repository may be shared by replicas (docs/operating.md, Scale-out): each verifies the
  // entries with its own key, so a key of this data directory alone makes every other replica's entry a miss.
  if (!key.explicit && cache.kind === "remote")
    log.warn(
      { cacheRepository: cache.reference, file: key.file },
      "the cache signing key is this data directory's own: factories sharing the cache repository cannot verify each other's entries (give them all the same -cache-signing-key-path)",
    );
  if (key.explicit || key.privateKey !== undefined) return;
  await mkdir(dirname(key.file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = privateKey.export({ type: "sec1", format: "pem" }) as string;
  try {
    await writeFile(key.file, pem, { mode: 0o600, flag: "wx" });
    log.info({ file: key.file }, "generated the cache signing key (ECDSA P-256)");
  } catch (err) {
    // Another start created it meanwhile: keep that one.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    await readFile(key.file);
  }
}

async function listen(app: ReturnType<typeof buildFactoryApp>, address: ListenAddress): Promise<AddressInfo> {
  if (address.host !== undefined) {
    await app.listen({ host: address.host, port: address.port });
  } else {
    // Go's ":8080" means every interface, IPv6 and IPv4; fall back to IPv4 where IPv6 is off.
    try {
      await app.listen({ host: "::", port: address.port });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL") throw err;
      await app.listen({ host: "0.0.0.0", port: address.port });
    }
  }
  return app.server.address() as AddressInfo;
}

function urlOf(bound: AddressInfo, tls: boolean): string {
  const host =
    bound.address === "::" || bound.address === "0.0.0.0"
      ? "127.0.0.1"
      : bound.family === "IPv6"
        ? `[${bound.address}]`
        : bound.address;
  return `${tls ? "https" : "http"}://${host}:${bound.port}`;
}

/**
 * Closes the HTTP server: new connections are refused at once, idle ones closed, and requests in flight get
 * `timeoutMs` to finish; then the shutdown signal aborts what they started and every connection left (a
 * client stalled mid-body, a slow download) is closed. Upstream gives Go's Server.Shutdown 5 s the same way
 * (cmd/image-factory/cmd/service.go), after which the process exits.
 */
async function drain(
  app: ReturnType<typeof buildFactoryApp>,
  timeoutMs: number,
  shutdown: AbortController,
  logger: Logger,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const closed = app.close().then(() => "closed" as const);
  try {
    if ((await Promise.race([closed, deadline])) === "timeout") {
      logger.warn({ timeoutMs }, "shutdown timeout: closing the connections of requests still in flight");
      shutdown.abort(new DOMException("the factory is shutting down", "AbortError"));
      app.server.closeAllConnections();
      await closed;
    }
  } finally {
    clearTimeout(timer);
    if (!shutdown.signal.aborted) shutdown.abort(new DOMException("the factory has shut down", "AbortError"));
  }
}

/**
 * Asset cache garbage collection every -asset-cache-gc-interval when a limit is set (-asset-cache-max-age,
 * -asset-cache-max-size). Returns the function that stops it and waits for a run under way.
 */
function scheduleCacheGc(
  config: FactoryConfig,
  assets: AssetService,
  log: Logger,
  signal: AbortSignal,
): (() => Promise<void>) | undefined {
  const { maxAgeMs, maxSizeBytes, intervalMs, intermediateMaxSizeBytes } = config.cacheGc;
  if (maxAgeMs === undefined && maxSizeBytes === undefined && intermediateMaxSizeBytes === undefined) return undefined;
  let running: Promise<void> | undefined;
  const stop = new AbortController();
  const gcSignal = AbortSignal.any([signal, stop.signal]);
  const run = () => {
    if (running !== undefined) return;
    running = assets
      .collectGarbage({ maxAgeMs, maxSizeBytes, signal: gcSignal })
      .then((result) => {
        const freed = result.removed.reduce((sum, entry) => sum + entry.size, 0) + result.sweptBytes;
        log.info(
          { removed: result.removed.length, kept: result.kept, inUse: result.inUse, bytesFreed: freed },
          "asset cache garbage collection",
        );
        if (result.intermediate !== undefined)
          log.info(
            {
              removed: result.intermediate.removed.length,
              kept: result.intermediate.kept,
              bytesFreed: result.intermediate.removed.reduce((sum, entry) => sum + entry.size, 0),
            },
            "intermediate cache garbage collection",
          );
      })
      .catch((err) => {
        if (!gcSignal.aborted) log.warn({ err }, "asset cache garbage collection failed; trying again at the next run");
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    stop.abort(new DOMException("the factory is shutting down", "AbortError"));
    await running;
  };
}

/** Starts the factory and returns once it listens; `close()` shuts it down gracefully. */
export async function startFactory(config: FactoryConfig, options: StartFactoryOptions = {}): Promise<RunningFactory> {
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: "boot-assets-factory" } });
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (config.signatures.loaded.disabled)
    logger.warn(
      { flag: "-container-signature-disabled" },
      "SIGNATURE VERIFICATION IS DISABLED: source images are pinned by digest but nobody vouches for them",
    );
  // What is open so far, closed in this order at shutdown: nothing new comes in, requests in flight finish,
  // then background reads stop, and the stores close last.
  const shutdownOrder = ["gc", "http", "sources", "client", "schematics", "store"] as const;
  const shutdown = new AbortController();
  const closers = new Map<(typeof shutdownOrder)[number], () => Promise<unknown>>();
  const closeAll = async () => {
    for (const name of shutdownOrder) {
      const close = closers.get(name);
      if (close === undefined) continue;
      closers.delete(name);
      try {
        await close();
      } catch (err) {
        logger.warn({ err, step: name }, "shutdown step failed");
      }
    }
  };

  try {
    const store = usesEmbeddedStore(config) ? await openStore(config.dataDir.store) : undefined;
    if (store) closers.set("store", () => store.close());
    await ensureCacheSigningKey(config, logger);
    const client = new RegistryClient(registryClientOptionsFor(config));
    closers.set("client", () => client.close());
    const repositoryAt = (location: StoreLocation): Repository =>
      location.kind === "embedded"
        ? (store as RegistryStore).repository(location.repository)
        : client.repository(`${location.registry}/${location.repository}`);

    const metrics = createFactoryMetrics({ processMetrics: options.processMetrics });
    const schematicRepository = repositoryAt(config.stores.schematics);
    // On the embedded store, creates are journalled (schematic-journal.ts); a remote one is written through.
    const journalled =
      config.stores.schematics.kind === "embedded"
        ? await SchematicJournal.open(config.dataDir.schematicJournal)
        : undefined;
    const schematics = new SchematicService({
      repository: schematicRepository,
      memoCapacity: config.schematicCache.capacity,
      negativeTtlMs: config.schematicCache.negativeTtlMs,
      metrics,
      ...(journalled === undefined
        ? {}
        : {
            journal: journalled.journal,
            onWriteError: (id: string, err: unknown) =>
              logger.warn({ err, schematic: id }, "storing a journalled schematic failed; retrying"),
          }),
    });
    closers.set("schematics", () => schematics.close());
    if (journalled !== undefined) {
      const stored = await schematics.recover(journalled.records);
      if (stored > 0) logger.info({ stored, journal: journalled.journal.path }, "schematics from the journal stored");
    }

    const sources = createSources(config, {
      client,
      log: logger.child({ component: "sources" }),
      metrics: sourcesMetricsHooks(metrics),
    });
    closers.set("sources", () => sources.stop());
    // Read once: it signs and verifies cache entries and installers, and its public half is published.
    const signingKey = await cacheSigningPrivateKey(config);
    // One resolver and content cache for every source image: the imager inputs and the talosctl downloads.
    const resolver = createImagerInputResolver(sources, config.images, config.dataDir.root);
    const assets = await createAssetService(config, sources, {
      resolver,
      log: logger.child({ component: "assets" }),
      metrics,
      dir: config.dataDir.root,
      signal: shutdown.signal,
      cache: {
        repository: repositoryAt(config.stores.cache),
        privateKey: signingKey,
        // Only when the cache repository itself is in the embedded store (another store may be embedded alone).
        ...(store !== undefined && config.stores.cache.kind === "embedded" ? { store } : {}),
      },
    });

    const gc = scheduleCacheGc(config, assets, logger.child({ component: "cache-gc" }), shutdown.signal);
    if (gc) closers.set("gc", gc);
    const installerRepository = (image: string, schematicId: string): Repository => {
      const location = config.stores.installerInternal;
      return repositoryAt({ ...location, repository: `${location.repository}/${image}/${schematicId}` });
    };
    const installers = new InstallerService({
      repositoryFor: installerRepository,
      dockerReferenceFor: (image, schematicId) => `${new URL(config.http.externalUrl).host}/${image}/${schematicId}`,
      assets,
      signingKey,
      signer: new KeySigner(signingKey),
      versions: sources.versions,
      secureBootEnabled: config.secureBoot.enabled,
      signal: shutdown.signal,
      log: logger.child({ component: "installers" }),
    });

    // A blob nobody stores: asking for it shows the store answers, without touching real content.
    const probeDigest = sha256Digest("boot-assets readiness probe");
    const probed = new Map<string, Repository>();
    for (const location of [config.stores.schematics, config.stores.cache]) {
      const repository = repositoryAt(location);
      probed.set(repository.displayName, repository);
    }
    const readinessChecks = [...probed.values()].map((repository) => async () => {
      await repository.statBlob(probeDigest);
    });

    const tls = config.http.tls
      ? { cert: await readFile(config.http.tls.certFile), key: await readFile(config.http.tls.keyFile) }
      : undefined;
    const talosctl = new TalosctlService({ resolver, image: config.images.talosctl });
    const app = buildFactoryApp({
      logger,
      schematics,
      versions: { ready: () => sources.ready(), has: (tag) => sources.versions.has(tag) },
      metrics,
      allowedOrigins: config.http.allowedOrigins,
      tls,
      readinessChecks,
      assets,
      externalPxeUrl: config.http.externalPxeUrl,
      signingKeyPem: publicKeyPem(signingKey),
      ...(config.secureBoot.enabled
        ? { secureBootCertificatePem: certificatePem(config.secureBoot.signingCert.raw) }
        : {}),
      registryFront: {
        schematics,
        installers,
        repositoryFor: installerRepository,
        external: config.stores.installerExternal,
        latestVersion: () => sources.versions.latest()?.name,
        sourceProxy: {
          registry: config.images.registry,
          insecure: config.images.insecure,
          images: sourceProxyImages(config),
        },
      },
      registerRoutes: (app) => {
        registerSourceRoutes(app, sources);
        registerTalosctlRoutes(app, { versions: sources.versions, talosctl, externalUrl: config.http.externalUrl });
        registerUiRoutes(app, {
          schematics,
          versions: sources.versions,
          catalogs: sources.catalogs,
          officialExtensionCatalog: config.images.extensionManifest,
          externalUrl: config.http.externalUrl,
          externalPxeUrl: config.http.externalPxeUrl,
          secureBootEnabled: config.secureBoot.enabled,
          talosctl,
        });
      },
      timeouts: { headersMs: config.http.readHeaderTimeoutMs, requestMs: config.http.readTimeoutMs },
      shutdownSignal: shutdown.signal,
    });
    closers.set("http", () => drain(app, config.http.shutdownTimeoutMs, shutdown, logger));
    const metricsServer =
      config.metricsListen === undefined
        ? undefined
        : await bindOrExplain("the metrics listener", "-metrics-listen-addr", config.metricsListen, () =>
            startMetricsServer(metrics.registry, config.metricsListen as ListenAddress, (err) =>
              logger.warn({ err }, "collecting metrics failed"),
            ),
          );
    // Both listeners drain at once, so shutdown takes at most one -shutdown-timeout for them.
    if (metricsServer)
      closers.set("http", () =>
        Promise.all([
          drain(app, config.http.shutdownTimeoutMs, shutdown, logger),
          metricsServer.close(config.http.shutdownTimeoutMs),
        ]),
      );
    const bound = await bindOrExplain("the HTTP listener", "-http-port", config.http.listen, () =>
      listen(app, config.http.listen),
    );
    const url = urlOf(bound, tls !== undefined);
    void sources.start(); // the first version list loads in the background; /readyz says when it has
    print(`factory serving on ${url}`);
    if (metricsServer) print(`metrics on ${metricsServer.url}`);
    logger.info({ url, metrics: metricsServer?.url }, "factory started");

    let closing: Promise<void> | undefined;
    return {
      url,
      metricsUrl: metricsServer?.url,
      logger,
      schematics,
      assets,
      shutdownSignal: shutdown.signal,
      close: () => {
        closing ??= closeAll().then(() => logger.info("factory stopped"));
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Runs the factory until SIGINT or SIGTERM (or, under an npm script, until npm is gone), then shuts down
 * gracefully. A second signal exits at once.
 */
export async function runFactory(config: FactoryConfig, options: StartFactoryOptions = {}): Promise<void> {
  const factory = await startFactory(config, options);
  let parentWatch: NodeJS.Timeout | undefined;
  const signal = await new Promise<NodeJS.Signals | "parent exited">((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
    if (options.stopWithParent) {
      const parent = process.ppid;
      parentWatch = setInterval(() => {
        if (process.ppid !== parent) resolve("parent exited");
      }, parentCheckMs);
    }
  });
  clearInterval(parentWatch);
  factory.logger.info(
    { signal, timeoutMs: config.http.shutdownTimeoutMs },
    "shutting down: finishing requests in flight",
  );
  const forced = (second: NodeJS.Signals) => {
    factory.logger.warn({ signal: second }, "second signal: exiting without waiting");
    process.exit(130);
  };
  process.once("SIGINT", forced);
  process.once("SIGTERM", forced);
  try {
    await factory.close();
  } finally {
    process.off("SIGINT", forced);
    process.off("SIGTERM", forced);
  }
}
