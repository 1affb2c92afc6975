// The factory's HTTP application: fastify with one JSON log line per request, X-Request-ID, a Server
// header, CORS as upstream, plain-text errors mapped in one place, health and readiness, and the routes.
// It is built from services (no configuration parsing, no stores opened here), so tests and `run.ts`
// assemble it the same way.

import fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { notFound } from "../errors.ts";
import { watchConnectionClose } from "../util/client-errors.ts";
import { packageVersion } from "../util/package-version.ts";
import type { AssetService } from "./assets/service.ts";
import { type KnownVersions, registerAssetRoutes } from "./http/asset-routes.ts";
import { factoryClientErrorHandler, maxHeaderBytes, maxUrlBytes, uriTooLong } from "./http/client-errors.ts";
import { corsPolicy } from "./http/cors.ts";
import { sendError } from "./http/errors.ts";
import { type RegistryFrontOptions, registerRegistryFront } from "./http/registry-front.ts";
import { requestIdHeader, requestIdOf } from "./http/request-id.ts";
import { OneLinePerRequest } from "./http/request-log.ts";
import { registerSchematicRoutes } from "./http/schematic-routes.ts";
import type { FactoryMetrics } from "./metrics.ts";
import type { SchematicService } from "./schematics.ts";

/** What the app needs from the Talos version source. */
export interface TalosVersionsView extends KnownVersions {
  /** true once the version list has loaded at least once. */
  ready(): boolean;
}

export interface FactoryAppOptions {
  logger: Logger;
  schematics: SchematicService;
  versions: TalosVersionsView;
  metrics: FactoryMetrics;
  allowedOrigins: readonly string[];
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  /** Checks that the stores answer; /readyz fails while one throws. */
  readinessChecks?: ReadonlyArray<() => Promise<void>>;
  /** Builds and serves `/image` assets; without it a valid asset request answers 501. */
  assets?: AssetService;
  /** Absolute URL ending in "/": where PXE scripts point (-external-pxe-url). */
  externalPxeUrl?: string;
  /** The cache signing key's public half (PEM), served at /oci/cosign/signing-key.pub. */
  signingKeyPem?: string;
  /**
   * The Secure Boot UKI signing certificate (PEM) served at /secureboot/signing-cert.pem; undefined when Secure
   * Boot is off.
   */
  secureBootCertificatePem?: string;
  /** The registry front `/v2/…` for installer images; without it `/v2` is not served. */
  registryFront?: RegistryFrontOptions;
  /** Registers further routes (the versions and catalog routes). */
  registerRoutes?: (app: FastifyInstance) => void;
  /** How long a request's headers, and the whole request with its body, may take to arrive. */
  timeouts?: RequestTimeouts;
  /**
   * Aborted when the factory shuts down (after the drain timeout): long work started for a request (an asset
   * build) takes it, stops, and leaves nothing partial. Available to routes as `app.shutdownSignal`.
   */
  shutdownSignal?: AbortSignal;
}

export interface RequestTimeouts {
  /** Headers must arrive within this (Node's headersTimeout). */
  headersMs: number;
  /** The whole request, body included, must arrive within this (Node's requestTimeout); 408 otherwise. */
  requestMs: number;
}

export const defaultRequestTimeouts: RequestTimeouts = { headersMs: 20_000, requestMs: 60_000 };

declare module "fastify" {
  interface FastifyInstance {
    /** See FactoryAppOptions.shutdownSignal; never aborted when the app was built without one. */
    shutdownSignal: AbortSignal;
  }
}

/** How long a readiness check may take before the factory counts as not ready. */
const readinessTimeoutMs = 5000;

/** The `Server` header: this program and its version, e.g. `boot-assets/0.1.0`. */
export const serverHeader = `boot-assets/${packageVersion()}`;

