// A disk image compressed chunk by chunk: the image is cut into chunks (./chunks.ts: all-zero 8 MiB grid blocks
// as they are, the data between them where its content says), each chunk compressed on its own into one
// complete zstd frame (`zstd -T0 -18`) or one complete xz stream (`xz -0 -T0`), and the frames are written one
// after the other. Both formats allow this and every decoder reads it as the whole image: a zstd file is a
// sequence of frames, decoded in order (RFC 8878 §3.1, "Frames"), and an .xz file a sequence of streams (the
// .xz file format 1.1.0, §2: "one or more Streams", decoded one after the other by xz-utils); Talos
// (pkg/imager, `zstd -d`, `xz -d`) and the Image Factory's consumers decompress the whole file.
//
// Why (issue 18): most of a disk image is the same for every schematic of a profile — runs of zeros, the
// empty parts of the file systems, the boot loader, the kernel, most of the initramfs in BOOT and in the UKI
// — and compressing the 1–8 GiB image at level 18 is most of a build's time. A chunk's frame depends only on
// its bytes and the compressor, so it is kept in the intermediate cache under the hash of exactly those (kind
// "disk-frame"); the next image with the same chunk, at whatever offset, copies the frame instead of
// compressing it again. An all-zero block is keyed by its length alone (no hashing), and within one image
// each distinct chunk is compressed once, so a cold build compresses the zeros of a 2 GiB image once too.
//
// The cut does not depend on the cache: with or without it, cold or warm, the same image gives the same
// chunks, the same frames and the same bytes.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { runTool, type Tool, toolVersionText } from "../../tools/run.ts";
import { type DataSegment, fileDataSegments } from "../../tools/xfsprogs.ts";
import { xzCompressArgs, xzTool } from "../../tools/xz.ts";
import { zstdCompressArgs, zstdTool } from "../../tools/zstd.ts";
import { mapLimited } from "../../util/concurrency.ts";
import { readFully } from "../../util/fs.ts";
import type { IntermediateCache } from "../intermediate-cache.ts";
import { type Chunk, ContentChunker, chunkRecipe, gridBytes } from "./chunks.ts";

export type FrameCompression = "zst" | "xz";

/** Bumped when the frames change for the same chunk and compressor (the cut's own recipe is in the key too). */
const frameRecipe = 2;
/** Frames up to this size are read once per image and kept in memory while the frames are written. */
const smallFrameBytes = 64 * 1024;
/** Chunks compressed at once: a chunk is too small for -T0 to use more than one core, two keep both busy. */
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

/**
 * The compressor's arguments for one chunk: zstd is told the size of what it reads from stdin (the frame
 * header then records it, and the tables fit the input: 0.58 s instead of 0.68 s for 2 MiB at -18).
 */
function chunkArgs(compression: FrameCompression, codec: Codec, length: number): string[] {
  return compression === "zst" ? [...codec.args, `--stream-size=${length}`] : codec.args;
}

/** The intermediate cache key of one chunk's frame: the compressor and the chunk's bytes (or zero length). */
export function frameKey(parts: {
  compression: FrameCompression;
  args: readonly string[];
  tool: string;
  length: number;
  /** The chunk's content hash; undefined for a zero grid block. */
  content: string | undefined;
}): string {
  const fields = {
    recipe: frameRecipe,
    chunks: chunkRecipe,
    compression: parts.compression,
    args: parts.args.join(" "),
    tool: parts.tool,
    length: parts.length,
    content: parts.content ?? "zeros",
  };
  return createHash("sha256").update(JSON.stringify(fields)).digest("hex");
}

