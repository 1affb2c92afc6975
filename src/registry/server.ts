// The OCI distribution-spec HTTP API over the store (https://github.com/opencontainers/distribution-spec,
// spec.md): pull, push (monolithic, chunked, cross-repository mount), tags, referrers, delete.
//
// Bodies are never parsed by fastify: one catch-all content-type parser leaves them as streams, and handlers
// read `request.raw` — blobs flow to the store's temp file, manifests are read up to the 4 MiB limit.
// Blobs are written from their file straight to the socket through reused buffers (file-sender.ts), which
// keeps the hot path at loopback speed; one log line per request is written when the response completes.

import { readFileSync } from "node:fs";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import fastify, { type FastifyReply, type FastifyRequest, LogController } from "fastify";
import { type Logger, pino } from "pino";
import { type AppError, badRequest } from "../errors.ts";
import { type Digest, parseDigest } from "../oci/digest.ts";
import { maxManifestBytes } from "../oci/manifest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import { validateRepositoryName } from "../oci/reference.ts";
import { clientErrorHandler, watchConnectionClose } from "../util/client-errors.ts";
import { parseApiPath } from "./api-path.ts";
import { sendFileRange } from "./file-sender.ts";
import { clientErrorAnswer, httpError, toWireError } from "./http-errors.ts";
import { type OpenStoreOptions, openStore, type RegistryStore } from "./store.ts";

export interface RegistryServerOptions {
  /** Storage root; opened (and locked) by the server and closed with it. Ignored when `store` is given. */
  root?: string;
  /** An already open store, left open by `close()`. */
  store?: RegistryStore;
  storeOptions?: OpenStoreOptions;
  /** `host:port`; port 0 picks a free one. Default 127.0.0.1:5000. */
  listen?: string;
  /** Serve HTTPS with this PEM certificate (chain) and key. */
  tls?: { certFile: string; keyFile: string };
  /** A pino logger; default: pino at `logLevel` (info) on stdout. `false` logs nothing. */
  logger?: Logger | false;
  logLevel?: string;
}

export interface RegistryServer {
  /** `host:port` actually bound. */
  address: string;
  url: string;
  store: RegistryStore;
  close(): Promise<void>;
}

const apiVersionHeader = "Docker-Distribution-API-Version";
/** An unread request body (after an error reply) is drained up to this much to keep the connection, then cut. */
const maxDiscardBytes = 64 * 1024 * 1024;

/** Splits `host:port`, `[v6]:port` or `:port`. */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw badRequest(`invalid listen address "${listen}": expected host:port`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port };
}

/** One concise line per completed request instead of fastify's two. */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.warn({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request");
  }
}

export async function startRegistryServer(options: RegistryServerOptions): Promise<RegistryServer> {
  const { host, port } = parseListenAddress(options.listen ?? "127.0.0.1:5000");
  const ownsStore = options.store === undefined;
  const store = options.store ?? (await openStore(requireRoot(options.root), options.storeOptions));
  try {
    const logger =
      options.logger === false
        ? pino({ level: "silent" })
        : (options.logger ?? pino({ level: options.logLevel ?? "info" }));
    const app = fastify({
      loggerInstance: logger,
      logController: new OneLinePerRequest(),
      exposeHeadRoutes: false,
      forceCloseConnections: true,
      return503OnClosing: true,
      clientErrorHandler: clientErrorHandler(clientErrorAnswer),
      routerOptions: { maxParamLength: 4096 },
      ...(options.tls
        ? { https: { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) } }
        : {}),
    });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    watchConnectionClose(app.server);
    app.addHook("onRequest", (_request, reply, done) => {
      reply.header(apiVersionHeader, "registry/2.0");
      done();
    });
    app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
    app.setNotFoundHandler((request, reply) =>
      sendError(request, reply, httpError(404, "NOT_FOUND", `no such endpoint: ${request.method} ${request.url}`)),
    );
    const api = new DistributionApi(store);
    for (const url of ["/v2", "/v2/", "/v2/*"]) {
      app.route({
        method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        url,
        handler: (request, reply) => api.handle(request, reply),
      });
    }
    await app.listen({ host, port });
    const bound = app.server.address() as AddressInfo;
    const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
    const address = `${shownHost}:${bound.port}`;
    return {
      address,
      url: `${options.tls ? "https" : "http"}://${address}`,
      store,
      async close() {
        await app.close();
        if (ownsStore) await store.close();
      },
    };
  } catch (err) {
    if (ownsStore) await store.close();
    throw err;
  }
}

function requireRoot(root: string | undefined): string {
  if (root === undefined || root === "") throw badRequest("the registry server needs a storage root or an open store");
  return root;
}

/**
 * What fastify refuses before a handler runs (a Content-Type it cannot parse, …) is the client's fault: the
 * same 4xx with a spec error code, never a 500. A malformed Content-Type on a manifest PUT is MANIFEST_INVALID,
 * as CNCF distribution answers (registry/handlers/manifests.go).
 */
