// The factory's HTTP application: fastify with one JSON log line per request, X-Request-ID, a Server
// header, CORS as upstream, plain-text errors mapped in one place, health and readiness, and the routes.
// It is built from services (no configuration parsing, no stores opened here), so tests and `run.ts`
// assemble it the same way.

import { readFileSync } from "node:fs";
import fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { notFound } from "../errors.ts";
import { type KnownVersions, registerAssetRoutes } from "./http/asset-routes.ts";
import { corsPolicy } from "./http/cors.ts";
import { sendError } from "./http/errors.ts";
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
  /** Registers further routes (the versions and catalog routes). */
  registerRoutes?: (app: FastifyInstance) => void;
}

/** How long a readiness check may take before the factory counts as not ready. */
const readinessTimeoutMs = 5000;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "dev";
  } catch {
    return "dev";
  }
}

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
  const app = fastify({
    loggerInstance: options.logger,
    logController: new OneLinePerRequest(),
    genReqId: requestIdOf,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 1024 },
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
  }) as unknown as FastifyInstance;

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
    if (cors.handle(request, reply)) return; // a preflight, answered
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
  registerAssetRoutes(app, options.schematics, options.versions);
  options.registerRoutes?.(app);
  return app;
}