export interface ChunkCompressOptions {
  /** Where frames are kept between builds; without it every distinct chunk is compressed. */
  cache?: IntermediateCache;
  /** A directory for this call's frames (a temp dir under it, removed afterwards). */
  scratchDir: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ChunkCompressResult {
  chunks: number;
  zeroChunks: number;
  /** Distinct chunks, and how many of them were compressed here (not found in the cache). */
  distinct: number;
  compressed: number;
}

/**
 * Reads `input` once and cuts it into chunks (./chunks.ts), in order. A grid block the file system holds no
 * data in is zeros without being read (fileDataSegments: most of a sparse disk image).
 */
async function chunksOf(input: string, signal: AbortSignal | undefined): Promise<Chunk[]> {
  const chunks: Chunk[] = [];
  const handle = await open(input, "r");
  try {
    const { size } = await handle.stat();
    const segments = await fileDataSegments(input, size, signal === undefined ? {} : { signal });
    let next = 0; // the first segment that does not end before the current block
    const buffer = Buffer.alloc(gridBytes);
    const zeros = Buffer.alloc(gridBytes);
    let run: ContentChunker | undefined;
    for (let offset = 0; offset < size; offset += gridBytes) {
      signal?.throwIfAborted();
      const length = Math.min(gridBytes, size - offset);
      while (
        next < segments.length &&
        (segments[next] as DataSegment).offset + (segments[next] as DataSegment).length <= offset
      )
        next++;
      const hasData = next < segments.length && (segments[next] as DataSegment).offset < offset + length;
      const block = hasData ? await readFully(handle, buffer, length, offset, input) : undefined;
      if (block === undefined || block.equals(zeros.subarray(0, length))) {
        if (run !== undefined) chunks.push(...run.end());
        run = undefined;
        chunks.push({ offset, length, digest: undefined });
      } else {
        run ??= new ContentChunker();
        chunks.push(...run.push(block, offset));
      }
    }
    if (run !== undefined) chunks.push(...run.end());
  } finally {
    await handle.close();
  }
  return chunks;
}

/** Compresses `input` into `out` (replaced) as one frame (zstd) or stream (xz) per chunk. */
export async function compressByChunks(
  input: string,
  out: string,
  compression: FrameCompression,
  options: ChunkCompressOptions,
): Promise<ChunkCompressResult> {
  const { signal } = options;
  const codec = codecOf(compression);
  const tool = await toolVersionText(codec.tool, signal);

  // 1. The chunks and their keys, in order; the first of each distinct one.
  const chunks = await chunksOf(input, signal);
  const order: string[] = [];
  const distinct = new Map<string, Chunk>();
  for (const chunk of chunks) {
    const key = frameKey({ compression, args: codec.args, tool, length: chunk.length, content: chunk.digest });
    order.push(key);
    if (!distinct.has(key)) distinct.set(key, chunk);
  }

  const work = await mkdtemp(join(options.scratchDir, "frames-"));
  try {
    // 2. Each distinct chunk's frame: from the cache, or compressed (and kept).
    let compressed = 0;
    await mapLimited([...distinct], concurrency, async ([key, { offset, length }]) => {
      const make = async (path: string) => {
        compressed++;
        await runTool(codec.tool, chunkArgs(compression, codec, length), {
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
    // 3. The frames in the image's order: a small frame (the zero block's, read hundreds of times) is read
    // once and kept; the others are streamed in 1 MiB reads.
    const small = new Map<string, Buffer>();
    await pipeline(
      async function* () {
        for (const key of order) {
          signal?.throwIfAborted();
          const path = join(work, key);
          let bytes = small.get(key);
          if (bytes === undefined && (await stat(path)).size <= smallFrameBytes) {
            bytes = await readFile(path);
            small.set(key, bytes);
          }
          if (bytes !== undefined) yield bytes;
          else yield* createReadStream(path, { highWaterMark: 1024 * 1024 });
        }
      },
      createWriteStream(out, { highWaterMark: 1024 * 1024 }),
      ...(signal === undefined ? [] : [{ signal }]),
    );
    const zeroChunks = chunks.filter((chunk) => chunk.digest === undefined).length;
    return { chunks: chunks.length, zeroChunks, distinct: distinct.size, compressed };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
