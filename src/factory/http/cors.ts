// CORS as upstream image-factory configures it (github.com/rs/cors): methods GET, HEAD and OPTIONS; the
// download headers exposed; origins from `http.allowedOrigins` ("*" for any, or exact origins, optionally
// with one "*" wildcard such as "https://*.example.com"). A preflight is answered here with 204; a request
// from an origin or with a method that is not allowed simply gets no CORS headers, and the browser refuses it.

import type { FastifyReply, FastifyRequest } from "fastify";

const allowedMethods = new Set(["GET", "HEAD", "OPTIONS"]);
// Upstream's three, and beyond upstream the headers of resumable and conditional downloads (Range, ETag).
const exposedHeaders = "Content-Disposition, Content-Length, Content-Type, Accept-Ranges, Content-Range, ETag";
// rs/cors's default allowed request headers (Origin is always allowed), and the download's Range and
// conditional headers, which a browser asks a preflight for.
const allowedRequestHeaders = new Set([
  "origin",
  "accept",
  "content-type",
  "x-requested-with",
  "range",
  "if-none-match",
  "if-range",
]);

export interface CorsPolicy {
  /** Handles CORS for one request; true when it answered (a preflight) and the request is done. */
  handle(request: FastifyRequest, reply: FastifyReply): boolean;
}

function originMatcher(allowedOrigins: readonly string[]): { any: boolean; test: (origin: string) => boolean } {
  const any = allowedOrigins.includes("*");
  const exact = new Set<string>();
  const wildcards: Array<[string, string]> = [];
  for (const origin of allowedOrigins) {
    const lower = origin.toLowerCase();
    const star = lower.indexOf("*");
    if (star === -1) exact.add(lower);
    else wildcards.push([lower.slice(0, star), lower.slice(star + 1)]);
  }
  return {
    any,
    test: (origin) => {
      if (any) return true;
      const lower = origin.toLowerCase();
      if (exact.has(lower)) return true;
      return wildcards.some(
        ([prefix, suffix]) =>
          lower.length >= prefix.length + suffix.length && lower.startsWith(prefix) && lower.endsWith(suffix),
      );
    },
  };
}

export function corsPolicy(allowedOrigins: readonly string[]): CorsPolicy {
  const origins = originMatcher(allowedOrigins);
  const allowOrigin = (origin: string) => (origins.any ? "*" : origin);
  return {
    handle(request, reply) {
      const origin = request.headers.origin;
      const requestedMethod = request.headers["access-control-request-method"];
      if (request.method === "OPTIONS" && typeof requestedMethod === "string") {
        reply.header("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
        const method = requestedMethod.toUpperCase();
        const requestedHeaders = String(request.headers["access-control-request-headers"] ?? "")
          .split(",")
          .map((h) => h.trim().toLowerCase())
          .filter((h) => h !== "");
        const allowed =
          typeof origin === "string" &&
          origins.test(origin) &&
          allowedMethods.has(method) &&
          requestedHeaders.every((h) => allowedRequestHeaders.has(h));
        if (allowed) {
          reply.header("Access-Control-Allow-Origin", allowOrigin(origin));
          reply.header("Access-Control-Allow-Methods", method);
          if (requestedHeaders.length > 0) reply.header("Access-Control-Allow-Headers", requestedHeaders.join(", "));
        }
        reply.code(204).send();
        return true;
      }
      reply.header("Vary", "Origin");
      if (typeof origin === "string" && origins.test(origin) && allowedMethods.has(request.method)) {
        reply.header("Access-Control-Allow-Origin", allowOrigin(origin));
        reply.header("Access-Control-Expose-Headers", exposedHeaders);
      }
      return false;
    },
  };
}
