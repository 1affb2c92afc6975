// A system-extension source folder, read into what each platform's image holds (docs/extensions.md):
//   DIR/manifest.yaml            or DIR/manifest.yaml.tmpl, with `{{ .VERSION }}` (and any --var KEY=VALUE)
//                                substituted, as upstream's extension build renders its templates;
//   DIR/rootfs/                  files every platform gets;
//   DIR/rootfs-<arch>/           files only linux/<arch> gets (amd64, arm64);
//   --tree [<arch>=]PATH         prebuilt trees laid out like a rootfs (kernel modules, a userspace install),
//                                for every platform or one.
// A file given by two sources is an error (never a silent override); directories merge. Anything else in
// DIR (README.md, build notes) is not part of the image. Nothing is copied: each image entry remembers the
// host file it comes from, so errors name that file and layers stream from it.

import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { badRequest } from "../errors.ts";
import type { ExtensionEntry, ExtensionProblem } from "../talos/extension.ts";

export type ExtensionArch = "amd64" | "arm64";
export const extensionArches: readonly ExtensionArch[] = ["amd64", "arm64"];

/** One entry of an image's rootfs and where it comes from. */
export interface SourceEntry extends ExtensionEntry {
  /** The host file or directory. */
  hostPath: string;
  /** How errors name it: relative to the source folder when inside it. */
  origin: string;
  size: number;
  /** A symlink's target. */
  target?: string;
}

export interface PlatformSource {
  arch: ExtensionArch;
  /** The rendered manifest.yaml. */
  manifest: string;
  /** Entries by absolute rootfs path ("/usr/local/x"), sorted. */
  entries: SourceEntry[];
}

export interface ExtensionSource {
  dir: string;
  /** "manifest.yaml" or "manifest.yaml.tmpl". */
  manifestFile: string;
  platforms: PlatformSource[];
  /** Problems in the folder itself (layout, template), each naming its file. */
  problems: ExtensionProblem[];
}

export interface ReadSourceOptions {
  arches: readonly ExtensionArch[];
  /** Template values; VERSION is the extension version. */
  vars: Readonly<Record<string, string>>;
  /** Extra trees: for every platform (arch undefined) or one. */
  trees?: readonly { arch?: ExtensionArch; dir: string }[];
  /** Most entries in one platform's rootfs (default 1,000,000). */
  maxEntries?: number;
}

const maxTemplateBytes = 64 * 1024;

/** Parses `linux/amd64,linux/arm64` (or `amd64`) into arches, in the given order, without duplicates. */
export function parseExtensionPlatforms(text: string): ExtensionArch[] {
  const arches: ExtensionArch[] = [];
  for (const item of text.split(",").map((s) => s.trim())) {
    const arch = item.replace(/^linux\//, "");
    if (!extensionArches.includes(arch as ExtensionArch))
      throw badRequest(`--platform "${item}": Talos extensions are built for linux/amd64 and linux/arm64`);
    if (arches.includes(arch as ExtensionArch)) throw badRequest(`--platform lists linux/${arch} twice`);
    arches.push(arch as ExtensionArch);
  }
  return arches;
}

/** Renders `{{ .KEY }}` placeholders; an unknown key is a problem naming the file. */
export function renderManifestTemplate(
  text: string,
  vars: Readonly<Record<string, string>>,
  file: string,
): { text: string; problems: ExtensionProblem[] } {
  const problems: ExtensionProblem[] = [];
  const rendered = text.replace(/\{\{-?\s*([^}]*?)\s*-?\}\}/g, (whole, expression: string) => {
    const key = /^\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(expression)?.[1];
    if (key === undefined) {
      problems.push({ path: file, rule: "template", message: `"${whole}" is not a {{ .KEY }} placeholder` });
      return whole;
    }
    const value = vars[key];
    if (value === undefined) {
      problems.push({
        path: file,
        rule: "template",
        message: `no value for {{ .${key} }} (give --var ${key}=VALUE)`,
      });
      return whole;
    }
    return value;
  });
  return { text: rendered, problems };
}

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