async function withTimeout(check: () => Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([check(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function buildFactoryApp(options: FactoryAppOptions): FastifyInstance {
  const { metrics } = options;
  const timeouts = options.timeouts ?? defaultRequestTimeouts;
  const serverOptions = {
    maxHeaderSize: maxHeaderBytes,
    headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
    // Node checks both timeouts on this interval (default 30 s); check often enough to honour short ones.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(timeouts.headersMs / 4))),
  };
  const requestLog = new OneLinePerRequest();
  const app = fastify({
    loggerInstance: options.logger,
    logController: requestLog,
    genReqId: requestIdOf,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 1024 },
    requestTimeout: timeouts.requestMs,
    clientErrorHandler: factoryClientErrorHandler(serverHeader),
    // A URL the router refuses (malformed, a parameter over maxParamLength): the same error shape as the rest.
    frameworkErrors: (err, request, reply) => {
      reply.header("Server", serverHeader);
      sendError(err, request, reply);
    },
    http: serverOptions,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key, ...serverOptions } } : {}),
  }) as unknown as FastifyInstance;
  app.decorate("shutdownSignal", options.shutdownSignal ?? new AbortController().signal);
  watchConnectionClose(app.server);

  // Bodies stay unread until a route reads them with its own cap (http/request-body.ts).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));

  const cors = corsPolicy(options.allowedOrigins);
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("Server", serverHeader);
    reply.header(requestIdHeader, request.id);
    const handler = request.routeOptions.url ?? "unmatched";
    metrics.httpRequestsInflight.inc({ handler });
    reply.raw.once("close", () => metrics.httpRequestsInflight.dec({ handler }));
    requestLog.watchClientClose(request, reply);
    if (cors.handle(request, reply)) return; // a preflight, answered
    if (request.raw.url !== undefined && Buffer.byteLength(request.raw.url) > maxUrlBytes) {
      sendError(uriTooLong(), request, reply);
      return;
    }
    done();
  });
  app.addHook("onResponse", (request, reply, done) => {
    const seconds = reply.elapsedTime / 1000;
    metrics.httpRequestDuration.observe(
      { code: String(reply.statusCode), handler: request.routeOptions.url ?? "unmatched", method: request.method },
      seconds,
    );
    done();
  });
  // While shutting down, answers close their connection, so a keep-alive client does not hold the server
  // open after its request in flight has finished.
  let closing = false;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (closing) reply.header("Connection", "close");
    done(null, payload);
  });
  app.setErrorHandler((err, request, reply) => sendError(err, request, reply));
  app.setNotFoundHandler((request, reply) => sendError(notFound("404 page not found"), request, reply));

  app.get("/healthz", async (_request, reply) => reply.type("text/plain; charset=utf-8").send("ok\n"));
  app.get("/readyz", async (request, reply) => {
    const problems: string[] = [];
    if (!options.versions.ready()) problems.push("the Talos version list has not loaded yet");
    const checks = await Promise.allSettled(
      (options.readinessChecks ?? []).map((check) => withTimeout(check, readinessTimeoutMs)),
    );
    for (const result of checks)
      if (result.status === "rejected") problems.push(`store: ${(result.reason as Error)?.message ?? result.reason}`);
    if (problems.length > 0) {
      request.log.warn({ problems }, "not ready");
      return reply
        .code(503)
        .type("text/plain; charset=utf-8")
        .send(`not ready: ${problems.join("; ")}\n`);
    }
    return reply.type("text/plain; charset=utf-8").send("ok\n");
  });

  registerSchematicRoutes(app, options.schematics);
  registerAssetRoutes(
    app,
    options.schematics,
    options.versions,
    options.assets,
    options.externalPxeUrl !== undefined ? { externalPxeUrl: options.externalPxeUrl } : undefined,
  );
  const signingKeyPem = options.signingKeyPem;
  if (signingKeyPem !== undefined)
    // Upstream: internal/frontend/http/registry.go handleCosignSigningKeyPub.
    app.get("/oci/cosign/signing-key.pub", async (_request, reply) =>
      reply.type("application/x-pem-file").send(signingKeyPem),
    );
  // Upstream: internal/frontend/http/secureboot.go handleSecureBootSigningCert. With Secure Boot off upstream
  // answers 500 (secureboot.ErrDisabled is untagged in http.go MatchError); the status is kept, the text says why.
  const secureBootCertificatePem = options.secureBootCertificatePem;
  app.get("/secureboot/signing-cert.pem", async (_request, reply) =>
    secureBootCertificatePem === undefined
      ? reply.code(500).type("text/plain; charset=utf-8").send("secure boot is disabled on this factory\n")
      : reply.type("application/x-pem-file").send(secureBootCertificatePem),
  );
  if (options.registryFront !== undefined) registerRegistryFront(app, options.registryFront);
  options.registerRoutes?.(app);
  return app;
}