function fastifyClientError(request: FastifyRequest, err: unknown): AppError | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  if (typeof e.code !== "string" || !e.code.startsWith("FST_")) return undefined;
  if (typeof e.statusCode !== "number" || e.statusCode < 400 || e.statusCode >= 500) return undefined;
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    const shown = JSON.stringify(String(request.headers["content-type"] ?? "").slice(0, 100));
    const manifestPut = request.method === "PUT" && request.url.includes("/manifests/");
    return httpError(400, manifestPut ? "MANIFEST_INVALID" : "UNSUPPORTED", `malformed Content-Type ${shown}`);
  }
  return httpError(e.statusCode, "UNSUPPORTED", String(e.message));
}

function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown) {
  const errno = (err as NodeJS.ErrnoException).code;
  if (errno === "ECONNRESET" || errno === "ERR_STREAM_PREMATURE_CLOSE" || request.raw.socket?.destroyed) {
    // The client went away mid-request (its upload was undone): nobody to answer.
    request.log.info({ err: (err as Error).message }, "client aborted the request");
    return reply.code(499).send();
  }
  const full =
    errno === "ENOSPC"
      ? httpError(507, "UNKNOWN", "no space left on the registry's storage: nothing was written")
      : undefined;
  const wire = toWireError(full ?? fastifyClientError(request, err) ?? err);
  if (wire.status >= 500) request.log.error({ err }, "internal error");
  discardUnreadBody(request.raw, reply);
  return reply
    .code(wire.status)
    .header("Content-Type", "application/json; charset=utf-8")
    .send(JSON.stringify(wire.body));
}

/**
 * After an early error reply the client may still be sending: drain (and drop) a bounded amount so it can read
 * the reply on a kept-alive connection; beyond that, close it.
 */
function discardUnreadBody(raw: IncomingMessage, reply: FastifyReply): void {
  if (raw.complete || raw.readableEnded) return;
  if (raw.destroyed) {
    // A failed stream pipeline destroyed the request and let go of its socket (Node's pipeline does that to a
    // server request): the rest of its body stays unread, the socket paused, so no other request can follow
    // on this connection; a client reusing it would wait forever.
    reply.header("Connection", "close");
    return;
  }
  const declared = Number(raw.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxDiscardBytes) {
    reply.header("Connection", "close");
    return;
  }
  let discarded = 0;
  raw.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxDiscardBytes) raw.socket.destroy();
  });
  raw.on("error", () => undefined);
  raw.resume();
}

function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers["content-length"];
  return (length !== undefined && length !== "0") || raw.headers["transfer-encoding"] !== undefined;
}

function declaredLength(raw: IncomingMessage): number | undefined {
  const value = raw.headers["content-length"];
  return value === undefined || !/^\d+$/.test(value) ? undefined : Number(value);
}

/** `Content-Range: <start>-<end>` of a chunk (OCI form; `bytes ` prefix and `/total` tolerated). */
function chunkRange(raw: IncomingMessage): { start?: number; length?: number } {
  const value = raw.headers["content-range"];
  if (value === undefined) return { length: declaredLength(raw) };
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (!match) throw httpError(416, "BLOB_UPLOAD_INVALID", `invalid Content-Range "${value.slice(0, 100)}"`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw httpError(416, "BLOB_UPLOAD_INVALID", `invalid Content-Range "${value}": end before start`);
  return { start, length: end - start + 1 };
}

function queryParam(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === "string" ? first : undefined;
}

/** The largest page a listing serves (CNCF distribution refuses an `n` over its maximum the same way). */
const maxPageSize = 10_000;

/** `n` of a paginated listing: a non-negative integer, or undefined for "all". */
function pageSize(request: FastifyRequest): number | undefined {
  const n = queryParam(request, "n");
  if (n === undefined || n === "") return undefined;
  if (!/^\d{1,9}$/.test(n) || Number(n) > maxPageSize)
    throw badRequest(
      `invalid page size n=${JSON.stringify(n.slice(0, 20))}: a whole number from 0 to ${maxPageSize}`,
      "PAGINATION_NUMBER_INVALID",
    );
  return Number(n);
}

function paginate(items: string[], request: FastifyRequest, path: string): { page: string[]; next?: string } {
  const last = queryParam(request, "last");
  const after = last === undefined ? items : items.filter((item) => item > last);
  const n = pageSize(request);
  if (n === undefined || after.length <= n) return { page: after };
  const page = after.slice(0, n);
  const lastShown = page[page.length - 1];
  if (lastShown === undefined) return { page };
  return { page, next: `<${path}?n=${n}&last=${encodeURIComponent(lastShown)}>; rel="next"` };
}

/** Reads a manifest body, refusing (413, MANIFEST_INVALID) one over the limit without buffering the rest. */
function readManifestBody(raw: IncomingMessage): Promise<Buffer> {
  const tooLarge = () =>
    httpError(413, "MANIFEST_INVALID", `manifest is larger than the ${maxManifestBytes} byte limit`, {
      limit: maxManifestBytes,
    });
  const declared = declaredLength(raw);
  if (declared !== undefined && declared > maxManifestBytes) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      raw.off("data", onData);
      raw.off("end", onEnd);
      raw.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxManifestBytes) {
        cleanup();
        raw.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    raw.on("data", onData);
    raw.on("end", onEnd);
    raw.on("error", onError);
  });
}

