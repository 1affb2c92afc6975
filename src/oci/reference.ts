// Image references ("ubuntu", "ghcr.io/siderolabs/imager:v1.9.0", "localhost:5000/x@sha256:…") with the
// normalization rules Docker applies (github.com/distribution/reference), so a name means here what it
// means to `docker pull`:
//   - the first path component is a registry host when it contains "." or ":", is "localhost", or has an
//     uppercase letter (then it cannot be a repository component); otherwise the registry is docker.io;
//   - "index.docker.io" is spelled "docker.io";
//   - a one-component repository on docker.io gets the "library/" prefix.
// A missing tag stays `undefined` (so "x" and "x:latest" can be told apart, and "x@digest" has no tag);
// `tagOrDefault` gives "latest" where a caller needs a tag.

import { badRequest } from "../errors.ts";
import { type Digest, isDigest } from "./digest.ts";

export interface ImageReference {
  /** Registry host, with port when one was given, e.g. "docker.io", "localhost:5000", "[::1]:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "library/ubuntu". */
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const dockerHubRegistry = "docker.io";
export const defaultTag = "latest";
/** distribution's limit on a whole name (registry + "/" + repository). */
export const maxNameLength = 255;
const maxTagLength = 128;

// One repository path component: lowercase alphanumerics joined by ".", "_", "__" or runs of "-".
const componentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// A host: DNS-like labels (case allowed), or an IPv6 literal in brackets; then an optional port.
const hostPattern =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const bareImageIdPattern = /^[a-f0-9]{64}$/;

function shown(input: string): string {
  return JSON.stringify(input.length > 300 ? `${input.slice(0, 300)}…` : input);
}

function nameInvalid(input: string, problem: string) {
  return badRequest(`invalid image reference ${shown(input)}: ${problem}`, "NAME_INVALID");
}

/** Why a repository path is invalid, or undefined when it is valid. */
function repositoryProblem(path: string): string | undefined {
  if (path === "") return "repository name is empty";
  if (path.startsWith("/")) return "repository name starts with a slash";
  if (path.endsWith("/")) return "repository name ends with a slash";
  for (const component of path.split("/")) {
    if (component === "") return "repository name has an empty path component";
    if (component === "." || component === "..") return `repository name has a "${component}" path component`;
    if (/[A-Z]/.test(component)) return "repository name must be lowercase";
    if (!componentPattern.test(component))
      return `repository path component "${component}" must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*`;
  }
  return undefined;
}

/**
 * Validates the `<name>` of a `/v2/<name>/…` URL (a repository path without registry host). Returns it
 * unchanged, or throws BadRequest NAME_INVALID naming the problem.
 */
export function validateRepositoryName(name: string): string {
  if (name.length > maxNameLength)
    throw badRequest(
      `invalid repository name ${shown(name)}: longer than ${maxNameLength} characters (${name.length})`,
      "NAME_INVALID",
    );
  const problem = repositoryProblem(name);
  if (problem !== undefined) throw badRequest(`invalid repository name ${shown(name)}: ${problem}`, "NAME_INVALID");
  return name;
}

/** Validates a tag (`[\w][\w.-]{0,127}`), throwing BadRequest TAG_INVALID; returns it unchanged. */
export function validateTag(tag: string): string {
  if (!tagPattern.test(tag)) {
    const why =
      tag === ""
        ? "tag is empty"
        : tag.length > maxTagLength
          ? `tag is longer than ${maxTagLength} characters`
          : "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    throw badRequest(`invalid tag ${shown(tag)}: ${why}`, "TAG_INVALID");
  }
  return tag;
}

/**
 * Whether the `<reference>` of `/v2/<name>/manifests/<reference>` is meant as a digest rather than a tag.
 * A tag can never contain ":", so anything that does is a digest (which the caller then validates with
 * `parseDigest`, giving DIGEST_INVALID when malformed).
 */
export function isDigestReference(reference: string): boolean {
  return reference.includes(":");
}

/** Parses the `<reference>` part of a manifest URL into a validated tag or digest. */
export function parseManifestReference(reference: string): { tag: string } | { digest: Digest } {
  if (isDigestReference(reference)) {
    if (!isDigest(reference))
      throw badRequest(
        `invalid digest ${shown(reference)}: expected sha256:<64 hex> or sha512:<128 hex>`,
        "DIGEST_INVALID",
      );
    return { digest: reference };
  }
  return { tag: validateTag(reference) };
}

function looksLikeHost(component: string): boolean {
  return component.includes(".") || component.includes(":") || component === "localhost" || /[A-Z]/.test(component);
}

/**
 * Parses an image reference with Docker's normalization. `defaultRegistry` replaces docker.io for names
 * without a host (the "library/" prefix applies only when the registry is docker.io).
 */
export function parseReference(input: string, options?: { defaultRegistry?: string }): ImageReference {
  if (input === "") throw nameInvalid(input, "reference is empty");
  if (/\s/.test(input)) throw nameInvalid(input, "reference contains whitespace");

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    const digestPart = rest.slice(at + 1);
    if (!isDigest(digestPart))
      throw badRequest(
        `invalid image reference ${shown(input)}: digest "${digestPart}" must be sha256:<64 hex> or sha512:<128 hex>`,
        "DIGEST_INVALID",
      );
    digest = digestPart;
    rest = rest.slice(0, at);
  }

  // The tag follows the last ":" that comes after the last "/" (an earlier ":" is a registry port).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    const tagPart = rest.slice(colon + 1);
    if (!tagPattern.test(tagPart))
      throw badRequest(
        `invalid image reference ${shown(input)}: tag "${tagPart}" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`,
        "TAG_INVALID",
      );
    tag = tagPart;
    rest = rest.slice(0, colon);
  }

  const name = rest;
  if (name === "") throw nameInvalid(input, "repository name is empty");
  if (name.length > maxNameLength)
    throw nameInvalid(input, `name is longer than ${maxNameLength} characters (${name.length})`);
  if (bareImageIdPattern.test(name))
    throw nameInvalid(input, "a 64-character hexadecimal string is an image ID, not a repository name");

  let registry: string;
  let repository: string;
  const slash = name.indexOf("/");
  const first = slash === -1 ? "" : name.slice(0, slash);
  if (slash !== -1 && looksLikeHost(first)) {
    if (!hostPattern.test(first)) throw nameInvalid(input, `registry host "${first}" is not a valid host[:port]`);
    registry = first === "index.docker.io" ? dockerHubRegistry : first;
    repository = name.slice(slash + 1);
  } else {
    registry = options?.defaultRegistry ?? dockerHubRegistry;
    repository = name;
  }

  const problem = repositoryProblem(repository);
  if (problem !== undefined) throw nameInvalid(input, problem);
  if (registry === dockerHubRegistry && !repository.includes("/")) repository = `library/${repository}`;

  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The reference's tag, or "latest" when it has none. */
export function tagOrDefault(ref: ImageReference): string {
  return ref.tag ?? defaultTag;
}

/** What to ask the registry's manifests endpoint for: the digest when pinned, else the tag (or "latest"). */
export function manifestReferenceOf(ref: ImageReference): string {
  return ref.digest ?? tagOrDefault(ref);
}

/** The fully qualified form, e.g. "docker.io/library/ubuntu:22.04@sha256:…" (no tag is invented). */
export function formatReference(ref: ImageReference): string {
  let out = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}
