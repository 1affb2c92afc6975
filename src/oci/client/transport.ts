// HTTP transport to registries: one undici Agent per host, carrying that host's TLS settings and the
// timeouts, so connections are pooled and reused per registry and a CA or client certificate meant for
// one registry is never offered to another.

import type { Readable } from "node:stream";
import { Agent, type Dispatcher } from "undici";
import { type TlsOptions, tlsSettingsFor } from "./tls.ts";

export interface TransportOptions extends TlsOptions {
  /** Time allowed for response headers, and for silence between body chunks. Default 60 s. */
  timeoutMs?: number;
  /** Time allowed to establish a connection (TCP + TLS). Default min(timeoutMs, 15 s). */
  connectTimeoutMs?: number;
  userAgent?: string;
}

export type RequestBody = Buffer | Uint8Array | string | Readable;

export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
}

export type HttpResponse = Dispatcher.ResponseData;

const defaultTimeoutMs = 60_000;

export class Transport {
  readonly options: TransportOptions;
  readonly userAgent: string;
  private readonly agents = new Map<string, Promise<Agent>>();

  constructor(options: TransportOptions = {}) {
    this.options = options;
    this.userAgent = options.userAgent ?? "boot-assets";
  }

  /** The Agent for `host` (`name[:port]`), created once with that host's TLS settings. */
  agentFor(host: string): Promise<Agent> {
    let agent = this.agents.get(host);
    if (!agent) {
      agent = this.createAgent(host);
      // A failure (say an unreadable CA file) must not be cached forever.
      agent.catch(() => this.agents.delete(host));
      this.agents.set(host, agent);
    }
    return agent;
  }

  private async createAgent(host: string): Promise<Agent> {
    const tls = await tlsSettingsFor(host, this.options);
    const timeout = this.options.timeoutMs ?? defaultTimeoutMs;
    return new Agent({
      connect: { ...tls, timeout: this.options.connectTimeoutMs ?? Math.min(timeout, 15_000) },
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const dispatcher = await this.agentFor(req.url.host);
    return dispatcher.request({
      origin: req.url.origin,
      path: `${req.url.pathname}${req.url.search}`,
      method: req.method,
      headers: { "user-agent": this.userAgent, ...req.headers },
      body: req.body ?? null,
      signal: req.signal ?? null,
    });
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map(async (a) => (await a.catch(() => undefined))?.close()));
  }
}

/** One header value (the first when repeated). */
export function header(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Every value of a header that may repeat (e.g. WWW-Authenticate, Link). */
export function headerValues(res: HttpResponse, name: string): string[] {
  const value = res.headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Reads at most `limit` bytes of a body, then discards the rest; for error bodies and small documents. */
export async function readBody(res: HttpResponse, limit: number): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (size + chunk.length > limit) {
      truncated = true;
      chunks.push(chunk.subarray(0, limit - size));
      size = limit;
      res.body.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { data: Buffer.concat(chunks, size), truncated };
}

/** Throws away a body we do not need, so the connection can be reused. */
export async function discardBody(res: HttpResponse): Promise<void> {
  try {
    await res.body.dump({ limit: 64 * 1024 });
  } catch {
    // the connection is dropped instead; nothing to do
  }
}

/** Network failures worth retrying for an idempotent request: resets, timeouts, a closed socket. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return (
    typeof code === "string" &&
    [
      "ECONNRESET",
      "EPIPE",
      "ETIMEDOUT",
      "EAI_AGAIN",
      "UND_ERR_SOCKET",
      "UND_ERR_CONNECT_TIMEOUT",
      "UND_ERR_HEADERS_TIMEOUT",
      "UND_ERR_BODY_TIMEOUT",
      "UND_ERR_CLOSED",
    ].includes(code)
  );
}

/** Errors meaning the peer does not speak TLS here (or not what we expect), which make an insecure
 * registry fall back to plain HTTP. */
export function isTlsHandshakeError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : "";
  return (
    code.startsWith("ERR_SSL") ||
    code === "EPROTO" ||
    code === "ECONNRESET" ||
    code === "UND_ERR_SOCKET" ||
    /wrong version number|ssl|tls/i.test(message)
  );
}