function mediaTypeOf(raw: IncomingMessage): string | undefined {
  const value = raw.headers["content-type"];
  return value?.split(";")[0]?.trim() || undefined;
}

class DistributionApi {
  private readonly store: RegistryStore;

  constructor(store: RegistryStore) {
    this.store = store;
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const path = request.url.split("?", 1)[0] ?? "";
    const route = parseApiPath(path);
    if (!route) throw httpError(404, "NOT_FOUND", `no such endpoint: ${request.method} ${path.slice(0, 300)}`);
    const method = request.method;
    switch (route.kind) {
      case "base":
        if (method === "GET" || method === "HEAD") return reply.send({});
        break;
      case "catalog":
        if (method === "GET") return this.catalog(request, reply);
        break;
      case "blob":
        if (method === "GET" || method === "HEAD") return this.getBlob(request, reply, route);
        if (method === "DELETE") {
          await this.store.deleteBlob(route.name, parseDigest(route.digest));
          return reply.code(202).header("Content-Length", "0").send();
        }
        break;
      case "uploads":
        if (method === "POST") return this.startUpload(request, reply, route.name);
        break;
      case "upload":
        return this.upload(request, reply, route);
      case "manifest":
        if (method === "GET" || method === "HEAD") return this.getManifest(request, reply, route);
        if (method === "PUT") return this.putManifest(request, reply, route);
        if (method === "DELETE") {
          await this.store.deleteManifest(route.name, route.reference);
          return reply.code(202).header("Content-Length", "0").send();
        }
        break;
      case "tags":
        if (method === "GET") return this.tags(request, reply, route.name);
        break;
      case "referrers":
        if (method === "GET") return this.referrers(request, reply, route);
        break;
    }
    throw httpError(405, "UNSUPPORTED", `${method} is not supported on ${path.slice(0, 300)}`);
  }

  private async catalog(request: FastifyRequest, reply: FastifyReply) {
    const { page, next } = paginate(await this.store.listRepositories(), request, "/v2/_catalog");
    if (next) reply.header("Link", next);
    return reply.send({ repositories: page });
  }

