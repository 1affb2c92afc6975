// The registry client: one object per process that knows how to reach registries (TLS, insecure hosts,
// credentials, retries) and hands out RemoteRepository objects. Every request goes through `request()`,
// which adds auth, follows redirects without leaking Authorization, and retries what is safe to retry.

import { setTimeout as sleep } from "node:timers/promises";
import { AppError, upstream } from "../../errors.ts";
import { type ImageReference, parseReference } from "../reference.ts";
import { type Challenge, RegistryAuth, wwwAuthenticateOf } from "./auth.ts";
import { type CredentialLookup, credentialsFromAuthFiles } from "./credentials.ts";
import { describe, errorFromResponse, type RequestContext, unreachable } from "./errors.ts";
import { RemoteRepository } from "./remote-repository.ts";
import { defaultCertsDirs, type InsecurePolicy, isInsecureHost } from "./tls.ts";
import {
  discardBody,
  type HttpRequest,
  type HttpResponse,
  header,
  isTlsHandshakeError,
  isTransientNetworkError,
  type RequestBody,
  Transport,
} from "./transport.ts";

export interface RegistryClientOptions {
  /** Registries reached over plain HTTP / without TLS verification (the `--insecure` flags). */
  insecure?: InsecurePolicy;
  /** Extra CA certificates (PEM) trusted for all registries, on top of the default roots. */
  caFile?: string;
  /** `certs.d` directories; default /etc/docker/certs.d, /etc/containers/certs.d, ~/.config/containers/certs.d. */
  certsDirs?: readonly string[];
  /** An auth file read before the standard ones (REGISTRY_AUTH_FILE, containers auth.json, docker config). */
  authFile?: string;
  /** Replaces the auth-file lookup entirely. */
  credentials?: CredentialLookup;
  /** Environment for credential and certs.d lookup (HOME, DOCKER_CONFIG…); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Timeout for connecting, for response headers, and for silence within a body. Default 60 s. */
  timeoutMs?: number;
  /** How many times a failed idempotent request is retried. Default 4. */
  retries?: number;
  /** First backoff delay; doubles with each retry, with jitter. Default 250 ms. */
  retryDelayMs?: number;
  /** A Retry-After longer than this is not waited for; the 429 is reported instead. Default 60 s. */
  maxRetryAfterMs?: number;
  userAgent?: string;
  /** Size of each PATCH in a chunked upload. Default 16 MiB. */
  chunkSize?: number;
  /** Blobs up to this size are uploaded in one PUT; larger ones in chunks. Default = chunkSize. */
  monolithicMaxBytes?: number;
  /** `n` for tag-list pages. Default 1000. */
  tagPageSize?: number;
  /** Upper bound on tags collected by listTags. Default 100 000. */
  maxTags?: number;
  /** Notes about skipped credential sources and protocol fallbacks. */
  debug?: (message: string) => void;
}

/** A request to a registry's API, relative to its base URL or (for upload locations) absolute. */
export interface RegistryRequest {
  method: HttpRequest["method"];
  /** A path such as "/v2/name/manifests/tag", or an absolute URL (a Location header resolved earlier). */
  path: string | URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Token scopes the request needs, e.g. ["repository:app:pull"]. */
  scopes: readonly string[];
  /** The repository the request concerns, for repository-specific credentials. */
  repository?: string;
  context: RequestContext;
  /** Follow 3xx redirects (blob GET/HEAD). Authorization only ever goes to the registry's own origin. */
  followRedirects?: boolean;
  /** Whether failures may be retried; default: GET, HEAD, PUT and DELETE with a replayable body. */
  retry?: boolean;
}

export interface PingResult {
  /** The URL scheme that reached the registry. */
  scheme: "https" | "http";
  /** The auth scheme it asked for at /v2/. */
  auth: "none" | "basic" | "bearer";
}

/** State for one registry: where its API is, its scheme once known, and its auth. */
interface Endpoint {
  registry: string;
  apiHost: string;
  scheme?: "https" | "http";
  auth: RegistryAuth;
  ready?: Promise<PingResult>;
}

const maxRedirects = 5;
const redirectStatuses = new Set([301, 302, 303, 307, 308]);
const retryStatuses = new Set([429, 500, 502, 503, 504]);

/** Docker Hub's API does not live at docker.io. */
function apiHostOf(registry: string): string {
  return registry === "docker.io" || registry === "index.docker.io" ? "registry-1.docker.io" : registry;
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || hostname === "::1" || /^127\./.test(hostname);
}

