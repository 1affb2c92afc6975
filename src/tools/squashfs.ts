// mksquashfs / unsquashfs (Debian squashfs-tools; 4.5.1 on Debian 12).
//
// Upstream Talos packs each extension rootfs with
//   mksquashfs <rootfs> <n>.sqsh -all-root -noappend -no-progress -comp zstd -Xcompression-level 18
// and with `-comp xz -Xdict-size 100%` (no level: the xz compressor takes none) before Talos 1.8
// (internal/pkg/extensions/compress.go). Timestamps: squashfs-tools
// refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time, so when we pin a time we pass the flags and
// drop the variable from the child's environment.
//
// From Talos 1.13 upstream adds `-xattrs-exclude '.*'` and one pseudo definition
//   -p "<path inside the rootfs> x security.selinux=<label>"
// per file the extension's tar labelled (internal/pkg/extensions/compress.go xattrPseudoFlags). Both need
// squashfs-tools 4.6 (Debian 12 has 4.5.1): `command` names such an mksquashfs (see squashfs-tools.ts).

import { rm, writeFile } from "node:fs/promises";
import { AppError } from "../errors.ts";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const mksquashfsTool: Tool = { command: "mksquashfs", debianPackage: "squashfs-tools" };
export const unsquashfsTool: Tool = { command: "unsquashfs", debianPackage: "squashfs-tools" };

export type SquashfsCompression = "zstd" | "xz" | "gzip";

