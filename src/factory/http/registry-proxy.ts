// A reverse proxy for one registry request, as upstream's `proxyRegistryRequest`
// (internal/frontend/http/registry.go, Go's httputil.ReverseProxy): method and headers forwarded to the
// target URL, without `Authorization` (never handed to the backing registry) and hop-by-hop headers, with
// `X-Forwarded-For` added; the backend's status, headers and body relayed unchanged (its own redirects and
// OCI JSON errors included). An unreachable backend is a 502 with an empty body. Plain HTTP only: the
// source-image proxy is refused (503) for any other registry before it gets here.

import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";

/** Hop-by-hop headers (RFC 9110 §7.6.1), which a proxy does not forward. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function forwardedHeaders(headers: IncomingHttpHeaders, remote: string | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || hopByHop.has(name) || name === "host" || name === "authorization") continue;
    out[name] = value;
  }
  if (remote !== undefined) {
    const prior = headers["x-forwarded-for"];
    out["x-forwarded-for"] =
      prior === undefined ? remote : `${Array.isArray(prior) ? prior.join(", ") : prior}, ${remote}`;
  }
  return out;
}

export function proxyRequest(request: FastifyRequest, reply: FastifyReply, target: string): Promise<FastifyReply> {
  return new Promise((resolve) => {
    const outgoing = httpRequest(
      target,
      { method: request.method, headers: forwardedHeaders(request.headers, request.socket.remoteAddress) },
      (response) => {
        reply.code(response.statusCode ?? 502);
        for (const [name, value] of Object.entries(response.headers))
          if (value !== undefined && !hopByHop.has(name)) reply.header(name, value);
        resolve(reply.send(request.method === "HEAD" ? undefined : response));
        if (request.method === "HEAD") response.resume();
      },
    );
    outgoing.on("error", (err) => {
      if (reply.sent) return;
      request.log.warn({ err, target }, "the backing registry did not answer");
      resolve(reply.code(502).send());
    });
    reply.raw.once("close", () => outgoing.destroy());
    outgoing.end();
  });
}
