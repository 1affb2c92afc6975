// apt-get / apt-cache (Debian apt): resolve and download packages without installing them. The test bed
// builds from Debian's kernel: `linux-image-amd64` is a meta package whose dependency names the current
// `linux-image-6.1.0-NN-amd64`, and old ones leave the mirror, so the name is resolved at build time.

import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { notFound } from "../errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { parseControlFields } from "./dpkg.ts";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const aptGetTool: Tool = { command: "apt-get", debianPackage: "apt" };
export const aptCacheTool: Tool = { command: "apt-cache", debianPackage: "apt" };

type Options = Pick<RunOptions, "signal" | "timeoutMs"> & {
  /** An apt configuration of the project's own (privateAptConfig); default: the machine's. */
  config?: AptConfig;
};

/** `-o` options pointing apt at a sources list, package lists and cache of its own. */
export interface AptConfig {
  readonly args: readonly string[];
}

export interface AptSource {
  /** e.g. "http://deb.debian.org/debian". */
  uri: string;
  /** e.g. "trixie". */
  suite: string;
  components: readonly string[];
  /** The keyring that signs the suite, e.g. /usr/share/keyrings/debian-archive-keyring.gpg. */
  signedBy: string;
  /** The only architecture listed (e.g. "arm64" for another machine's files); default the machine's. */
  architecture?: string;
}

/**
 * An apt configuration under `dir` that reads only `source` (one, or several of one architecture): its own
 * sources.list (no sources.list.d), its own package lists and download cache, and no dpkg status (nothing is
 * installed through it). The machine's /etc/apt sources and lists are never read or written; `apt-get update`
 * with it refreshes only `dir`.
 */
export async function privateAptConfig(dir: string, source: AptSource | readonly AptSource[]): Promise<AptConfig> {
  const sources: readonly AptSource[] = Array.isArray(source) ? source : [source as AptSource];
  const architecture = sources[0]?.architecture;
  if (sources.length === 0) throw new RangeError("an apt configuration needs a source");
  if (sources.some((s) => s.architecture !== architecture))
    throw new RangeError("the sources of one apt configuration list one architecture");
  for (const s of sources)
    for (const part of [
      s.uri,
      s.suite,
      s.signedBy,
      ...s.components,
      ...(architecture === undefined ? [] : [architecture]),
    ])
      if (!/^[\w.:/+~-]+$/.test(part)) throw new RangeError(`invalid apt source part "${part}"`);
  const parts = join(dir, "sources.list.d");
  const lists = join(dir, "lists");
  const cache = join(dir, "cache");
  await mkdir(parts, { recursive: true });
  await mkdir(join(lists, "partial"), { recursive: true });
  await mkdir(join(cache, "archives", "partial"), { recursive: true });
  const sourcesList = join(dir, "sources.list");
  await writeFileAtomic(
    dir,
    sourcesList,
    sources.map((s) => `deb [signed-by=${s.signedBy}] ${s.uri} ${s.suite} ${s.components.join(" ")}\n`).join(""),
  );
  return {
    args: [
      "-o",
      `Dir::Etc::SourceList=${sourcesList}`,
      "-o",
      `Dir::Etc::SourceParts=${parts}`,
      "-o",
      `Dir::State::Lists=${lists}`,
      "-o",
      `Dir::Cache=${cache}`,
      "-o",
      "Dir::State::status=/dev/null",
      "-o",
      "Acquire::Languages=none",
      ...(architecture === undefined
        ? []
        : ["-o", `APT::Architecture=${architecture}`, "-o", `APT::Architectures=${architecture}`]),
    ],
  };
}

const configArgs = (options?: Options): string[] => [...(options?.config?.args ?? [])];
const runOptions = (options?: Options): Pick<RunOptions, "signal" | "timeoutMs"> => ({
  ...(options?.signal === undefined ? {} : { signal: options.signal }),
  ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
});

/** `apt-get update` (with `options.config`: that configuration's lists only). */
export async function aptUpdate(options?: Options): Promise<void> {
  await runTool(aptGetTool, [...configArgs(options), "update", "-qq"], {
    ...runOptions(options),
    timeoutMs: options?.timeoutMs ?? 5 * 60 * 1000,
  });
}

const packageName = /^[a-z0-9][a-z0-9+.-]+$/;
function checkName(name: string): string {
  if (!packageName.test(name)) throw new RangeError(`invalid Debian package name "${name}"`);
  return name;
}

export interface AptPackageInfo {
  package: string;
  version: string;
  architecture: string;
  /** sha256 of the .deb as the archive lists it: a cache key known before downloading. */
  sha256: string;
  size: number;
  filename: string;
  depends: string[];
  fields: Record<string, string>;
}

/** The candidate version's record (`apt-cache show --no-all-versions`). */
export async function aptShow(name: string, options?: Options): Promise<AptPackageInfo> {
  const text = await runToolText(aptCacheTool, [...configArgs(options), "show", "--no-all-versions", checkName(name)], {
    ...runOptions(options),
    okExitCodes: [0, 100],
  });
  const fields = parseControlFields(text);
  if (fields.Package === undefined) throw notFound(`Debian package "${name}" is not known to apt (apt-get update?)`);
  return {
    package: fields.Package,
    version: fields.Version ?? "",
    architecture: fields.Architecture ?? "",
    sha256: fields.SHA256 ?? "",
    size: Number(fields.Size ?? "0"),
    filename: fields.Filename ?? "",
    depends: splitDepends(fields.Depends ?? ""),
    fields,
  };
}

/** "a (= 1), b | c, d:any" → ["a", "b", "d"]: the first alternative's bare name. */
export function splitDepends(value: string): string[] {
  return value
    .split(",")
    .map((item) => (item.split("|")[0] ?? "").trim().split(/[\s(:]/)[0] ?? "")
    .filter((name) => name !== "");
}

/**
 * The dependency of `name` whose name matches `pattern`, e.g. resolveDependency("linux-image-amd64",
 * /^linux-image-\d.*-amd64$/) → "linux-image-6.1.0-NN-amd64".
 */
export async function resolveDependency(name: string, pattern: RegExp, options?: Options): Promise<string> {
  const info = await aptShow(name, options);
  const match = info.depends.find((dep) => pattern.test(dep));
  if (match === undefined) throw notFound(`Debian package "${name}" has no dependency matching ${pattern}`);
  return match;
}

/**
 * Downloads the candidate .debs of `names` into `destDir` (`apt-get download`, no install, no root
 * needed) and returns their paths by package name.
 */
export async function aptDownload(names: string[], destDir: string, options?: Options): Promise<Map<string, string>> {
  const infos = await Promise.all(names.map((name) => aptShow(name, options)));
  await runTool(aptGetTool, [...configArgs(options), "download", "--quiet", ...names.map(checkName)], {
    ...runOptions(options),
    cwd: destDir,
  });
  const files = await readdir(destDir);
  const out = new Map<string, string>();
  for (const info of infos) {
    // apt names the file <package>_<version with ':' as %3a>_<arch>.deb
    const expected = `${info.package}_${info.version.replace(/:/g, "%3a")}_${info.architecture}.deb`;
    if (!files.includes(expected)) throw notFound(`apt-get download did not produce ${expected} in ${destDir}`);
    out.set(info.package, join(destDir, expected));
  }
  return out;
}
