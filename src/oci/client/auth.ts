// The registry auth challenge flow: `WWW-Authenticate` parsing (RFC 7235), HTTP Basic, and bearer tokens
// per the distribution token spec (docs/spec/auth/token.md and oauth.md): GET <realm>?service=&scope=…
// with Basic credentials when we have any (anonymous otherwise), or the OAuth2 refresh-token POST for
// identity tokens. Tokens are cached per scope set until shortly before they expire.

import { AppError, upstream } from "../../errors.ts";
import type { Credential, CredentialLookup } from "./credentials.ts";
import { discardBody, type HttpRequest, type HttpResponse, readBody } from "./transport.ts";

export interface Challenge {
  /** Lowercased scheme, e.g. "bearer" or "basic". */
  scheme: string;
  /** Parameters with lowercased names, e.g. realm, service, scope, error. */
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses one or more WWW-Authenticate header values into challenges. Handles several challenges in one
 * value (`Basic realm="a", Bearer realm="b"`) and quoted strings with commas and escapes. (token68
 * credentials never appear in registry challenges and are not supported.)
 */
export function parseWwwAuthenticate(values: string | readonly string[]): Challenge[] {
  const challenges: Challenge[] = [];
  for (const value of typeof values === "string" ? [values] : values) {
    let i = 0;
    const n = value.length;
    const skip = (chars: string) => {
      while (i < n && chars.includes(value[i] as string)) i++;
    };
    const readToken = () => {
      const start = i;
      while (i < n && tokenChar.test(value[i] as string)) i++;
      return value.slice(start, i);
    };
    const readQuoted = () => {
      let out = "";
      i++; // opening quote
      while (i < n && value[i] !== '"') {
        if (value[i] === "\\" && i + 1 < n) i++;
        out += value[i];
        i++;
      }
      i++; // closing quote
      return out;
    };
    let current: Challenge | undefined;
    while (i < n) {
      skip(" \t,");
      if (i >= n) break;
      const word = readToken();
      if (word === "") {
        i++; // stray character; step over it
        continue;
      }
      skip(" \t");
      if (current && value[i] === "=") {
        // An auth-param of the current challenge.
        i++;
        skip(" \t");
        const paramValue = value[i] === '"' ? readQuoted() : readToken();
        current.params[word.toLowerCase()] = paramValue;
        continue;
      }
      current = { scheme: word.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** The scopes a challenge's `scope` parameter names (space separated per the token spec). */
export function challengeScopes(challenge: Challenge): string[] {
  return (challenge.params.scope ?? "").split(" ").filter((s) => s !== "");
}

/** `repository:<name>:<actions>` (actions such as "pull" or "pull,push"). */
export function repositoryScope(name: string, actions: "pull" | "push" | "pull,push" | "delete" | "*"): string {
  return `repository:${name}:${actions}`;
}

/** Merges scopes, joining the actions of the same resource, so one token covers all of them. */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const colon = scope.lastIndexOf(":");
    if (colon <= 0) continue;
    const resource = scope.slice(0, colon);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(colon + 1).split(",")) if (action) actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource].map(([resource, actions]) => `${resource}:${[...actions].sort().join(",")}`).sort();
}

function unauthorized(message: string, code = "UNAUTHORIZED"): AppError {
  return new AppError("Unauthorized", message, { code });
}

function basicHeader(credential: Credential & { kind: "basic" }): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, "utf8").toString("base64")}`;
}

function tokenKey(challenge: Challenge, mergedScopes: readonly string[]): string {
  return `${challenge.params.realm ?? ""}|${challenge.params.service ?? ""}|${mergedScopes.join(" ")}`;
}

interface HeldToken {
  token: string;
  /** Epoch ms after which the token is not used any more. */
  expiresAt: number;
}

/** Tokens this size are absurd; the bound keeps a hostile token server from filling memory. */
const maxTokenResponseBytes = 1024 * 1024;
/** The token spec's default lifetime when `expires_in` is absent. */
const defaultTokenLifetimeSeconds = 60;
/** Renew this long before expiry, so a token does not lapse in flight. */
const expiryMarginMs = 10_000;

export interface RegistryAuthOptions {
  /** The registry as named in references (used for credential lookup and messages). */
  registry: string;
  credentials: CredentialLookup;
  /** Sends a request with the client's retry policy (token endpoints are GET/POST to other hosts). */
  send: (req: HttpRequest) => Promise<HttpResponse>;
  /** Whether credentials may be sent to this URL (https, or a host the user marked insecure). */
  mayCarryCredentials: (url: URL) => boolean;
}

/** Auth state for one registry: the challenge it answers with, credentials and a token cache. */
export class RegistryAuth {
  private readonly options: RegistryAuthOptions;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, HeldToken>();
  private readonly credentialLookups = new Map<string, Promise<Credential | undefined>>();

  constructor(options: RegistryAuthOptions) {
    this.options = options;
  }

  /** Records the challenge the registry answered a request with (the ping, or a 401). */
  setChallenge(challenges: Challenge[]): void {
    const chosen = challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
    if (chosen) this.challenge = chosen;
  }

  /** The auth scheme in use: "none" until a challenge was seen. */
  get scheme(): "none" | "basic" | "bearer" {
    return (this.challenge?.scheme as "basic" | "bearer" | undefined) ?? "none";
  }

  private credential(repository: string | undefined): Promise<Credential | undefined> {
    const key = repository ?? "";
    let found = this.credentialLookups.get(key);
    if (!found) {
      found = this.options.credentials(this.options.registry, repository);
      found.catch(() => this.credentialLookups.delete(key));
      this.credentialLookups.set(key, found);
    }
    return found;
  }

  /** The Authorization header value for a request needing `scopes`, or undefined for anonymous. */
  async authorization(scopes: readonly string[], repository?: string): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const credential = await this.credential(repository);
      if (credential?.kind === "basic") return basicHeader(credential);
      return undefined;
    }
    if (challenge.scheme !== "bearer") return undefined;
    const merged = mergeScopes(scopes);
    const key = tokenKey(challenge, merged);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const fetched = await this.fetchToken(challenge, merged, repository);
    this.tokens.set(key, fetched);
    return `Bearer ${fetched.token}`;
  }

  /**
   * Handles a 401 answer: records its challenge and returns the scopes to retry with (ours plus any the
   * registry named), or throws Unauthorized when retrying cannot help.
   */
  async onUnauthorized(
    res: HttpResponse,
    challenges: Challenge[],
    scopes: readonly string[],
    what: string,
  ): Promise<string[]> {
    await discardBody(res);
    const before = this.challenge;
    this.setChallenge(challenges);
    const challenge = this.challenge;
    if (!challenge) throw unauthorized(`${what}: the registry refused the request and sent no auth challenge`);
    if (challenge.scheme === "basic") {
      // With Basic, only a change of scheme (first 401 on a registry that did not ask at ping) helps.
      if (before?.scheme === "basic") throw unauthorized(`${what}: the registry refused the credentials`);
      return [...scopes];
    }
    if (challenge.scheme !== "bearer") throw unauthorized(`${what}: unsupported auth scheme "${challenge.scheme}"`);
    // Forget the token just refused; the registry wants a fresh one (perhaps with more scope).
    if (before) this.tokens.delete(tokenKey(before, mergeScopes(scopes)));
    return mergeScopes([...scopes, ...challengeScopes(challenge)]);
  }

  private async fetchToken(challenge: Challenge, scopes: string[], repository?: string): Promise<HeldToken> {
    const realmText = challenge.params.realm;
    if (!realmText) throw upstream(`registry ${this.options.registry} sent a bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw upstream(`registry ${this.options.registry} sent an invalid token realm "${realmText}"`);
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:")
      throw upstream(`registry ${this.options.registry} sent a token realm that is not http(s): ${realmText}`);
    const service = challenge.params.service;
    let credential = await this.credential(repository);
    if (credential && !this.options.mayCarryCredentials(realm)) {
      // Never send a password over plain HTTP to a host the user did not mark insecure.
      credential = undefined;
    }
    const what = `token for ${scopes.join(" ") || "registry access"} from ${realm.origin}${realm.pathname}`;
    let res: HttpResponse;
    if (credential?.kind === "identityToken") {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credential.token,
        client_id: "boot-assets",
      });
      if (service) form.set("service", service);
      if (scopes.length > 0) form.set("scope", scopes.join(" "));
      res = await this.options.send({
        method: "POST",
        url: realm,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form.toString(),
      });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set("service", service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      const headers: Record<string, string> = {};
      if (credential?.kind === "basic") headers.authorization = basicHeader(credential);
      res = await this.options.send({ method: "GET", url, headers });
    }
    const { data, truncated } = await readBody(res, maxTokenResponseBytes);
    if (res.statusCode === 401 || res.statusCode === 403)
      throw unauthorized(
        `registry ${this.options.registry}: ${what} was refused (HTTP ${res.statusCode})` +
          (credential ? "; check the credentials" : "; no credentials found for this registry"),
        "DENIED",
      );
    if (res.statusCode !== 200)
      throw upstream(`registry ${this.options.registry}: ${what} failed with HTTP ${res.statusCode}`);
    if (truncated) throw upstream(`registry ${this.options.registry}: ${what}: the answer is too large`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(data.toString("utf8"));
    } catch {
      throw upstream(`registry ${this.options.registry}: ${what}: the answer is not JSON`);
    }
    const token =
      typeof body.token === "string" && body.token !== ""
        ? body.token
        : typeof body.access_token === "string"
          ? body.access_token
          : "";
    if (token === "") throw upstream(`registry ${this.options.registry}: ${what}: the answer holds no token`);
    const lifetime =
      typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : defaultTokenLifetimeSeconds;
    return { token, expiresAt: Date.now() + Math.max(lifetime * 1000 - expiryMarginMs, 1000) };
  }
}

/** The challenges of a response's WWW-Authenticate header(s). */
export function wwwAuthenticateOf(res: HttpResponse): Challenge[] {
  const raw = res.headers["www-authenticate"];
  if (raw === undefined) return [];
  return parseWwwAuthenticate(Array.isArray(raw) ? raw : [raw]);
}