  private async getBlob(request: FastifyRequest, reply: FastifyReply, route: { name: string; digest: string }) {
    const digest = parseDigest(route.digest);
    const { path, size } = await this.store.locateBlob(route.name, digest);
    reply
      .header("Content-Type", "application/octet-stream")
      .header("Docker-Content-Digest", digest)
      .header("ETag", `"${digest}"`)
      .header("Accept-Ranges", "bytes")
      .header("Cache-Control", "max-age=31536000");
    if (request.headers["if-none-match"] === `"${digest}"`) return reply.code(304).send();
    const range = byteRange(request.headers.range, size);
    if (range === "unsatisfiable") {
      return reply.code(416).header("Content-Range", `bytes */${size}`).header("Content-Length", "0").send();
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    if (range) reply.code(206).header("Content-Range", `bytes ${start}-${end}/${size}`);
    reply.header("Content-Length", String(end - start + 1));
    if (request.method === "HEAD" || end < start) return reply.send();
    // The hot path: bypass fastify's stream handling and write the file to the socket directly.
    reply.hijack();
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    try {
      await sendFileRange(reply.raw, path, start, end);
    } catch (err) {
      request.log.warn({ err }, "blob send failed");
      reply.raw.destroy();
    }
    return reply;
  }

  private async startUpload(request: FastifyRequest, reply: FastifyReply, name: string) {
    const raw = request.raw;
    const mount = queryParam(request, "mount");
    const from = queryParam(request, "from");
    if (mount !== undefined && from !== undefined) {
      const digest = parseDigest(mount);
      const mounted = await this.store.mountBlob(name, validateRepositoryName(from), digest);
      if (mounted) return this.blobCreated(reply, name, digest);
      // Not mountable: fall back to an ordinary upload session (202), as the spec allows.
    }
    const digestParam = queryParam(request, "digest");
    const session = await this.store.startUpload(name, request.ip);
    if (digestParam !== undefined) {
      try {
        const digest = parseDigest(digestParam);
        await this.store.finishUpload(name, session.id, digest, raw, { length: declaredLength(raw) });
        return this.blobCreated(reply, name, digest);
      } catch (err) {
        // A one-shot upload has no session for the client to resume.
        await this.store.cancelUpload(name, session.id).catch(() => undefined);
        throw err;
      }
    }
    return this.uploadAccepted(reply, name, session, 202);
  }

  private async upload(request: FastifyRequest, reply: FastifyReply, route: { name: string; id: string }) {
    const { name, id } = route;
    const raw = request.raw;
    switch (request.method) {
      case "GET":
        return this.uploadAccepted(reply, name, this.store.uploadStatus(name, id), 204);
      case "PATCH": {
        const range = chunkRange(raw);
        const status = await this.store.appendUpload(name, id, raw, range);
        return this.uploadAccepted(reply, name, status, 202);
      }
      case "PUT": {
        const digestParam = queryParam(request, "digest");
        if (digestParam === undefined) throw badRequest("completing an upload needs ?digest=", "DIGEST_INVALID");
        const digest = parseDigest(digestParam);
        this.store.uploadStatus(name, id); // BLOB_UPLOAD_UNKNOWN before reading any body
        const chunk = hasBody(raw) ? raw : undefined;
        await this.store.finishUpload(name, id, digest, chunk, chunk ? chunkRange(raw) : undefined);
        return this.blobCreated(reply, name, digest);
      }
      case "DELETE":
        await this.store.cancelUpload(name, id);
        return reply.code(204).send();
    }
    throw httpError(405, "UNSUPPORTED", `${request.method} is not supported on an upload`);
  }

  private blobCreated(reply: FastifyReply, name: string, digest: Digest) {
    return reply
      .code(201)
      .header("Location", `/v2/${name}/blobs/${digest}`)
      .header("Docker-Content-Digest", digest)
      .header("Content-Length", "0")
      .send();
  }

  private uploadAccepted(reply: FastifyReply, name: string, upload: { id: string; size: number }, status: number) {
    return reply
      .code(status)
      .header("Location", `/v2/${name}/blobs/uploads/${upload.id}`)
      .header("Docker-Upload-UUID", upload.id)
      .header("Range", `0-${Math.max(0, upload.size - 1)}`)
      .header("Content-Length", "0")
      .send();
  }

  private async getManifest(request: FastifyRequest, reply: FastifyReply, route: { name: string; reference: string }) {
    if (request.method === "HEAD") {
      const info = await this.store.statManifest(route.name, route.reference);
      if (!info)
        throw httpError(404, "MANIFEST_UNKNOWN", `manifest ${route.reference} is not in repository ${route.name}`);
      return reply
        .header("Content-Type", info.mediaType)
        .header("Docker-Content-Digest", info.digest)
        .header("ETag", `"${info.digest}"`)
        .header("Content-Length", String(info.size))
        .send();
    }
    const record = await this.store.getManifest(route.name, route.reference);
    return reply
      .header("Content-Type", record.mediaType)
      .header("Docker-Content-Digest", record.digest)
      .header("ETag", `"${record.digest}"`)
      .header("Content-Length", String(record.body.length))
      .send(record.body);
  }

  private async putManifest(request: FastifyRequest, reply: FastifyReply, route: { name: string; reference: string }) {
    const mediaType = mediaTypeOf(request.raw);
    // As CNCF distribution: a manifest must say what it is; it is not sniffed from the body.
    if (mediaType === undefined)
      throw httpError(400, "MANIFEST_INVALID", "a manifest PUT needs a Content-Type naming the manifest's media type");
    const body = await readManifestBody(request.raw);
    const result = await this.store.putManifest(route.name, body, {
      mediaType,
      reference: route.reference,
    });
    if (result.subject) reply.header("OCI-Subject", result.subject);
    return reply
      .code(201)
      .header("Location", `/v2/${route.name}/manifests/${result.digest}`)
      .header("Docker-Content-Digest", result.digest)
      .header("Content-Length", "0")
      .send();
  }

  private async tags(request: FastifyRequest, reply: FastifyReply, name: string) {
    const { page, next } = paginate(await this.store.listTags(name), request, `/v2/${name}/tags/list`);
    if (next) reply.header("Link", next);
    return reply.send({ name, tags: page });
  }

  private async referrers(request: FastifyRequest, reply: FastifyReply, route: { name: string; digest: string }) {
    const artifactType = queryParam(request, "artifactType");
    const manifests = await this.store.referrers(route.name, parseDigest(route.digest), artifactType || undefined);
    if (artifactType) reply.header("OCI-Filters-Applied", "artifactType");
    return reply
      .header("Content-Type", MediaType.ociIndex)
      .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests })));
  }
}

/** A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; undefined for none (or forms we serve whole). */
function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined; // multi-range etc.: the whole blob
  let start: number;
  let end: number;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}
