// A disk image compressed block by block: the image is cut into fixed blocks of `frameBlockBytes` from its
// first byte, each block compressed on its own into one complete zstd frame (`zstd -T0 -18`) or one complete
// xz stream (`xz -0 -T0`), and the frames are written one after the other. Both formats allow this and every
// decoder reads it as the whole image: a zstd file is a sequence of frames, decoded in order (RFC 8878 §3.1,
// "Frames"), and an .xz file a sequence of streams (the .xz file format 1.1.0, §2: "one or more Streams", decoded one
// after the other by xz-utils); Talos (pkg/imager, `zstd -d`, `xz -d`)
// and the Image Factory's consumers decompress the whole file.
//
// Why (issue 18): most of a disk image is the same for every schematic of a profile — runs of zeros, the
// empty parts of the file systems, the boot loader, most of the EFI and BOOT partitions — and compressing the
// 1–8 GiB image at level 18 is most of a build's time. A block's frame depends only on its bytes and the
// compressor, so it is kept in the intermediate cache under the hash of exactly those (kind "disk-frame");
// the next image with the same block copies the frame instead of compressing it again. An all-zero block is
// keyed by its length alone (no hashing), and within one image each distinct block is compressed once, so a
// cold build compresses the zeros of a 2 GiB image once too.
//
// The split does not depend on the cache: with or without it, cold or warm, the same image gives the same
// blocks, the same frames and the same bytes.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { runTool, type Tool, toolVersionText } from "../../tools/run.ts";
import { xzCompressArgs, xzTool } from "../../tools/xz.ts";
import { zstdCompressArgs, zstdTool } from "../../tools/zstd.ts";
import { mapLimited } from "../../util/concurrency.ts";
import type { IntermediateCache } from "../intermediate-cache.ts";

export type FrameCompression = "zst" | "xz";

/**
 * The block size. zstd -18's window is 8 MiB and xz -0's dictionary 256 KiB, so a block sees as much of the
 * image behind it as one stream would: the frames together are as small as one stream (plus a few bytes each).
 */
export const frameBlockBytes = 8 * 1024 * 1024;
/** Bumped when the split or the frames change for the same image and compressor. */
const frameRecipe = 1;
/** Blocks compressed at once: each compressor runs with -T0, two keep both cores busy on small blocks. */
const concurrency = 2;

interface Codec {
  tool: Tool;
  args: string[];
}

function codecOf(compression: FrameCompression): Codec {
  return compression === "zst"
    ? { tool: zstdTool, args: zstdCompressArgs({ level: 18, threads: 0 }) }
    : { tool: xzTool, args: xzCompressArgs({ level: 0, threads: 0 }) };
}

/** The intermediate cache key of one block's frame: the compressor and the block's bytes (or zero length). */
export function frameKey(parts: {
  compression: FrameCompression;
  args: readonly string[];
  tool: string;
  length: number;
  /** The block's content hash; undefined for a block of zeros. */
  content: string | undefined;
}): string {
  const fields = {
    recipe: frameRecipe,
    compression: parts.compression,
    args: parts.args.join(" "),
    tool: parts.tool,
    length: parts.length,
    content: parts.content ?? "zeros",
  };
  return createHash("sha256").update(JSON.stringify(fields)).digest("hex");
}

export interface BlockCompressOptions {
  /** Where frames are kept between builds; without it every distinct block is compressed. */
  cache?: IntermediateCache;
  /** A directory for this call's frames (a temp dir under it, removed afterwards). */
  scratchDir: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface BlockCompressResult {
  blocks: number;
  zeroBlocks: number;
  /** Distinct blocks, and how many of them were compressed here (not found in the cache). */
  distinct: number;
  compressed: number;
}

/** Compresses `input` into `out` (replaced) as one frame (zstd) or stream (xz) per block. */
export async function compressByBlocks(
  input: string,
  out: string,
  compression: FrameCompression,
  options: BlockCompressOptions,
): Promise<BlockCompressResult> {
  const { signal } = options;
  const codec = codecOf(compression);
  const tool = await toolVersionText(codec.tool, signal);
  const keyOf = (length: number, content: string | undefined) =>
    frameKey({ compression, args: codec.args, tool, length, content });

  // 1. The blocks and their keys, in order; the first offset of each distinct one.
  const order: string[] = [];
  const distinct = new Map<string, { offset: number; length: number }>();
  let zeroBlocks = 0;
  const handle = await open(input, "r");
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(frameBlockBytes);
    const zeros = Buffer.alloc(frameBlockBytes);
    for (let offset = 0; offset < size; offset += frameBlockBytes) {
      signal?.throwIfAborted();
      const length = Math.min(frameBlockBytes, size - offset);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) throw new Error(`${input} ended while being read`);
        filled += bytesRead;
      }
      const block = buffer.subarray(0, length);
      const zero = block.equals(zeros.subarray(0, length));
      if (zero) zeroBlocks++;
      const key = keyOf(length, zero ? undefined : createHash("sha512-256").update(block).digest("hex"));
      order.push(key);
      if (!distinct.has(key)) distinct.set(key, { offset, length });
    }
  } finally {
    await handle.close();
  }

  const work = await mkdtemp(join(options.scratchDir, "frames-"));
  try {
    // 2. Each distinct block's frame: from the cache, or compressed (and kept).
    let compressed = 0;
    await mapLimited([...distinct], concurrency, async ([key, { offset, length }]) => {
      const make = async (path: string) => {
        compressed++;
        await runTool(codec.tool, codec.args, {
          stdin: createReadStream(input, { start: offset, end: offset + length - 1 }),
          stdout: createWriteStream(path),
          signal,
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        });
      };
      const dest = join(work, key);
      if (options.cache === undefined) await make(dest);
      else await options.cache.provide("disk-frame", key, dest, make, signal);
    });
    // 3. The frames in the image's order.
    await pipeline(
      async function* () {
        for (const key of order) {
          signal?.throwIfAborted();
          yield* createReadStream(join(work, key));
        }
      },
      createWriteStream(out),
      ...(signal === undefined ? [] : [{ signal }]),
    );
    return { blocks: order.length, zeroBlocks, distinct: distinct.size, compressed };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