export interface MksquashfsOptions {
  compression: SquashfsCompression;
  /** -Xcompression-level (zstd 1–22, gzip 1–9); not accepted for xz. Upstream uses 18 for zstd. */
  level?: number;
  /** xz only: -Xdict-size, a percentage of the block size ("100%") or a byte count; upstream gives "100%". */
  xzDictSize?: string;
  /** Data block size in bytes (power of two, 4 KiB–1 MiB); default the tool's 128 KiB. */
  blockSize?: number;
  /**
   * One timestamp (seconds) for the filesystem and every file, for reproducible images. Default: the
   * SOURCE_DATE_EPOCH environment variable (which squashfs-tools then applies itself) or the files' times.
   */
  mtime?: number;
  /** Own every file by root (default true, as upstream). */
  allRoot?: boolean;
  /** Threads (default: all processors). */
  processors?: number;
  /**
   * SELinux labels by path inside `sourceDir` ("/" for the root, else relative: "usr/bin/x"): every xattr
   * on disk is excluded and these become pseudo xattrs. Needs mksquashfs ≥ 4.6. Undefined: no xattr flags.
   */
  selinuxLabels?: ReadonlyMap<string, string>;
  /** The mksquashfs to run (a path); default the one on PATH. */
  command?: string;
  /** Pseudo definitions longer than this (bytes) go in a pseudo file instead of arguments; default 128 KiB. */
  pseudoArgBytes?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A path as a pseudo definition names it: spaces, quotes and backslashes escaped with a backslash. */
function pseudoPath(path: string): string {
  return path.replace(/[\\\s"]/g, (c) => `\\${c}`);
}

/** The argument list for mksquashfs, exported so tests and docs can show it. */
export function mksquashfsArgs(sourceDir: string, outFile: string, options: MksquashfsOptions): string[] {
  const args = [sourceDir, outFile, "-noappend", "-no-progress", "-quiet", "-comp", options.compression];
  if (options.allRoot ?? true) args.push("-all-root");
  if (options.level !== undefined) {
    if (options.compression === "xz")
      throw new AppError("BadRequest", "mksquashfs: the xz compressor takes no compression level");
    args.push("-Xcompression-level", String(options.level));
  }
  if (options.xzDictSize !== undefined) {
    if (options.compression !== "xz")
      throw new AppError("BadRequest", `mksquashfs: -Xdict-size is an xz option, not ${options.compression}`);
    if (!/^(100|[1-9]\d?)%$|^\d+[KM]?$/.test(options.xzDictSize))
      throw new AppError("BadRequest", `mksquashfs: invalid xz dictionary size "${options.xzDictSize}"`);
    args.push("-Xdict-size", options.xzDictSize);
  }
  if (options.blockSize !== undefined) {
    const size = options.blockSize;
    if (!Number.isInteger(Math.log2(size)) || size < 4096 || size > 1024 * 1024)
      throw new AppError("BadRequest", `mksquashfs: block size ${size} is not a power of two in 4 KiB–1 MiB`);
    args.push("-b", String(size));
  }
  if (options.mtime !== undefined) {
    if (!Number.isSafeInteger(options.mtime) || options.mtime < 0 || options.mtime > 0xffffffff)
      throw new AppError("BadRequest", `mksquashfs: invalid timestamp ${options.mtime}`);
    args.push("-mkfs-time", String(options.mtime), "-all-time", String(options.mtime));
  }
  if (options.processors !== undefined) args.push("-processors", String(options.processors));
  if (options.selinuxLabels !== undefined) {
    args.push("-xattrs-exclude", ".*");
    // Sorted, so the command line is the same whatever order the labels were found in (the image is anyway).
    for (const path of [...options.selinuxLabels.keys()].sort()) {
      const label = options.selinuxLabels.get(path) as string;
      if (path === "" || path.startsWith("../") || (path.startsWith("/") && path !== "/"))
        throw new AppError("BadRequest", `mksquashfs: "${path}" is not a path inside the source`);
      if (label === "" || /[\0\n]/.test(label))
        throw new AppError("BadRequest", `mksquashfs: invalid SELinux label for "${path}"`);
      args.push("-p", `${pseudoPath(path)} x security.selinux=${label}`);
    }
  }
  return args;
}

/** Packs `sourceDir` (its contents become the root) into a new squashfs image `outFile`. */
export async function mksquashfs(sourceDir: string, outFile: string, options: MksquashfsOptions): Promise<void> {
  const run: RunOptions = { signal: options.signal, timeoutMs: options.timeoutMs };
  if (options.mtime !== undefined) run.env = { SOURCE_DATE_EPOCH: undefined };
  const tool = options.command === undefined ? mksquashfsTool : { ...mksquashfsTool, command: options.command };
  const args = mksquashfsArgs(sourceDir, outFile, options);
  // Upstream passes every definition on the command line, which an image with many labelled files can push
  // past the kernel's argument limit (E2BIG); past `pseudoArgBytes` they go in a pseudo file (-pf), the same
  // definitions in the same syntax, one a line.
  const definitions = args.flatMap((arg, i) => (args[i - 1] === "-p" ? [arg] : []));
  const bytes = definitions.reduce((sum, d) => sum + Buffer.byteLength(d) + 4, 0);
  if (bytes <= (options.pseudoArgBytes ?? 128 * 1024)) {
    await runTool(tool, args, run);
    return;
  }
  const pseudoFile = `${outFile}.pseudo`;
  await writeFile(pseudoFile, definitions.map((d) => `${d}\n`).join(""), { flag: "wx" });
  try {
    const withFile = args.filter((arg, i) => arg !== "-p" && args[i - 1] !== "-p");
    await runTool(tool, [...withFile, "-pf", pseudoFile], run);
  } finally {
    await rm(pseudoFile, { force: true });
  }
}

/** squashfs-tools' version as [major, minor, patch], from `mksquashfs -version`. */
export async function mksquashfsVersion(
  command = mksquashfsTool.command,
  options?: Pick<RunOptions, "signal">,
): Promise<[number, number, number]> {
  const text = await runToolText({ ...mksquashfsTool, command }, ["-version"], { ...options, timeoutMs: 30_000 });
  const match = /^mksquashfs version (\d+)\.(\d+)(?:\.(\d+))?/m.exec(text);
  if (match === null) throw new AppError("Internal", `${command} -version printed no version`);
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

/** Whether squashfs-tools of this version knows `-xattrs-exclude` and `x` pseudo definitions (4.6). */
export function supportsPseudoXattrs(version: readonly [number, number, number]): boolean {
  return version[0] > 4 || (version[0] === 4 && version[1] >= 6);
}

export interface SquashfsListing {
  /** Absolute path inside the image ("/" for the root). */
  path: string;
  /** The `ls -l` style mode string, e.g. "-rw-r--r--" or "lrwxrwxrwx". */
  mode: string;
  owner: string;
  size: number;
  /** Symlink target. */
  target?: string;
}

// unsquashfs -lls line: "-rw-r--r-- root/root                 3 1970-01-01 00:00 /a/b/f"
// (device nodes show "major,minor" instead of a size).
const listingLine = /^(\S{10}) (\S+)\s+(\d+|\d+,\s*\d+) \d{4}-\d\d-\d\d \d\d:\d\d (.*)$/;

/** Lists every entry of a squashfs image (unsquashfs -lls). */
export async function listSquashfs(
  image: string,
  options?: Pick<RunOptions, "signal" | "timeoutMs">,
): Promise<SquashfsListing[]> {
  const text = await runToolText(unsquashfsTool, ["-d", "", "-lls", image], {
    ...options,
    maxStdoutBytes: 256 * 1024 * 1024,
  });
  const out: SquashfsListing[] = [];
  for (const line of text.split("\n")) {
    const match = listingLine.exec(line);
    if (match === null) continue;
    const [, mode, owner, size, rest] = match as unknown as [string, string, string, string, string];
    const arrow = mode.startsWith("l") ? rest.indexOf(" -> ") : -1;
    const path = arrow === -1 ? rest : rest.slice(0, arrow);
    const entry: SquashfsListing = { path: path === "" ? "/" : path, mode, owner, size: Number.parseInt(size, 10) };
    if (arrow !== -1) entry.target = rest.slice(arrow + 4);
    out.push(entry);
  }
  return out;
}

export interface UnsquashfsOptions {
  /** Only these paths inside the image (e.g. "/usr/lib/modules"); default everything. */
  paths?: string[];
  /** Skip extended attributes (default true: extracting as non-root or onto tmpfs may refuse them). */
  noXattrs?: boolean;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Extracts the image into `destDir` (created; existing files overwritten). */
export async function unsquashfs(image: string, destDir: string, options: UnsquashfsOptions = {}): Promise<void> {
  const args = ["-d", destDir, "-f", "-n"];
  if (options.noXattrs ?? true) args.push("-no-xattrs");
  args.push(image, ...(options.paths ?? []));
  await runTool(unsquashfsTool, args, { signal: options.signal, timeoutMs: options.timeoutMs });
}
