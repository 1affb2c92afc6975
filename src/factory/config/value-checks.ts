// Checks of single configuration values, with Go's or upstream's reading of them; each throws an Error whose
// message the validation prefixes with the setting's name.

import { dockerHubRegistry, parseReference } from "../../oci/reference.ts";
import { formatSemVer, parseTolerant } from "../../talos/version.ts";
import type { ListenAddress, LogLevel, RemoteRepository } from "./model.ts";

const portPattern = /^\d{1,5}$/;

/** Go's net.SplitHostPort rules: "host:port", "[v6]:port" or ":port"; numeric port 0–65535. */
export function parseListenAddress(text: string): ListenAddress {
  let host: string;
  let port: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1 || text[close + 1] !== ":") throw new Error("expected [IPv6]:port");
    host = text.slice(1, close);
    port = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) throw new Error('missing port (e.g. ":8080" or "127.0.0.1:8080")');
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(":")) throw new Error("an IPv6 address needs brackets, e.g. [::1]:8080");
  }
  if (!portPattern.test(port) || Number(port) > 65535) throw new Error(`invalid port ${JSON.stringify(port)}`);
  if (/[\s/]/.test(host)) throw new Error(`invalid host ${JSON.stringify(host)}`);
  return { host: host === "" ? undefined : host, port: Number(port), text };
}

/** An absolute http(s) URL without query, fragment or credentials, normalized to end in "/". */
export function normalizeExternalUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not an absolute URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`must be an http or https URL, got ${JSON.stringify(url.protocol.replace(/:$/, ""))}`);
  if (url.hostname === "") throw new Error(`must have a host: ${JSON.stringify(text)}`);
  if (url.username !== "" || url.password !== "") throw new Error("must not contain credentials");
  if (url.search !== "" || url.hash !== "") throw new Error("must not have a query or fragment");
  if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`;
  return url.href;
}

/** Tolerant as upstream reads these settings (ParseTolerant): "v1.8.2", "1.8" (→ 1.8.0), "1.9.0-alpha.1" → "1.8.2". */
export function normalizeTalosVersion(text: string): string {
  try {
    return formatSemVer(parseTolerant(text));
  } catch (err) {
    throw new Error(
      `not a version (expected e.g. 1.8.2 or v1.8.2): ${JSON.stringify(text)}: ${(err as Error).message}`,
    );
  }
}

export const logLevels: Readonly<Record<string, LogLevel>> = {
  debug: "debug",
  info: "info",
  warn: "warn",
  error: "error",
  // zap's levels beyond error, as upstream accepts them
  dpanic: "error",
  panic: "fatal",
  fatal: "fatal",
};

/** A registry host as given (host[:port]); Error when it would not be read as one. */
export function checkRegistryHost(registry: string): void {
  if (registry === "") throw new Error("must not be empty");
  let parsed: string;
  try {
    parsed = parseReference(`${registry}/probe`).registry;
  } catch {
    throw new Error(`not a registry host[:port]: ${JSON.stringify(registry)}`);
  }
  if (parsed !== registry && !(registry === "index.docker.io" && parsed === dockerHubRegistry))
    throw new Error(`not a registry host[:port] (needs a "." or ":" or to be localhost): ${JSON.stringify(registry)}`);
}

/** A repository reference with an explicit registry host, no tag and no digest. */
export function parseRemoteRepository(reference: string, insecure: boolean): RemoteRepository {
  const ref = parseReference(reference);
  const firstComponent = reference.split("/")[0] as string;
  if (!reference.includes("/") || (ref.registry !== firstComponent && firstComponent !== "index.docker.io"))
    throw new Error(`needs a registry host, e.g. localhost:5000/${reference}`);
  if (ref.tag !== undefined || ref.digest !== undefined) throw new Error("a repository takes no tag or digest");
  return {
    kind: "remote",
    registry: ref.registry,
    repository: ref.repository,
    insecure,
    reference: `${ref.registry}/${ref.repository}`,
  };
}
