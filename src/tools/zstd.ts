// zstd (Debian zstd; 1.5.4 here). Node 24's zlib has zstd too (see compression.ts); the CLI is for
// multithreaded compression of large assets, as upstream's `zstd -T0 -18`.

import { createReadStream, createWriteStream } from "node:fs";
import type { Duplex } from "node:stream";
import { type RunOptions, runTool, type Tool, toolTransform } from "./run.ts";

export const zstdTool: Tool = { command: "zstd", debianPackage: "zstd" };

export interface ZstdOptions {
  /** 1–22 (default 3); above 19 needs --ultra, which is added. */
  level?: number;
  /** Threads; 0 means one per core (default 0). */
  threads?: number;
}

type StreamOptions = Pick<RunOptions, "signal" | "timeoutMs">;

export function zstdCompressArgs(options: ZstdOptions = {}): string[] {
  const level = options.level ?? 3;
  if (!Number.isInteger(level) || level < 1 || level > 22) throw new RangeError(`zstd level ${level} is not 1–22`);
  const args = ["--compress", "--stdout", "--quiet", `-${level}`, `-T${options.threads ?? 0}`];
  if (level > 19) args.unshift("--ultra");
  return args;
}

/** A transform that zstd-compresses what is written to it. */
export function zstdCompress(options: ZstdOptions & StreamOptions = {}): Duplex {
  return toolTransform(zstdTool, zstdCompressArgs(options), options);
}

/** A transform that decompresses zstd data (concatenated frames too). */
export function zstdDecompress(options: StreamOptions = {}): Duplex {
  return toolTransform(zstdTool, ["--decompress", "--stdout", "--quiet"], options);
}

/** Compresses `input` into `output` (`output` replaced). */
export async function zstdCompressFile(
  input: string,
  output: string,
  options: ZstdOptions & StreamOptions = {},
): Promise<void> {
  await runTool(zstdTool, zstdCompressArgs(options), {
    ...options,
    stdin: createReadStream(input),
    stdout: createWriteStream(output),
  });
}
