// The one Talos version parser. Semantic versions read exactly as upstream image-factory reads Talos tags:
// with Go's blang/semver v4.
// `parseStrict` is its `Parse` (what the HTTP routes accept after one leading "v" is cut), `parseTolerant` its
// `ParseTolerant` (what the imager tags are read with): surrounding spaces and one "v" are dropped, leading
// zeros of the first three parts removed, and a short "1.8" or "1" filled up to "1.8.0" / "1.0.0" unless it
// carries a pre-release. Numbers are unsigned 64-bit as in Go, so bigint.
// `parseRequestedVersion` is what a request (URL, flag) names: strict, one "v" optional, as a BadRequest;
// `parseVersionCore` is the tolerant major.minor.patch that the version rules table is looked up by.

import { badRequest } from "../errors.ts";

export type PrereleaseIdentifier =
  | { readonly numeric: true; readonly value: bigint }
  | { readonly numeric: false; readonly value: string };

export interface SemVer {
  readonly major: bigint;
  readonly minor: bigint;
  readonly patch: bigint;
  readonly pre: readonly PrereleaseIdentifier[];
  readonly build: readonly string[];
}

const maxUint64 = (1n << 64n) - 1n;
const digitsOnly = /^[0-9]+$/;
const alphanumericOrHyphen = /^[0-9A-Za-z-]+$/;

function parseNumber(part: string, what: string): bigint {
  if (!digitsOnly.test(part)) throw new Error(`invalid character(s) in ${what} number "${part}"`);
  if (part.length > 1 && part.startsWith("0"))
    throw new Error(`${what} number must not contain leading zeroes "${part}"`);
  const value = BigInt(part);
  if (value > maxUint64) throw new Error(`${what} number "${part}" is out of range`);
  return value;
}

function parsePrerelease(part: string): PrereleaseIdentifier {
  if (part === "") throw new Error("prerelease is empty");
  if (digitsOnly.test(part)) {
    if (part.length > 1 && part.startsWith("0"))
      throw new Error(`prerelease number must not contain leading zeroes "${part}"`);
    const value = BigInt(part);
    if (value > maxUint64) throw new Error(`prerelease number "${part}" is out of range`);
    return { numeric: true, value };
  }
  if (!alphanumericOrHyphen.test(part)) throw new Error(`invalid character(s) in prerelease "${part}"`);
  return { numeric: false, value: part };
}

/** blang/semver `Parse`: "major.minor.patch[-pre][+build]", no "v", no leading zeros. Throws Error naming the problem. */
export function parseStrict(text: string): SemVer {
  if (text === "") throw new Error("version string empty");
  const parts = splitN(text, ".", 3);
  if (parts.length !== 3) throw new Error("no Major.Minor.Patch elements found");
  const major = parseNumber(parts[0] as string, "major");
  const minor = parseNumber(parts[1] as string, "minor");
  let patchText = parts[2] as string;
  let build: string[] = [];
  let pre: string[] = [];
  const plus = patchText.indexOf("+");
  if (plus !== -1) {
    build = patchText.slice(plus + 1).split(".");
    patchText = patchText.slice(0, plus);
  }
  const dash = patchText.indexOf("-");
  if (dash !== -1) {
    pre = patchText.slice(dash + 1).split(".");
    patchText = patchText.slice(0, dash);
  }
  const patch = parseNumber(patchText, "patch");
  const prerelease = pre.map(parsePrerelease);
  for (const part of build) {
    if (part === "") throw new Error("build meta data is empty");
    if (!alphanumericOrHyphen.test(part)) throw new Error(`invalid character(s) in build meta data "${part}"`);
  }
  return { major, minor, patch, pre: prerelease, build };
}