/** Walks a rootfs-like tree into `into` (keyed by absolute rootfs path); a file given twice is a problem. */
async function addTree(
  root: string,
  sourceDir: string,
  into: Map<string, SourceEntry>,
  problems: ExtensionProblem[],
  maxEntries: number,
): Promise<void> {
  const info = await lstat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    problems.push({ path: root, rule: "layout", message: "not a directory" });
    return;
  }
  const originOf = (hostPath: string) => {
    const rel = relative(sourceDir, hostPath);
    return rel.startsWith("..") || rel === "" ? hostPath : rel;
  };
  const walk = async (hostDir: string, path: string): Promise<void> => {
    for (const name of (await readdir(hostDir)).sort()) {
      const hostPath = join(hostDir, name);
      const entryPath = `${path}/${name}`;
      const stat = await lstat(hostPath);
      const kind = stat.isDirectory()
        ? "directory"
        : stat.isFile()
          ? "file"
          : stat.isSymbolicLink()
            ? "symlink"
            : "special";
      const existing = into.get(entryPath);
      if (existing !== undefined) {
        if (existing.kind === "directory" && kind === "directory") {
          await walk(hostPath, entryPath);
          continue;
        }
        problems.push({
          path: originOf(hostPath),
          rule: "layout",
          message: `${entryPath} is also given by ${existing.origin} (one source per file)`,
        });
        continue;
      }
      if (into.size >= maxEntries) throw badRequest(`${sourceDir}: more than ${maxEntries} files in one rootfs`);
      const entry: SourceEntry = {
        path: entryPath,
        kind,
        mode: stat.mode & 0o7777,
        hostPath,
        origin: originOf(hostPath),
        size: kind === "file" ? stat.size : 0,
      };
      if (kind === "symlink") entry.target = await readlink(hostPath);
      into.set(entryPath, entry);
      if (kind === "directory") await walk(hostPath, entryPath);
    }
  };
  await walk(root, "");
}

/** Reads a source folder into one PlatformSource per arch, collecting every problem of the folder. */
export async function readExtensionSource(dir: string, options: ReadSourceOptions): Promise<ExtensionSource> {
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw badRequest(`${dir}: not a directory`);
  const problems: ExtensionProblem[] = [];
  const plain = await exists(join(dir, "manifest.yaml"));
  const template = await exists(join(dir, "manifest.yaml.tmpl"));
  const manifestFile = template ? "manifest.yaml.tmpl" : "manifest.yaml";
  let manifest = "";
  if (plain && template)
    problems.push({
      path: "manifest.yaml",
      rule: "layout",
      message: "give manifest.yaml or manifest.yaml.tmpl, not both",
    });
  else if (!plain && !template)
    problems.push({
      path: "manifest.yaml",
      rule: "layout",
      message: "manifest.yaml (or manifest.yaml.tmpl) is missing",
    });
  else {
    const path = join(dir, manifestFile);
    const stat = await lstat(path);
    if (!stat.isFile() || stat.size > maxTemplateBytes)
      problems.push({ path: manifestFile, rule: "manifest", message: "not a small regular file" });
    else {
      const text = await readFile(path, "utf8");
      if (template) {
        const rendered = renderManifestTemplate(text, options.vars, manifestFile);
        manifest = rendered.text;
        problems.push(...rendered.problems);
      } else manifest = text;
    }
  }

  const common = join(dir, "rootfs");
  const hasCommon = await exists(common);
  const maxEntries = options.maxEntries ?? 1_000_000;
  const platforms: PlatformSource[] = [];
  for (const arch of options.arches) {
    const entries = new Map<string, SourceEntry>();
    const own = join(dir, `rootfs-${arch}`);
    const hasOwn = await exists(own);
    const trees = (options.trees ?? []).filter((t) => t.arch === undefined || t.arch === arch);
    if (!hasCommon && !hasOwn && trees.length === 0)
      problems.push({
        path: `rootfs-${arch}/`,
        rule: "layout",
        message: `linux/${arch}: no rootfs/, rootfs-${arch}/ or --tree for it`,
      });
    if (hasCommon) await addTree(common, dir, entries, problems, maxEntries);
    if (hasOwn) await addTree(own, dir, entries, problems, maxEntries);
    for (const tree of trees) await addTree(tree.dir, dir, entries, problems, maxEntries);
    platforms.push({ arch, manifest, entries: [...entries.values()] });
  }
  return { dir, manifestFile, platforms, problems };
}
