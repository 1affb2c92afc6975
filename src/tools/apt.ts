// apt-get / apt-cache (Debian apt): resolve and download packages without installing them. The test bed
// builds from Debian's kernel: `linux-image-amd64` is a meta package whose dependency names the current
// `linux-image-6.1.0-NN-amd64`, and old ones leave the mirror, so the name is resolved at build time.

import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { notFound } from "../errors.ts";
import { parseControlFields } from "./dpkg.ts";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const aptGetTool: Tool = { command: "apt-get", debianPackage: "apt" };
export const aptCacheTool: Tool = { command: "apt-cache", debianPackage: "apt" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

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
  const text = await runToolText(aptCacheTool, ["show", "--no-all-versions", checkName(name)], {
    ...options,
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
  await runTool(aptGetTool, ["download", "--quiet", ...names.map(checkName)], { ...options, cwd: destDir });
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
