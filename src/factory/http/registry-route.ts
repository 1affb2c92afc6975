// The routing of the registry front's `/v2/*path`, as upstream's `RouteV2`
// (internal/frontend/http/registry_routes.go; its unit test registry_routes_test.go): the catch-all value
// (with its leading "/") trimmed of slashes and split; empty is the ping; the last segment is the reference,
// the one before the resource, the rest the repository. `siderolabs/<image…>` is the source-image proxy
// (manifests, blobs, referrers, tags/list); anything else must be `<image>/<schematic>` with manifests,
// blobs or referrers. Every other path is a 404 `unknown registry path: "<path>"` in plain text.

import { notFound } from "../../errors.ts";
import { goQuote } from "../../util/go-quote.ts";

export type V2Route =
  | { target: "ping" }
  | { target: "manifest" | "blob" | "referrers"; image: string; schematic: string; reference: string }
  | { target: "proxy"; image: string; resource: string; reference: string };

/** Parses the catch-all value below `/v2` (e.g. `/installer/<id>/manifests/v1.10.3`). */
export function routeV2(path: string): V2Route {
  const unknown = () => notFound(`unknown registry path: ${goQuote(path)}`, "ROUTE_UNKNOWN");
  const trimmed = path.replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return { target: "ping" };
  const segments = trimmed.split("/");
  if (segments.length < 3) throw unknown();
  const reference = segments[segments.length - 1] as string;
  const resource = segments[segments.length - 2] as string;
  const repo = segments.slice(0, -2);
  if (reference === "") throw unknown();
  if (repo[0] === "siderolabs") {
    const allowed =
      resource === "manifests" ||
      resource === "blobs" ||
      resource === "referrers" ||
      (resource === "tags" && reference === "list");
    const image = repo.slice(1).join("/");
    if (!allowed || image === "") throw unknown();
    return { target: "proxy", image, resource, reference };
  }
  if (resource !== "manifests" && resource !== "blobs" && resource !== "referrers") throw unknown();
  if (repo.length !== 2) throw unknown();
  const target = resource === "manifests" ? "manifest" : resource === "blobs" ? "blob" : "referrers";
  return { target, image: repo[0] as string, schematic: repo[1] as string, reference };
}

/**
 * Whether a registry is reached over plain HTTP, as go-containerregistry's `name.Registry.Scheme` decides:
 * marked insecure, `localhost[:port]`, a loopback address, or an RFC 1918 private IPv4 address.
 */
export function isPlainHttpRegistry(registry: string, insecure: boolean): boolean {
  if (insecure) return true;
  const host = registry.startsWith("[") ? registry.slice(1, registry.indexOf("]")) : registry.replace(/:\d+$/, "");
  if (host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host)) return true;
  const octets = host.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return false;
  const [a, b] = octets as [number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}
