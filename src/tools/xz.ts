// xz (Debian xz-utils). Spawning the CLI beats every JS/Rust binding tried here (measured on this project's 2-core machine).

import { createReadStream, createWriteStream } from "node:fs";
import type { Duplex } from "node:stream";
import { type RunOptions, runTool, type Tool, toolTransform } from "./run.ts";

export const xzTool: Tool = { command: "xz", debianPackage: "xz-utils" };

export interface XzOptions {
  /** Preset 0–9 (default 6, xz's own). Upstream compresses disk images with -0. */
  level?: number;
  /** Threads; 0 means one per core (default 0, as upstream's -T0). */
  threads?: number;
  /**
   * Integrity check. The kernel's XZ decoder only knows crc32 (and none), so an xz initramfs must use
   * crc32; xz's default is crc64.
   */
  check?: "crc32" | "crc64" | "sha256" | "none";
}

type StreamOptions = Pick<RunOptions, "signal" | "timeoutMs">;

export function xzCompressArgs(options: XzOptions = {}): string[] {
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`xz level ${level} is not 0–9`);
  const args = ["--compress", "--stdout", "--quiet", `-${level}`, `--threads=${options.threads ?? 0}`];
  if (options.check !== undefined) args.push(`--check=${options.check}`);
  return args;
}

/** A transform that xz-compresses what is written to it. */
export function xzCompress(options: XzOptions & StreamOptions = {}): Duplex {
  return toolTransform(xzTool, xzCompressArgs(options), options);
}

/** A transform that decompresses xz data (concatenated streams too). */
export function xzDecompress(options: StreamOptions = {}): Duplex {
  return toolTransform(xzTool, ["--decompress", "--stdout", "--quiet", `--threads=0`], options);
}

/** Compresses `input` into `output` (`output` replaced). */
export async function xzCompressFile(
  input: string,
  output: string,
  options: XzOptions & StreamOptions = {},
): Promise<void> {
  await runTool(xzTool, xzCompressArgs(options), {
    ...options,
    stdin: createReadStream(input),
    stdout: createWriteStream(output),
  });
}
