// The Prometheus endpoint on its own listener (`-metrics-listen-addr`, as upstream), so metrics are never
// exposed on the public port. GET /metrics in the text exposition format; anything else is a 404.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface MetricsServer {
  /** e.g. http://127.0.0.1:2122/metrics */
  url: string;
  /** Stops accepting; a scrape in flight gets `timeoutMs` before its connection is closed. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startMetricsServer(
  registry: Registry,
  listen: { host: string | undefined; port: number },
  onError: (err: unknown) => void,
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?", 1)[0];
    if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
      response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("404 page not found\n");
      return;
    }
    registry.metrics().then(
      (text) => {
        response.writeHead(200, { "Content-Type": registry.contentType });
        response.end(request.method === "HEAD" ? undefined : text);
      },
      (err: unknown) => {
        onError(err);
        response.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" }).end("metrics unavailable\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}/metrics`,
    close: (timeoutMs = 5000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
