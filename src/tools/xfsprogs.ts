// mkfs.xfs / xfs_repair (Debian xfsprogs 6.1). BOOT is an XFS file system made in an image file and filled
// from a protofile (`-p <protofile>`, the 6.1 syntax: a bare path; newer releases also take `file=…`), so
// no mount, loop device or root privilege is needed.
// xfsprogs 6.1 stamps the superblock and every inode with the clock (later releases read SOURCE_DATE_EPOCH);
// given a timestamp, mkfs.xfs runs under libfaketime (Debian's faketime package) with the clock stopped
// there, so the same tree gives the same bytes.

import { existsSync, readdirSync } from "node:fs";
import { truncate, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const mkfsXfsTool: Tool = { command: "mkfs.xfs", debianPackage: "xfsprogs" };
export const xfsRepairTool: Tool = { command: "xfs_repair", debianPackage: "xfsprogs" };
export const xfsIoTool: Tool = { command: "xfs_io", debianPackage: "xfsprogs" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

export interface MkfsXfsOptions extends Options {
  sizeBytes: number;
  label: string;
  /** File system UUID (upstream: the GUID derived from the label, for reproducible images). */
  uuid?: string;
  /** Protofile describing the content. */
  protofile?: string;
  /** `-c options=<file>`: an mkfs config (e.g. /usr/share/xfsprogs/mkfs/lts_6.1.conf). */
  configFile?: string;
  /** The time (seconds since the epoch) every timestamp in the file system gets. */
  mtime?: number;
  /** `-s size=`: the logical sector size of the disk it is made for (mkfs.xfs probes it otherwise; a file says 512). */
  sectorSize?: number;
}

/** libfaketime, when installed (Debian's `libfaketime`, a dependency of `faketime`). */
export function libfaketimePath(): string | undefined {
  const lib = "/usr/lib";
  if (!existsSync(lib)) return undefined;
  for (const dir of readdirSync(lib)) {
    const candidate = join(lib, dir, "faketime", "libfaketime.so.1");
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The environment that stops the clock at `mtime` for mkfs.xfs, or undefined without libfaketime. */
export function frozenClockEnv(mtime: number): Record<string, string> | undefined {
  if (!Number.isSafeInteger(mtime) || mtime < 0) throw new RangeError(`invalid timestamp ${mtime}`);
  const library = libfaketimePath();
  if (library === undefined) return undefined;
  const stamp = new Date(mtime * 1000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "");
  // An absolute FAKETIME stops the clock there; TZ=UTC so it reads as UTC; monotonic time stays real.
  return { LD_PRELOAD: library, FAKETIME: stamp, TZ: "UTC", FAKETIME_DONT_FAKE_MONOTONIC: "1" };
}

export function mkfsXfsArgs(image: string, options: MkfsXfsOptions): string[] {
  if (!/^[^\s]{1,12}$/.test(options.label)) throw new RangeError(`XFS label "${options.label}" is not 1–12 characters`);
  // ftype=1: overlayfs needs it (upstream passes it for every XFS it makes).
  const args = ["-n", "ftype=1"];
  if (options.configFile !== undefined) args.push("-c", `options=${options.configFile}`);
  args.push("-f", "-L", options.label);
  if (options.sectorSize !== undefined) args.push("-s", `size=${options.sectorSize}`);
  if (options.uuid !== undefined) args.push("-m", `uuid=${options.uuid.toLowerCase()}`);
  if (options.protofile !== undefined) args.push("-p", options.protofile);
  args.push(image);
  return args;
}

/** Creates `image` (replacing it) as a sparse file of the size and makes the file system in it. */
export async function mkfsXfs(image: string, options: MkfsXfsOptions): Promise<void> {
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0 || options.sizeBytes % 4096 !== 0)
    throw new RangeError(`XFS image size ${options.sizeBytes} is not a positive multiple of 4096`);
  await writeFile(image, "");
  await truncate(image, options.sizeBytes);
  const env = options.mtime === undefined ? undefined : frozenClockEnv(options.mtime);
  await runTool(mkfsXfsTool, mkfsXfsArgs(image, options), { ...options, ...(env !== undefined ? { env } : {}) });
}

/** `xfs_repair -n` (no modify) on an image file; rejects when it finds problems. */
export async function xfsRepairCheck(image: string, options: Options = {}): Promise<string> {
  return (await runTool(xfsRepairTool, ["-n", "-f", image], options)).stderr;
}

/** mkfs config files installed here, by LTS kernel version ("6.1" → path), oldest first. */
export function installedXfsConfigs(dir = "/usr/share/xfsprogs/mkfs"): { kernel: string; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => /^lts_(\d+)\.(\d+)\.conf$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ kernel: `${m[1]}.${m[2]}`, path: join(dir, m[0]), order: Number(m[1]) * 1000 + Number(m[2]) }))
    .sort((a, b) => a.order - b.order)
    .map(({ kernel, path }) => ({ kernel, path }));
}

