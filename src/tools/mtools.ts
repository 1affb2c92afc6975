// mtools (Debian mtools): reads and writes FAT file systems inside image files without mounting, at a byte
// offset when the file system is a partition of a disk image (`-i disk.raw@@OFFSET`). mtools takes the
// timestamps of what it creates from SOURCE_DATE_EPOCH, so a FAT filled with it is reproducible.

import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const mcopyTool: Tool = { command: "mcopy", debianPackage: "mtools" };
export const mmdTool: Tool = { command: "mmd", debianPackage: "mtools" };
export const mformatTool: Tool = { command: "mformat", debianPackage: "mtools" };
export const mdirTool: Tool = { command: "mdir", debianPackage: "mtools" };
export const mattribTool: Tool = { command: "mattrib", debianPackage: "mtools" };
export const mtypeTool: Tool = { command: "mtype", debianPackage: "mtools" };

export interface MtoolsOptions extends Pick<RunOptions, "signal" | "timeoutMs"> {
  /** Byte offset of the file system in the image (a partition of a disk image); default 0. */
  offset?: number;
  /** Timestamp (seconds) of everything created; default SOURCE_DATE_EPOCH, else 1980-01-01 (FAT's epoch). */
  mtime?: number;
}

/** The FAT epoch: FAT cannot store earlier dates. */
export const fatEpoch = 315532800;

/** The `-i` drive argument: the image, with `@@offset` for a file system inside a disk image. */
export function mtoolsImage(image: string, offset = 0): string {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
  return offset === 0 ? image : `${image}@@${offset}`;
}

/** The ::/path form mtools uses for a path inside the file system. */
export function mtoolsPath(path: string): string {
  const clean = path.replace(/^\/+/, "");
  if (clean.split("/").some((part) => part === ".." || part === "."))
    throw new RangeError(`FAT path "${path}" must not contain . or ..`);
  return `::/${clean}`;
}

function env(options: MtoolsOptions): Record<string, string> {
  const fromEnv = Number(process.env.SOURCE_DATE_EPOCH);
  const mtime = options.mtime ?? (Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : fatEpoch);
  // MTOOLS_SKIP_CHECK: image files have no real disk geometry to agree with.
  return { SOURCE_DATE_EPOCH: String(Math.max(mtime, fatEpoch)), MTOOLS_SKIP_CHECK: "1" };
}

function run(tool: Tool, image: string, args: string[], options: MtoolsOptions) {
  return runTool(tool, ["-i", mtoolsImage(image, options.offset), ...args], { ...options, env: env(options) });
}

/** Creates directories (parents first; each must not exist yet). */
export async function mmd(image: string, dirs: readonly string[], options: MtoolsOptions = {}): Promise<void> {
  if (dirs.length > 0) await run(mmdTool, image, dirs.map(mtoolsPath), options);
}

/** Copies a local file to `dest` in the file system (replacing it). */
export async function mcopy(image: string, source: string, dest: string, options: MtoolsOptions = {}): Promise<void> {
  // -o: overwrite without asking; -Q: stop at the first error.
  await run(mcopyTool, image, ["-o", "-Q", source, mtoolsPath(dest)], options);
}

/** Sets attributes, e.g. "+r" (read-only) on `path`. */
export async function mattrib(image: string, attribute: string, path: string, options: MtoolsOptions = {}) {
  await run(mattribTool, image, [attribute, mtoolsPath(path)], options);
}

/** Formats (FAT) the file system at the offset; `sectors` of 512 bytes. */
export async function mformat(
  image: string,
  options: MtoolsOptions & { sectors: number; label?: string; fat32?: boolean },
): Promise<void> {
  const args = ["-T", String(options.sectors), "-h", "64", "-s", "32"];
  if (options.fat32 ?? true) args.push("-F");
  if (options.label !== undefined) args.push("-v", options.label);
  // -N: a fixed serial number, for reproducible output.
  args.push("-N", "12345678", "::");
  await run(mformatTool, image, args, options);
}

/** `mdir -/ -b`: every path in the file system, recursively, one a line. */
export async function mdirRecursive(image: string, options: MtoolsOptions = {}): Promise<string[]> {
  const { stdout } = await run(mdirTool, image, ["-/", "-b", "::/"], options);
  return stdout
    .toString("utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** A file's content (small files: configs). */
export async function mtype(image: string, path: string, options: MtoolsOptions = {}): Promise<string> {
  return await runToolText(mtypeTool, ["-i", mtoolsImage(image, options.offset), mtoolsPath(path)], {
    ...options,
    env: env(options),
  });
}
