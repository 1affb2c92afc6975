// Sending a cached asset: upstream's headers (internal/frontend/http/image.go: Content-Length, Content-Type
// by the path, `Content-Disposition: attachment; filename="<name>"`, `?filename=` overriding the name) and
// checksum files as upstream's enterprise checksummer writes them (enterprise/checksum/checksummer.go:
// `<hex>  <filename>\n`, text/plain, attachment named `<filename>.sha256`). Beyond upstream: a strong ETag
// (the asset's sha256) with If-None-Match → 304, single byte ranges (206, 416) with If-Range, and
// Cache-Control for released versions.

import type { OutgoingHttpHeaders } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import { badRequest } from "../../errors.ts";
import { sendFileRange } from "../../registry/file-sender.ts";
import type { CachedAsset } from "../assets/service.ts";

export const checksumSuffixes = [".sha256", ".sha512"] as const;
export type ChecksumSuffix = (typeof checksumSuffixes)[number];

/** Splits `<asset>.sha256` / `<asset>.sha512` into the asset path and the suffix. */
export function splitChecksumPath(path: string): { path: string; checksum?: ChecksumSuffix } {
  for (const suffix of checksumSuffixes)
    if (path.endsWith(suffix) && path.length > suffix.length)
      return { path: path.slice(0, -suffix.length), checksum: suffix };
  return { path };
}

/**
 * The `?filename=` override, or the path. Upstream writes it into the header unchecked; here a name that
 * could not be sent as a header value or would break out of its quotes is refused (400).
 */
export function downloadFilename(query: unknown, path: string): string {
  const wanted = (query as { filename?: unknown } | undefined)?.filename;
  if (wanted === undefined || wanted === "") return path;
  if (typeof wanted !== "string" || wanted.length > 255 || !/^[\x20-\x7e]+$/.test(wanted) || /["\\]/.test(wanted))
    throw badRequest(
      "invalid filename: printable ASCII without quotes or backslashes, at most 255 characters",
      "FILENAME_INVALID",
    );
  return wanted;
}

/** A release (no pre-release part) never changes its assets; a pre-release is cached for a while only. */
export function cacheControlFor(talosVersion: string): string {
  return talosVersion.includes("-") ? "public, max-age=3600" : "public, max-age=604800, immutable";
}

type ByteRange = { start: number; end: number } | "unsatisfiable" | undefined;

/** One `bytes=` range of RFC 9110 §14.1.2; several ranges, or another unit, are answered with the whole. */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== "" && Number(last) < start) return undefined; // invalid: ignored, as the RFC says
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/** What `sendAsset` needs of a file: the cached asset, or any file whose sha256 is known (talosctl). */
export type SendableFile = Pick<CachedAsset, "path" | "size" | "sha256" | "contentType">;

function etagOf(asset: SendableFile): string {
  return `"${asset.sha256.slice("sha256:".length)}"`;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((tag) => {
    const t = tag.trim();
    return t === "*" || t === etag || t === `W/${etag}`;
  });
}

export function sendChecksum(
  reply: FastifyReply,
  asset: CachedAsset,
  filename: string,
  suffix: ChecksumSuffix,
): FastifyReply {
  const digest = suffix === ".sha256" ? asset.sha256 : asset.sha512;
  const line = `${digest.slice(digest.indexOf(":") + 1)}  ${filename}\n`;
  return reply
    .header("Content-Type", "text/plain; charset=utf-8")
    .header("Content-Disposition", `attachment; filename="${filename}${suffix}"`)
    .header("Content-Length", String(Buffer.byteLength(line)))
    .send(line);
}

export async function sendAsset(
  request: FastifyRequest,
  reply: FastifyReply,
  asset: SendableFile,
  options: { filename: string; cacheControl: string },
): Promise<FastifyReply> {
  const etag = etagOf(asset);
  reply
    .header("ETag", etag)
    .header("Cache-Control", options.cacheControl)
    .header("Accept-Ranges", "bytes")
    .header("Content-Type", asset.contentType)
    .header("Content-Disposition", `attachment; filename="${options.filename}"`);
  if (matchesEtag(request.headers["if-none-match"], etag)) return reply.code(304).send();
  const ifRange = request.headers["if-range"];
  let range = parseRange(request.headers.range, asset.size);
  if (ifRange !== undefined && ifRange !== etag) range = undefined;
  if (range === "unsatisfiable") {
    return reply
      .code(416)
      .header("Content-Range", `bytes */${asset.size}`)
      .header("Content-Type", "text/plain; charset=utf-8")
      .send(`range not satisfiable: the asset is ${asset.size} bytes\n`);
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? asset.size - 1;
  const length = asset.size === 0 ? 0 : end - start + 1;
  if (range !== undefined) reply.code(206).header("Content-Range", `bytes ${start}-${end}/${asset.size}`);
  reply.header("Content-Length", String(length));
  if (request.method === "HEAD" || length === 0) return reply.send();
  // The body bypasses fastify's stream path (a read stream piped to the socket allocates a fresh buffer per
  // chunk): sendFileRange reuses a few buffers, with backpressure (bench/serving). Hijacking skips only the
  // onSend hooks, whose one job (Connection: close while closing) matters to no request that reaches here:
  // a closing server answers new requests 503. onResponse (metrics, the request log) still runs at 'finish'.
  reply.hijack();
  reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  try {
    await sendFileRange(reply.raw, asset.path, start, end);
  } catch (err) {
    // A read failure after the headers destroys the connection: the client sees a short body, never a
    // complete-looking one.
    request.log.warn({ err, path: asset.path }, "asset send failed");
    reply.raw.destroy();
  }
  return reply;
}
