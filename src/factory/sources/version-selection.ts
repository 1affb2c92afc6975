// Which tags of the imager repository are Talos versions the factory offers. Upstream's rule
// (image-factory internal/artifacts/versions.go, fetchTalosVersions):
//   - a tag counts when it parses as semver, tolerantly ("v" optional, "1.8" → 1.8.0); others (latest-dev,
//     cosign's sha256-….sig) are ignored;
//   - the newest of ALL parsed tags (filtered or not) decides which major.minor may offer pre-releases;
//   - dropped: versions below the minimum (a pre-release of the minimum is below it), versions marked broken
//     (equal ignoring build metadata), and pre-releases unless they are of that newest major.minor and read
//     exactly `alpha|beta|rc` "." number;
//   - sorted by semver precedence.
// Beyond upstream: when two tags read as the same version ("v1.8.2" and "1.8.2") it is listed once, keeping
// the tag written as upstream prints versions ("v" + canonical) so that pulling it by that name works.

import { compareSemVer, formatSemVer, parseRequestedVersion, parseTolerant, type SemVer } from "../../talos/version.ts";

export { parseRequestedVersion };

export interface TalosVersion {
  /** As the factory prints it: "v" + the canonical version, e.g. "v1.10.3". */
  readonly name: string;
  /** The imager tag it was read from, which the other source images share. */
  readonly tag: string;
  readonly semver: SemVer;
  readonly prerelease: boolean;
}

export interface VersionSelectionRules {
  /** major.minor.patch */
  readonly minVersion: string;
  /** major.minor.patch[-pre] */
  readonly brokenVersions: readonly string[];
}

const allowedPrereleaseKinds = new Set(["alpha", "beta", "rc"]);

/** "v" + canonical form, as upstream prints versions. */
export function talosVersionName(v: SemVer): string {
  return `v${formatSemVer(v)}`;
}

/** Reads the configured minimum or a broken version (tolerantly, as upstream's flags are). */
export function parseConfiguredVersion(text: string, what: string): SemVer {
  try {
    return parseTolerant(text);
  } catch (err) {
    throw new Error(`${what} "${text}" is not a version: ${(err as Error).message}`);
  }
}

function tryParseTolerant(tag: string): SemVer | undefined {
  try {
    return parseTolerant(tag);
  } catch {
    return undefined;
  }
}

function isOfferedPrerelease(v: SemVer, newest: SemVer): boolean {
  if (v.major !== newest.major || v.minor !== newest.minor) return false;
  if (v.pre.length !== 2) return false;
  const [kind, number] = v.pre as [SemVer["pre"][number], SemVer["pre"][number]];
  return !kind.numeric && allowedPrereleaseKinds.has(kind.value) && number.numeric;
}

/** The offered Talos versions among `tags`, oldest first. */
export function selectTalosVersions(tags: Iterable<string>, rules: VersionSelectionRules): TalosVersion[] {
  const min = parseConfiguredVersion(rules.minVersion, "minimum Talos version");
  const broken = rules.brokenVersions.map((v) => parseConfiguredVersion(v, "broken Talos version"));
  const parsed: { tag: string; semver: SemVer }[] = [];
  for (const tag of tags) {
    const semver = tryParseTolerant(tag);
    if (semver !== undefined) parsed.push({ tag, semver });
  }
  if (parsed.length === 0) return [];
  const newest = parsed.reduce((a, b) => (compareSemVer(b.semver, a.semver) > 0 ? b : a)).semver;

  const byName = new Map<string, TalosVersion>();
  for (const { tag, semver } of parsed) {
    if (compareSemVer(semver, min) < 0) continue;
    if (broken.some((b) => compareSemVer(semver, b) === 0)) continue;
    if (semver.pre.length > 0 && !isOfferedPrerelease(semver, newest)) continue;
    const name = talosVersionName(semver);
    const existing = byName.get(name);
    if (existing !== undefined && existing.tag === name) continue;
    if (existing !== undefined && tag !== name && existing.tag < tag) continue; // stable choice among odd spellings
    byName.set(name, { name, tag, semver, prerelease: semver.pre.length > 0 });
  }
  return [...byName.values()].sort((a, b) => compareSemVer(a.semver, b.semver) || (a.name < b.name ? -1 : 1));
}
