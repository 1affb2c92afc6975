// Parses distribution-API paths. A repository name may contain slashes, so routes cannot be declared with
// fixed segments: the name is everything before the last `/blobs/`, `/manifests/`, `/tags/` or `/referrers/`
// that makes the rest of the path one of the API's shapes (the same greedy reading distribution's router has).

import { badRequest } from "../errors.ts";
import { validateRepositoryName } from "../oci/reference.ts";

export type ApiRoute =
  | { kind: "base" }
  | { kind: "catalog" }
  | { kind: "uploads"; name: string }
  | { kind: "upload"; name: string; id: string }
  | { kind: "blob"; name: string; digest: string }
  | { kind: "manifest"; name: string; reference: string }
  | { kind: "tags"; name: string }
  | { kind: "referrers"; name: string; digest: string };

const shapes: { pattern: RegExp; route: (name: string, last: string) => ApiRoute }[] = [
  { pattern: /^(.+)\/blobs\/uploads\/?$/s, route: (name) => ({ kind: "uploads", name }) },
  { pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/s, route: (name, id) => ({ kind: "upload", name, id }) },
  { pattern: /^(.+)\/blobs\/([^/]+)$/s, route: (name, digest) => ({ kind: "blob", name, digest }) },
  { pattern: /^(.+)\/manifests\/([^/]+)$/s, route: (name, reference) => ({ kind: "manifest", name, reference }) },
  { pattern: /^(.+)\/tags\/list$/s, route: (name) => ({ kind: "tags", name }) },
  { pattern: /^(.+)\/referrers\/([^/]+)$/s, route: (name, digest) => ({ kind: "referrers", name, digest }) },
];

/** Longest URL path accepted: distribution's 255-character names plus the longest route tail, with room. */
const maxPathLength = 2048;

/**
 * The route of a request path (without query), or undefined for a path outside the API. Throws NAME_INVALID
 * for an invalid repository name.
 */
export function parseApiPath(rawPath: string): ApiRoute | undefined {
  if (rawPath === "/v2" || rawPath === "/v2/") return { kind: "base" };
  if (!rawPath.startsWith("/v2/")) return undefined;
  if (rawPath.length > maxPathLength)
    throw badRequest(`request path is longer than ${maxPathLength} characters`, "NAME_INVALID");
  let path: string;
  try {
    path = decodeURIComponent(rawPath.slice(4));
  } catch {
    throw badRequest("request path has invalid percent-encoding", "NAME_INVALID");
  }
  if (path === "_catalog") return { kind: "catalog" };
  for (const shape of shapes) {
    const match = shape.pattern.exec(path);
    if (match) {
      const route = shape.route(match[1] ?? "", match[2] ?? "");
      validateRepositoryName((route as { name: string }).name);
      return route;
    }
  }
  return undefined;
}