function isReplayable(body: RequestBody | undefined): boolean {
  return body === undefined || typeof body === "string" || body instanceof Uint8Array;
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class RegistryClient {
  readonly options: RegistryClientOptions;
  readonly transport: Transport;
  private readonly credentials: CredentialLookup;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly debug: (message: string) => void;

  constructor(options: RegistryClientOptions = {}) {
    this.options = options;
    this.debug = options.debug ?? (() => {});
    const env = options.env ?? process.env;
    this.transport = new Transport({
      insecure: options.insecure,
      caFile: options.caFile,
      certsDirs: options.certsDirs ?? defaultCertsDirs(env),
      timeoutMs: options.timeoutMs,
      userAgent: options.userAgent,
    });
    this.credentials =
      options.credentials ?? credentialsFromAuthFiles({ env, authFile: options.authFile, debug: this.debug });
  }

  /** A repository on a registry: "host/name" (a tag or digest in the string is ignored) or a parsed reference. */
  repository(ref: ImageReference | string): RemoteRepository {
    const parsed = typeof ref === "string" ? parseReference(ref) : ref;
    return new RemoteRepository(this, parsed.registry, parsed.repository);
  }

  isInsecure(registry: string): boolean {
    return isInsecureHost(this.options.insecure, registry);
  }

  /** Checks that a registry speaks the v2 API, learning its scheme and auth challenge. */
  ping(registry: string): Promise<PingResult> {
    const endpoint = this.endpoint(registry);
    if (!endpoint.ready) {
      endpoint.ready = this.probe(endpoint);
      endpoint.ready.catch(() => {
        endpoint.ready = undefined;
      });
    }
    return endpoint.ready;
  }

  /** Closes pooled connections. */
  close(): Promise<void> {
    return this.transport.close();
  }

  private endpoint(registry: string): Endpoint {
    let endpoint = this.endpoints.get(registry);
    if (!endpoint) {
      const created: Endpoint = {
        registry,
        apiHost: apiHostOf(registry),
        auth: new RegistryAuth({
          registry,
          credentials: this.credentials,
          send: async (req) => (await this.sendWithRetries(req, { registry, operation: "fetch auth token" })).res,
          mayCarryCredentials: (url) =>
            url.protocol === "https:" ||
            isLoopback(url.hostname) ||
            isInsecureHost(this.options.insecure, url.host) ||
            created.scheme === "http",
        }),
      };
      endpoint = created;
      this.endpoints.set(registry, endpoint);
    }
    return endpoint;
  }

  private async probe(endpoint: Endpoint): Promise<PingResult> {
    const ctx: RequestContext = { registry: endpoint.registry, operation: "ping" };
    const schemes: Array<"https" | "http"> = this.isInsecure(endpoint.registry) ? ["https", "http"] : ["https"];
    let lastError: unknown;
    for (const scheme of schemes) {
      let res: HttpResponse;
      try {
        // Like docker for insecure registries: https (unverified) first, then plain http.
        const url = new URL(`${scheme}://${endpoint.apiHost}/v2/`);
        const last = scheme === schemes[schemes.length - 1];
        ({ res } = await this.sendWithRetries({ method: "GET", url }, ctx, { retryNetwork: last }));
      } catch (err) {
        lastError = err;
        const cause = err instanceof AppError ? err.cause : err;
        if (scheme === "https" && schemes.length > 1 && isTlsHandshakeError(cause)) {
          this.debug(`registry ${endpoint.registry}: https failed (${(cause as Error).message}); trying http`);
          continue;
        }
        throw err;
      }
      if (res.statusCode === 200 || res.statusCode === 401) {
        endpoint.scheme = scheme;
        const challenges: Challenge[] = res.statusCode === 401 ? wwwAuthenticateOf(res) : [];
        await discardBody(res);
        if (res.statusCode === 401) {
          if (challenges.length === 0)
            throw new AppError("Unauthorized", `${describe(ctx)}: 401 without a WWW-Authenticate challenge`);
          endpoint.auth.setChallenge(challenges);
        }
        return { scheme, auth: endpoint.auth.scheme };
      }
      lastError = await errorFromResponse(res, ctx);
      // A TLS-terminating front with a plain backend can answer 400 "client sent an HTTP request to an HTTPS
      // server"; for an insecure registry that still means "try plain http".
      if (scheme === "https" && schemes.length > 1 && res.statusCode === 400) continue;
      throw new AppError(
        "Upstream",
        `${describe(ctx)}: ${endpoint.registry} does not serve the registry v2 API at /v2/ (HTTP ${res.statusCode})`,
        { cause: lastError },
      );
    }
    throw lastError instanceof AppError ? lastError : unreachable(ctx, lastError);
  }

  /** The base URL of a registry's API, after pinging it once. */
  async baseUrl(registry: string): Promise<URL> {
    const { scheme } = await this.ping(registry);
    return new URL(`${scheme}://${this.endpoint(registry).apiHost}`);
  }

  /**
   * Sends one API request: authorization for its scopes, one re-authentication on a 401 challenge,
   * redirects (without Authorization to other origins), retries with backoff. The caller checks the
   * status and consumes the body.
   */
  async request(registry: string, req: RegistryRequest): Promise<HttpResponse> {
    const endpoint = this.endpoint(registry);
    const base = await this.baseUrl(registry);
    const url = req.path instanceof URL ? req.path : new URL(req.path, base);
    const retry = req.retry ?? (["GET", "HEAD", "PUT", "DELETE"].includes(req.method) && isReplayable(req.body));
    let scopes = req.scopes;
    let reauthenticated = false;
    for (;;) {
      const authorization = await endpoint.auth.authorization(scopes, req.repository);
      const { res, finalUrl } = await this.sendWithRetries(
        { method: req.method, url, headers: req.headers, body: req.body },
        req.context,
        { retryNetwork: retry, retryStatus: retry, followRedirects: req.followRedirects, authorization, base },
      );
      if (res.statusCode === 401 && finalUrl.origin === base.origin && !reauthenticated && isReplayable(req.body)) {
        reauthenticated = true;
        scopes = await endpoint.auth.onUnauthorized(res, wwwAuthenticateOf(res), scopes, describe(req.context));
        continue;
      }
      return res;
    }
  }

  /**
   * One request with retries: transient network errors and 429/5xx answers are retried (when allowed) with
   * exponential backoff and jitter, honouring Retry-After; redirects are followed when asked.
   */
  private async sendWithRetries(
    req: HttpRequest,
    ctx: RequestContext,
    policy: RetryPolicy & { base?: URL } = {},
  ): Promise<{ res: HttpResponse; finalUrl: URL }> {
    const retries = this.options.retries ?? 4;
    const retryNetwork = policy.retryNetwork ?? isReplayable(req.body);
    const retryStatus = policy.retryStatus ?? isReplayable(req.body);
    for (let attempt = 0; ; attempt++) {
      let outcome: { res: HttpResponse; finalUrl: URL };
      try {
        outcome = await this.followRedirects(req, ctx, policy);
      } catch (err) {
        if (err instanceof AppError) throw err;
        if (retryNetwork && attempt < retries && isTransientNetworkError(err)) {
          const delay = this.backoff(attempt);
          this.debug(`${describe(ctx)}: ${(err as Error).message}; retrying in ${delay} ms`);
          await sleep(delay);
          continue;
        }
        throw unreachable(ctx, err);
      }
      const { res } = outcome;
      if (retryStatus && attempt < retries && retryStatuses.has(res.statusCode)) {
        const asked = retryAfterMs(header(res, "retry-after"));
        const limit = this.options.maxRetryAfterMs ?? 60_000;
        if (asked === undefined || asked <= limit) {
          const delay = asked ?? this.backoff(attempt);
          await discardBody(res);
          this.debug(`${describe(ctx)}: HTTP ${res.statusCode}; retrying in ${delay} ms`);
          await sleep(delay);
          continue;
        }
      }
      return outcome;
    }
  }

  private backoff(attempt: number): number {
    const base = (this.options.retryDelayMs ?? 250) * 2 ** attempt;
    return Math.round(Math.min(base, 10_000) * (0.5 + Math.random() / 2));
  }

  /** Sends a request, following redirects when asked; Authorization goes only to the registry's origin. */
  private async followRedirects(
    req: HttpRequest,
    ctx: RequestContext,
    policy: RetryPolicy & { base?: URL },
  ): Promise<{ res: HttpResponse; finalUrl: URL }> {
    let url = req.url;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      if (policy.authorization && policy.base && url.origin === policy.base.origin)
        headers.authorization = policy.authorization;
      const res = await this.transport.request({ ...req, url, headers });
      const location = header(res, "location");
      if (!policy.followRedirects || !redirectStatuses.has(res.statusCode) || !location) return { res, finalUrl: url };
      await discardBody(res);
      if (hop >= maxRedirects) throw upstream(`${describe(ctx)}: more than ${maxRedirects} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== "https:" && next.protocol !== "http:")
        throw upstream(`${describe(ctx)}: redirect to unsupported URL scheme ${next.protocol}`);
      if (url.protocol === "https:" && next.protocol === "http:" && !this.isInsecure(next.host))
        throw upstream(`${describe(ctx)}: refusing redirect from https to plain http (${next.origin})`);
      url = next;
    }
  }
}

interface RetryPolicy {
  retryNetwork?: boolean;
  retryStatus?: boolean;
  followRedirects?: boolean;
  authorization?: string;
}
