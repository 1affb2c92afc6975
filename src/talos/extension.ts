// System extensions: the `manifest.yaml` model, its compatibility constraint, and validation of a
// flattened extension image (a directory holding exactly `manifest.yaml` and `rootfs/`), as upstream's
// extension loader does (siderolabs/talos pkg/machinery/extensions): every non-directory entry under an
// allowed prefix for the Talos version, only directories, regular files and symlinks, nothing
// world-writable. Errors name the extension and the offending path. Also the minimal model of an
// extension service spec (`rootfs/usr/local/etc/containers/<name>.yaml`).

import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { parseDocument } from "yaml";
import { badRequest } from "../errors.ts";
import { parseTalosVersion, rulesFor } from "./version-rules.ts";

export interface ExtensionMetadata {
  name: string;
  version: string;
  author: string;
  description: string;
  compatibility?: { talos?: { version?: string } };
  extraInfo?: string;
}

export interface ExtensionManifest {
  version: "v1alpha1";
  metadata: ExtensionMetadata;
}

/** manifest.yaml is a few hundred bytes; refuse anything absurd before parsing. */
const maxManifestBytes = 64 * 1024;
const maxYamlAliases = 100;

/** Parses YAML text with bounds (size, alias expansion), one document only. */
export function parseBoundedYaml(text: string | Uint8Array, what: string, maxBytes = maxManifestBytes): unknown {
  const source = typeof text === "string" ? text : Buffer.from(text).toString("utf8");
  if (Buffer.byteLength(source) > maxBytes) throw badRequest(`${what}: larger than ${maxBytes} bytes`);
  const doc = parseDocument(source, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) throw badRequest(`${what}: invalid YAML: ${doc.errors[0]?.message.split("\n")[0]}`);
  try {
    return doc.toJS({ maxAliasCount: maxYamlAliases });
  } catch (err) {
    throw badRequest(`${what}: ${(err as Error).message}`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function stringField(
  record: Record<string, unknown>,
  key: string,
  what: string,
  required: boolean,
): string | undefined {
  const value = record[key];
  if (value === undefined || value === null) {
    if (required) throw badRequest(`${what}: metadata.${key} is required`);
    return undefined;
  }
  if (typeof value !== "string" && typeof value !== "number")
    throw badRequest(`${what}: metadata.${key} must be a string`);
  return String(value);
}

/** Parses and checks a manifest.yaml. `source` names it in errors (e.g. the image reference). */
export function parseExtensionManifest(text: string | Uint8Array, source: string): ExtensionManifest {
  const what = `extension manifest ${source}`;
  const raw = parseBoundedYaml(text, what);
  if (!isRecord(raw)) throw badRequest(`${what}: not a YAML mapping`);
  if (raw.version !== "v1alpha1") throw badRequest(`${what}: unsupported version ${JSON.stringify(raw.version)}`);
  const meta = raw.metadata;
  if (!isRecord(meta)) throw badRequest(`${what}: metadata is missing`);
  const metadata: ExtensionMetadata = {
    name: stringField(meta, "name", what, true) as string,
    version: stringField(meta, "version", what, true) as string,
    author: stringField(meta, "author", what, false) ?? "",
    description: stringField(meta, "description", what, false) ?? "",
  };
  if (metadata.name === "") throw badRequest(`${what}: metadata.name is empty`);
  if (meta.compatibility !== undefined) {
    const talos = isRecord(meta.compatibility) ? meta.compatibility.talos : undefined;
    const constraint = isRecord(talos) ? talos.version : undefined;
    if (constraint !== undefined && typeof constraint !== "string")
      throw badRequest(`${what}: metadata.compatibility.talos.version must be a string`);
    metadata.compatibility = { talos: constraint === undefined ? {} : { version: constraint } };
    if (constraint !== undefined) parseConstraint(constraint, what);
  }
  const extraInfo = stringField(meta, "extraInfo", what, false);
  if (extraInfo !== undefined) metadata.extraInfo = extraInfo;
  return { version: "v1alpha1", metadata };
}

/** A Talos constraint (">= v1.8.0", ">=1.8.0 <1.10.0") as a semver range: a `v` before digits is dropped. */
export function parseConstraint(constraint: string, what = "constraint"): semver.Range {
  const cleaned = constraint.replace(/v(?=\d)/g, "");
  try {
    return new semver.Range(cleaned, { includePrerelease: true });
  } catch {
    throw badRequest(`${what}: invalid Talos version constraint "${constraint}"`);
  }
}

/**
 * Whether the extension may be used with this Talos version. No constraint: yes. As upstream
 * (talos pkg/machinery/extensions/validate.go validateConstraints, coreVersion), the version is judged
 * without its pre-release part: `>= v1.11.0` accepts v1.11.0-beta.1. A Talos version that is not semver
 * counts as the newest, so only constraints without an upper bound accept it.
 */
export function isCompatible(manifest: ExtensionManifest, talosVersion: string): boolean {
  const constraint = manifest.metadata.compatibility?.talos?.version;
  if (constraint === undefined || constraint.trim() === "") return true;
  const range = parseConstraint(constraint, `extension "${manifest.metadata.name}"`);
  const cleaned = talosVersion.trim().replace(/^v/, "");
  const version = semver.valid(cleaned) ?? parseTalosVersion(talosVersion);
  if (version === undefined) return semver.satisfies("999999.0.0", range);
  const core = semver.parse(version);
  return semver.satisfies(core ? `${core.major}.${core.minor}.${core.patch}` : version, range);
}

export function checkCompatibility(manifest: ExtensionManifest, talosVersion: string): void {
  if (!isCompatible(manifest, talosVersion))
    throw badRequest(
      `extension "${manifest.metadata.name}" (${manifest.metadata.version}) is not compatible with Talos ${talosVersion}: requires ${manifest.metadata.compatibility?.talos?.version}`,
    );
}

/** Version strings upstream's extension build validator accepts. */
export function isValidExtensionVersion(version: string): boolean {
  const semverLike = /^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
  if (semverLike.test(version)) return true;
  if (/^\d{8}(\.\d)?$/.test(version)) return true; // firmware dates
  const withTalos = /^(.+)-(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/.exec(version); // <upstream>-v<talos semver>
  if (withTalos !== null) return true;
  return /^v?\d+\.\d+$/.test(version);
}

/** Whether `path` (absolute, inside the extension's rootfs) lies under one of the allowed prefixes. */
export function isAllowedExtensionPath(path: string, allowed: readonly string[]): boolean {
  return allowed.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

/**
 * One problem found in an extension: `path` is where, relative to the image root ("manifest.yaml",
 * "rootfs/usr/local/x", "" for the root itself); `rule` names the rule it breaks; `message` says it in full
 * (naming the extension).
 */
export interface ExtensionProblem {
  path: string;
  rule: ExtensionRule;
  message: string;
}

/**
 * The rules, as upstream states them: layout and manifest (talos pkg/machinery/extensions/load.go), name and
 * version patterns (siderolabs/extensions-validator cmd/extensions-validator/cmd/validate.go), compatibility
 * and contents (talos pkg/machinery/extensions/validate.go), service specs (talos
 * pkg/machinery/extensions/services/services.go). `name` is this project's: the name is the last component
 * of the extension's repository in a catalog, so it must be one.
 */
export type ExtensionRule =
  | "layout"
  | "manifest"
  | "name"
  | "version"
  | "compatibility"
  | "world-writable"
  | "special-file"
  | "allowed-paths"
  | "service-spec"
  | "template"
  | "limits";

/** An entry of an extension's rootfs, as the content rules see it. `path` is absolute ("/usr/local/x"). */
export interface ExtensionEntry {
  path: string;
  kind: "directory" | "file" | "symlink" | "special";
  /** Permission bits. */
  mode: number;
}

export interface ValidateOptions {
  talosVersion: string;
  /** How to name the extension in errors (default: the manifest's name). */
  name?: string;
  /** Most entries walked in rootfs (default 1,000,000). */
  maxEntries?: number;
  /**
   * What a content problem (a path outside the version's allow-list, a world-writable or special file) is:
   * "refuse" (the default: for extensions this project builds and publishes) or "warn" (for building
   * assets: upstream's imager does not check contents at all, so a real extension it builds with must not be
   * refused; talos pkg/imager/extensions/extensions.go validateExtensions, ExtensionValidateContents off).
   */
  contents?: "refuse" | "warn";
  /** Receives the content problems in "warn" mode. */
  warn?: (line: string) => void;
  /**
   * Also the build-time rules of upstream's extension build (`extension build` / `validate`): the name and
   * version patterns and every service spec under usr/local/etc/containers.
   */
  strict?: boolean;
}

/** What checking an extension found: its manifest when it parses, and every problem. */
export interface ExtensionCheck {
  manifest?: ExtensionManifest;
  problems: ExtensionProblem[];
}

/** A name that can be a repository path component (OCI distribution spec), as catalogs need. */
const extensionNamePattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Checks manifest.yaml's text: parse, name, version (strict), compatibility with the Talos version. */
export function checkExtensionManifest(
  text: string | Uint8Array,
  options: Pick<ValidateOptions, "talosVersion" | "name" | "strict"> & { source?: string },
): ExtensionCheck {
  const problem = (rule: ExtensionRule, message: string): ExtensionProblem => ({
    path: "manifest.yaml",
    rule,
    message,
  });
  let manifest: ExtensionManifest;
  try {
    manifest = parseExtensionManifest(text, `"${options.source ?? options.name ?? "manifest.yaml"}"`);
  } catch (err) {
    return { problems: [problem("manifest", (err as Error).message)] };
  }
  const label = options.name ?? manifest.metadata.name;
  const problems: ExtensionProblem[] = [];
  const { name, version } = manifest.metadata;
  if (options.strict && !extensionNamePattern.test(name))
    problems.push(
      problem(
        "name",
        `extension "${label}": metadata.name "${name}" is not a valid repository name component (lower-case letters, digits, separators . _ -)`,
      ),
    );
  if (options.strict && !isValidExtensionVersion(version))
    problems.push(
      problem(
        "version",
        `extension "${label}": metadata.version "${version}" matches none of upstream's version patterns (semver, YYYYMMDD[.N], <upstream>-v<talos semver>, MAJOR.MINOR)`,
      ),
    );
  try {
    checkCompatibility(manifest, options.talosVersion);
  } catch (err) {
    problems.push(problem("compatibility", (err as Error).message));
  }
  return { manifest, problems };
}

/**
 * The content rules over a rootfs's entries (talos pkg/machinery/extensions/validate.go validateContents):
 * nothing world-writable (symlinks aside), only directories, regular files and symlinks, every
 * non-directory under a path the Talos version allows (version-rules.ts extensionAllowedPaths).
 */
export function checkExtensionEntries(
  entries: Iterable<ExtensionEntry>,
  options: { talosVersion: string; name: string },
): ExtensionProblem[] {
  const allowed = rulesFor(options.talosVersion).extensionAllowedPaths;
  const problems: ExtensionProblem[] = [];
  const at = (entry: ExtensionEntry, rule: ExtensionRule, text: string) =>
    problems.push({ path: `rootfs${entry.path}`, rule, message: `extension "${options.name}": ${entry.path} ${text}` });
  for (const entry of entries) {
    if (entry.kind === "special") at(entry, "special-file", "is a special file (only directories, files and symlinks)");
    if (entry.kind !== "symlink" && (entry.mode & 0o002) !== 0) at(entry, "world-writable", "is world-writable");
    if (entry.kind !== "directory" && !isAllowedExtensionPath(entry.path, allowed))
      at(
        entry,
        "allowed-paths",
        `is outside the paths allowed for Talos ${options.talosVersion} (${allowed.join(", ")})`,
      );
  }
  return problems;
}

/** Whether an absolute rootfs path is an extension service spec Talos loads (a `.yaml` file directly in the dir). */
export function isExtensionServiceSpecPath(path: string): boolean {
  return (
    path.startsWith(`/${extensionServicesDir}/`) &&
    path.endsWith(".yaml") &&
    !path.slice(extensionServicesDir.length + 2).includes("/")
  );
}

/** Checks one service spec's text; `path` is its absolute rootfs path. */
export function checkExtensionServiceSpec(text: string | Uint8Array, path: string, name: string): ExtensionProblem[] {
  const fileName = path.slice(path.lastIndexOf("/") + 1);
  try {
    parseExtensionServiceSpec(text, fileName);
    return [];
  } catch (err) {
    return [
      {
        path: `rootfs${path}`,
        rule: "service-spec",
        message: `extension "${name}": ${path}: ${(err as Error).message}`,
      },
    ];
  }
}

/** One line per problem: the message and the rule it breaks. */
export function describeProblems(problems: readonly ExtensionProblem[]): string {
  return problems.map((p) => `${p.message} [${p.rule}]`).join("; ");
}

/**
 * Checks a flattened extension image in `dir` (exactly `manifest.yaml` and `rootfs/`) for a Talos version
 * and returns every problem found, never stopping at the first. Symlinks are judged by their own path,
 * never followed. In "warn" mode content problems go to `warn` instead.
 */
export async function checkExtensionTree(dir: string, options: ValidateOptions): Promise<ExtensionCheck> {
  const label = options.name ?? dir;
  const problems: ExtensionProblem[] = [];
  const top = (await readdir(dir)).sort();
  for (const name of top.filter((n) => n !== "manifest.yaml" && n !== "rootfs"))
    problems.push({
      path: name,
      rule: "layout",
      message: `extension "${label}": unexpected "${name}" at the image root (only manifest.yaml and rootfs/)`,
    });
  let manifest: ExtensionManifest | undefined;
  const manifestInfo = top.includes("manifest.yaml") ? await lstat(join(dir, "manifest.yaml")) : undefined;
  if (manifestInfo === undefined)
    problems.push({ path: "manifest.yaml", rule: "layout", message: `extension "${label}": manifest.yaml is missing` });
  else if (!manifestInfo.isFile() || manifestInfo.size > maxManifestBytes)
    problems.push({
      path: "manifest.yaml",
      rule: "manifest",
      message: `extension "${label}": manifest.yaml is not a small regular file`,
    });
  else {
    const checked = checkExtensionManifest(await readFile(join(dir, "manifest.yaml")), {
      ...options,
      source: label,
    });
    manifest = checked.manifest;
    problems.push(...checked.problems);
  }
  const name = options.name ?? manifest?.metadata.name ?? label;
  const rootfs = join(dir, "rootfs");
  if (!top.includes("rootfs") || !(await lstat(rootfs)).isDirectory()) {
    problems.push({ path: "rootfs", rule: "layout", message: `extension "${label}": rootfs/ is missing` });
    return { ...(manifest ? { manifest } : {}), problems };
  }

  const maxEntries = options.maxEntries ?? 1_000_000;
  const entries: ExtensionEntry[] = [];
  const specs: string[] = [];
  const walk = async (hostDir: string, path: string): Promise<void> => {
    for (const entry of (await readdir(hostDir)).sort()) {
      if (entries.length >= maxEntries) throw badRequest(`extension "${name}": more than ${maxEntries} files`);
      const hostPath = join(hostDir, entry);
      const entryPath = `${path}/${entry}`;
      const info = await lstat(hostPath);
      const kind = info.isDirectory()
        ? "directory"
        : info.isFile()
          ? "file"
          : info.isSymbolicLink()
            ? "symlink"
            : "special";
      entries.push({ path: entryPath, kind, mode: info.mode & 0o7777 });
      if (kind === "directory") await walk(hostPath, entryPath);
      else if (kind === "file" && options.strict && isExtensionServiceSpecPath(entryPath)) specs.push(entryPath);
    }
  };
  await walk(rootfs, "");
  const contentProblems = checkExtensionEntries(entries, { talosVersion: options.talosVersion, name });
  if (options.contents === "warn")
    for (const p of contentProblems) options.warn?.(`${p.message} (upstream's imager does not check contents: kept)`);
  else problems.push(...contentProblems);
  for (const spec of specs) {
    const info = await lstat(join(rootfs, spec));
    if (info.size > maxManifestBytes)
      problems.push({
        path: `rootfs${spec}`,
        rule: "service-spec",
        message: `extension "${name}": ${spec} is larger than ${maxManifestBytes} bytes`,
      });
    else problems.push(...checkExtensionServiceSpec(await readFile(join(rootfs, spec)), spec, name));
  }
  return { ...(manifest ? { manifest } : {}), problems };
}

/**
 * Validates a flattened extension image in `dir` for a Talos version and returns its manifest: layout,
 * manifest, compatibility, entries (types, permissions, allowed paths). Every problem is reported at once
 * (the error's `detail` holds them as ExtensionProblem[]).
 */
export async function validateExtensionTree(dir: string, options: ValidateOptions): Promise<ExtensionManifest> {
  const { manifest, problems } = await checkExtensionTree(dir, options);
  if (problems.length > 0 || manifest === undefined)
    throw badRequest(describeProblems(problems), "EXTENSION_INVALID", problems);
  return manifest;
}

// ---------------------------------------------------------------------------------------------------------
// Extension services

export type ServiceDependency =
  | { service: string }
  | { path: string }
  | { network: string[] }
  | { time: boolean }
  | { configuration: boolean };

export interface ExtensionServiceSpec {
  name: string;
  container: {
    entrypoint: string;
    args?: string[];
    environment?: string[];
    mounts?: unknown[];
    security?: Record<string, unknown>;
  };
  depends: ServiceDependency[];
  restart: "always" | "never" | "untilSuccess";
}

/** Where extension service specs live in an extension's rootfs, and each service's own rootfs. */
export const extensionServicesDir = "usr/local/etc/containers";
export const extensionServiceRootfs = (name: string) => `usr/local/lib/containers/${name}`;

/** Network readiness a service may wait for (talos pkg/machinery/nethelpers/status.go). */
const networkStatuses = ["addresses", "connectivity", "hostname", "etcfiles"];

/** Parses and checks an extension service spec; `fileName` (e.g. "hello.yaml") must match its name. */
export function parseExtensionServiceSpec(text: string | Uint8Array, fileName?: string): ExtensionServiceSpec {
  const what = `extension service ${fileName ?? "spec"}`;
  const raw = parseBoundedYaml(text, what);
  if (!isRecord(raw)) throw badRequest(`${what}: not a YAML mapping`);
  const name = raw.name;
  if (typeof name !== "string" || !/^[-_a-z0-9]+$/.test(name))
    throw badRequest(`${what}: name must match ^[-_a-z0-9]+$`);
  if (fileName !== undefined && fileName !== `${name}.yaml`)
    throw badRequest(`${what}: file name must be ${name}.yaml`);
  const container = raw.container;
  if (!isRecord(container) || typeof container.entrypoint !== "string" || container.entrypoint === "")
    throw badRequest(`${what}: container.entrypoint is required`);
  const depends: ServiceDependency[] = [];
  for (const dep of Array.isArray(raw.depends) ? raw.depends : raw.depends === undefined ? [] : [null]) {
    const keys = isRecord(dep) ? Object.keys(dep) : [];
    const kinds = ["service", "path", "network", "time", "configuration"];
    if (keys.length !== 1 || !kinds.includes(keys[0] as string))
      throw badRequest(`${what}: each dependency must be exactly one of ${kinds.join(", ")}`);
    const value = (dep as Record<string, unknown>)[keys[0] as string];
    if (keys[0] === "path" && (typeof value !== "string" || !value.startsWith("/")))
      throw badRequest(`${what}: a path dependency must be absolute`);
    if (keys[0] === "network" && (!Array.isArray(value) || value.some((v) => !networkStatuses.includes(v as string))))
      throw badRequest(`${what}: network dependencies must be among ${networkStatuses.join(", ")}`);
    depends.push(dep as ServiceDependency);
  }
  const restart = raw.restart ?? "always";
  if (restart !== "always" && restart !== "never" && restart !== "untilSuccess")
    throw badRequest(`${what}: restart must be always, never or untilSuccess`);
  const spec: ExtensionServiceSpec = {
    name,
    container: { entrypoint: container.entrypoint },
    depends,
    restart,
  };
  if (Array.isArray(container.args)) spec.container.args = container.args.map(String);
  if (Array.isArray(container.environment)) spec.container.environment = container.environment.map(String);
  if (Array.isArray(container.mounts)) spec.container.mounts = container.mounts;
  if (isRecord(container.security)) spec.container.security = container.security;
  return spec;
}