/**
 * The config to use for `wanted` (upstream's per-version lts_X.Y.conf): itself when installed, else the
 * newest installed LTS config that is not newer — an older LTS config only turns features off, so the
 * file system still mounts on the kernel the wanted config targets. Undefined when there is none.
 */
export function resolveXfsConfig(wanted: string): string | undefined {
  if (existsSync(wanted)) return wanted;
  const m = /^lts_(\d+)\.(\d+)\.conf$/.exec(basename(wanted));
  if (m === null) return undefined;
  const limit = Number(m[1]) * 1000 + Number(m[2]);
  const candidates = installedXfsConfigs(dirname(wanted)).filter((c) => {
    const [major, minor] = c.kernel.split(".").map(Number) as [number, number];
    return major * 1000 + minor <= limit;
  });
  return candidates.at(-1)?.path;
}

/** mkfs.xfs's version line, e.g. "mkfs.xfs version 6.1.0". */
export async function mkfsXfsVersion(options: Options = {}): Promise<string> {
  return (await runToolText(mkfsXfsTool, ["-V"], options)).trim();
}

/** A range of a file that holds data (everything outside every range reads as zeros). */
export interface DataSegment {
  offset: number;
  length: number;
}

/**
 * Where `path` (of `size` bytes) holds data, as the file system says: `xfs_io -r -c "seek -a -r 0"` walks the
 * file with lseek(SEEK_DATA / SEEK_HOLE) and prints each start ("DATA 0", "HOLE 4096", …, the last one "EOF"
 * or the file's end). Works on any file system (ext4, XFS, tmpfs); one without holes reports the whole file
 * as data. Reading a hole still costs the kernel a zeroed page per 4 KiB (about 1 s of system time per GiB on
 * first read), so a sparse 1–8 GiB disk image is read only where this lists data.
 */
export async function fileDataSegments(path: string, size: number, options: Options = {}): Promise<DataSegment[]> {
  const text = await runToolText(xfsIoTool, ["-r", "-c", "seek -a -r 0", path], options);
  const marks: { data: boolean; offset: number }[] = [];
  for (const line of text.split("\n").slice(1)) {
    const m = /^(DATA|HOLE)\s+(\d+|EOF)\s*$/.exec(line);
    if (m === null) continue;
    marks.push({ data: m[1] === "DATA", offset: m[2] === "EOF" ? size : Math.min(size, Number(m[2])) });
  }
  if (marks.length === 0) throw new Error(`xfs_io seek printed nothing usable for ${path}: ${text.slice(0, 200)}`);
  const segments: DataSegment[] = [];
  for (const [i, mark] of marks.entries()) {
    if (!mark.data) continue;
    const end = marks[i + 1]?.offset ?? size;
    if (end > mark.offset) segments.push({ offset: mark.offset, length: end - mark.offset });
  }
  return segments;
}