/** blang/semver `ParseTolerant`. */
export function parseTolerant(text: string): SemVer {
  let s = text.trim();
  if (s.startsWith("v")) s = s.slice(1);
  const parts = splitN(s, ".", 3).map((part) => {
    if (part.length <= 1) return part;
    const trimmed = part.replace(/^0+/, "");
    // All zeros, or zeros before something that is not a digit: keep one zero (as Go does).
    return trimmed === "" || !/^[0-9]/.test(trimmed) ? `0${trimmed}` : trimmed;
  });
  if (parts.length < 3) {
    if (/[+-]/.test(parts[parts.length - 1] as string))
      throw new Error("short version cannot contain PreRelease/Build meta data");
    while (parts.length < 3) parts.push("0");
  }
  return parseStrict(parts.join("."));
}

/** Go's strings.SplitN. */
function splitN(text: string, separator: string, n: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (out.length < n - 1) {
    const at = rest.indexOf(separator);
    if (at === -1) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + separator.length);
  }
  out.push(rest);
  return out;
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Semantic version precedence (build metadata ignored): negative, zero or positive. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  const core = compareBig(a.major, b.major) || compareBig(a.minor, b.minor) || compareBig(a.patch, b.patch);
  if (core !== 0) return core;
  // A release ranks above its pre-releases.
  if (a.pre.length === 0 && b.pre.length === 0) return 0;
  if (a.pre.length === 0) return 1;
  if (b.pre.length === 0) return -1;
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i] as PrereleaseIdentifier;
    const y = b.pre[i] as PrereleaseIdentifier;
    if (x.numeric && y.numeric) {
      const c = compareBig(x.value, y.value);
      if (c !== 0) return c;
    } else if (x.numeric)
      return -1; // numeric identifiers rank below alphanumeric ones
    else if (y.numeric) return 1;
    else if (x.value !== y.value) return x.value < y.value ? -1 : 1;
  }
  return compareBig(BigInt(a.pre.length), BigInt(b.pre.length));
}

/** "1.10.0-beta.1+build" (without "v"), as blang/semver's String(). */
export function formatSemVer(v: SemVer): string {
  let out = `${v.major}.${v.minor}.${v.patch}`;
  if (v.pre.length > 0) out += `-${v.pre.map((p) => String(p.value)).join(".")}`;
  if (v.build.length > 0) out += `+${v.build.join(".")}`;
  return out;
}

/** The longest version a request may name (image tags are at most 128 characters; real ones are < 20). */
const maxRequestedVersionLength = 64;

/**
 * A Talos version as a request names it ("1.10.3" or "v1.10.3"): strict semver as upstream's handlers read
 * it, without build metadata (a "+" can never be part of an image tag). The one message for a malformed
 * version, whichever route or command met it: BadRequest `invalid Talos version "X": REASON`.
 */
export function parseRequestedVersion(text: string): SemVer {
  let reason: string | undefined;
  let parsed: SemVer | undefined;
  if (text.length > maxRequestedVersionLength) reason = `longer than ${maxRequestedVersionLength} characters`;
  else {
    try {
      parsed = parseStrict(text.startsWith("v") ? text.slice(1) : text);
      if (parsed.build.length > 0) reason = "build metadata (+…) cannot name an image tag";
    } catch (err) {
      reason = (err as Error).message;
    }
  }
  if (reason !== undefined || parsed === undefined) {
    const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
    throw badRequest(`invalid Talos version ${shown}: ${reason} (expected e.g. v1.10.3)`, "VERSION_INVALID");
  }
  return parsed;
}

/** "v" + the canonical form, as the factory prints versions and the vendor tags images: "v1.10.3". */
export function versionTag(v: SemVer): string {
  return `v${formatSemVer(v)}`;
}

/**
 * major.minor.patch read tolerantly (upstream's ParseTolerant: "v1.10" → "1.10.0", pre-release and build
 * dropped), or undefined when it is not a version — what the version rules table is looked up by.
 */
export function parseVersionCore(text: string): string | undefined {
  try {
    const v = parseTolerant(text);
    return `${v.major}.${v.minor}.${v.patch}`;
  } catch {
    return undefined;
  }
}
