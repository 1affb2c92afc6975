// GNU tar (Debian tar), for the `.tar.gz` disk images: upstream archives `disk.raw` with --sparse so the
// holes of a mostly empty disk cost nothing, which GNU tar's sparse format does and tar-stream does not.

import type { Writable } from "node:stream";
import { type RunOptions, runTool, type Tool } from "./run.ts";

export const tarTool: Tool = { command: "tar", debianPackage: "tar" };

export interface TarSparseOptions extends Pick<RunOptions, "signal" | "timeoutMs"> {
  /** The name the file gets in the archive (e.g. "disk.raw"). */
  memberName: string;
  /** Modification time recorded (seconds). */
  mtime: number;
}

export function tarSparseArgs(dir: string, file: string, options: TarSparseOptions): string[] {
  if (!/^[\w.-]+$/.test(options.memberName)) throw new RangeError(`invalid member name "${options.memberName}"`);
  return [
    "--create",
    "--file=-",
    `--directory=${dir}`,
    "--sparse",
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    `--mtime=@${Math.trunc(options.mtime)}`,
    "--format=gnu",
    // Renames the one member; the regex is anchored to the whole name.
    `--transform=s,^.*$,${options.memberName},`,
    file,
  ];
}

/** Streams a tar of `dir/file` (one member, renamed) to `out`. */
export async function tarSparseFile(dir: string, file: string, out: Writable, options: TarSparseOptions) {
  await runTool(tarTool, tarSparseArgs(dir, file, options), { ...options, stdout: out });
}

/**
 * A tar of everything under `dir` (names sorted, owner 0, modes and dates kept) written to `file`: a directory
 * kept as one file (the intermediate cache's GRUB ISO parts).
 */
export async function tarDirectory(dir: string, file: string, options: Pick<RunOptions, "signal"> = {}) {
  await runTool(
    tarTool,
    [
      "--create",
      `--file=${file}`,
      `--directory=${dir}`,
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--format=gnu",
      ".",
    ],
    options,
  );
}

/** Unpacks a tar made by tarDirectory into `dir` (which exists), keeping modes and dates. */
export async function untarDirectory(file: string, dir: string, options: Pick<RunOptions, "signal"> = {}) {
  await runTool(tarTool, ["--extract", `--file=${file}`, `--directory=${dir}`, "--preserve-permissions"], options);
}
