// A tiny node:http front for a registry in tests: it records every request, and can answer some requests
// itself (to inject 503s, 429s, redirects) or rewrite response bodies (to corrupt bytes) before passing the
// rest through to the real registry unchanged. The Host header is passed through, so the registry builds
// its Location and Link URLs for the front.

import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
}

export interface FrontHooks {
  /** Answer a request here instead of forwarding it; return true when it was answered. */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Transform a forwarded response body (whole-body; tests only move small blobs through this). */
  rewriteBody?: (req: RecordedRequest, status: number, body: Buffer) => Buffer;
}

export interface HttpFront {
  host: string;
  url: string;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

export async function startFront(target: string, hooks: FrontHooks = {}): Promise<HttpFront> {
  const targetUrl = new URL(target);
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const recorded = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers };
    requests.push(recorded);
    if (hooks.intercept?.(req, res)) {
      req.resume();
      return;
    }
    const upstream = request(
      {
        host: targetUrl.hostname,
        port: targetUrl.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        if (!hooks.rewriteBody) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on("data", (c: Buffer) => chunks.push(c));
        answer.on("end", () => {
          const body =
            hooks.rewriteBody?.(recorded, answer.statusCode ?? 502, Buffer.concat(chunks)) ?? Buffer.alloc(0);
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(body);
        });
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
