// Compression by name, as the initramfs and disk-image code needs it: zstd through Node's zlib (or the
// CLI for multithreading), xz through the CLI, gzip through zlib. Plus the two initramfs operations built
// on it: write a compressed newc cpio (optionally appended to an existing initramfs, which is how
// upstream adds extensions: the kernel unpacks concatenated compressed archives in order) and read back
// every entry of an initramfs file.

import { createReadStream, createWriteStream } from "node:fs";
import { type Duplex, PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip, createZstdDecompress, constants as zlib } from "node:zlib";
import { integrity } from "../errors.ts";
import {
  ByteReader,
  type CpioEntry,
  type CpioOptions,
  type CpioReadLimits,
  type CpioRecord,
  createCpio,
  newcMagic,
  readCpio,
  readCpioArchive,
  skipZeros,
} from "../formats/cpio.ts";
import { createZstdCompressor } from "../util/zstd-compress.ts";
import { xzCompress, xzDecompress } from "./xz.ts";
import { zstdCompress, zstdDecompress } from "./zstd.ts";

export type Compression = "zstd" | "xz" | "gzip" | "none";

const magics: [Exclude<Compression, "none">, number[]][] = [
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["gzip", [0x1f, 0x8b]],
];

/** The compression of data starting with `head` (≥ 6 bytes), "none" for a newc cpio, else undefined. */
export function detectCompression(head: Uint8Array): Compression | undefined {
  for (const [name, magic] of magics) if (magic.every((b, i) => head[i] === b)) return name;
  if (Buffer.from(head.subarray(0, 6)).toString("latin1") === newcMagic) return "none";
  return undefined;
}

export interface CompressOptions {
  /** zstd 1–22 (default 18, as upstream's `zstd -18`), xz 0–9 (default 6), gzip 1–9 (default 6). */
  level?: number;
  /** zstd: "zlib" (in-process, default) or "cli" (multithreaded `zstd -T0`). */
  engine?: "zlib" | "cli";
  /** xz integrity check; "crc32" is what the kernel can verify (default for initramfs writing below). */
  xzCheck?: "crc32" | "crc64";
  signal?: AbortSignal;
}

export function createCompressor(compression: Compression, options: CompressOptions = {}): Duplex {
  switch (compression) {
    case "zstd": {
      const level = options.level ?? 18;
      if (options.engine === "cli") return zstdCompress({ level, signal: options.signal });
      return createZstdCompressor({
        params: { [zlib.ZSTD_c_compressionLevel]: level, [zlib.ZSTD_c_checksumFlag]: 1 },
      });
    }
    case "xz":
      return xzCompress({ level: options.level ?? 6, check: options.xzCheck, signal: options.signal });
    case "gzip":
      return createGzip({ level: options.level ?? 6 });
    case "none":
      return new PassThrough();
  }
}

/**
 * A decompressor. zstd defaults to the CLI: Node 24's zlib zstd decoder silently stops at the end of the
 * first frame, and an extended initramfs is several frames (use "zlib" only for single-frame data).
 */
export function createDecompressor(
  compression: Compression,
  options: { engine?: "zlib" | "cli"; signal?: AbortSignal } = {},
): Duplex {
  switch (compression) {
    case "zstd":
      return options.engine === "zlib" ? createZstdDecompress() : zstdDecompress({ signal: options.signal });
    case "xz":
      return xzDecompress({ signal: options.signal });
    case "gzip":
      return createGunzip();
    case "none":
      return new PassThrough();
  }
}

export interface CompressedCpioOptions extends CpioOptions, CompressOptions {
  compression: Compression;
  /** Append to `outPath` instead of replacing it (extending an initramfs). */
  append?: boolean;
}

/**
 * Writes the entries as one newc cpio, compressed, to `outPath`. xz uses the crc32 check unless told
 * otherwise, since the kernel must verify it. Returns the number of bytes written.
 */
export async function writeCompressedCpio(
  entries: Iterable<CpioEntry>,
  outPath: string,
  options: CompressedCpioOptions,
): Promise<number> {
  const compressor = createCompressor(options.compression, { xzCheck: "crc32", ...options });
  const out = createWriteStream(outPath, { flags: options.append ? "a" : "w" });
  let written = 0;
  const counter = new PassThrough();
  counter.on("data", (chunk: Buffer) => {
    written += chunk.length;
  });
  await pipeline(createCpio(entries, options), compressor, counter, out, { signal: options.signal });
  return written;
}

/**
 * Every entry of an initramfs: leading uncompressed archives (e.g. the early microcode cpio) are read as
 * they are; at the first compressed segment, the rest of the file is decompressed as one stream, which
 * covers concatenated zstd frames or xz streams (what upstream produces). A later segment in another
 * compression is not supported and fails in the decompressor.
 */
export async function* readInitramfs(
  source: string | Readable,
  options: { limits?: CpioReadLimits; signal?: AbortSignal } = {},
): AsyncGenerator<CpioRecord & { segment: number }> {
  const input = typeof source === "string" ? createReadStream(source) : source;
  const reader = new ByteReader(input);
  let segment = 0;
  try {
    while (await skipZeros(reader)) {
      const head = await reader.peek(6);
      const compression = detectCompression(head);
      if (compression === undefined)
        throw integrity(`initramfs: unknown data at byte ${reader.offset} (neither cpio nor a known compression)`);
      if (compression === "none") {
        for await (const record of readCpioArchive(reader, options.limits)) yield { ...record, segment };
        segment++;
        continue;
      }
      const decompressor = createDecompressor(compression, { signal: options.signal });
      const rest = reader.rest();
      const feeding = pipeline(rest, decompressor).catch((err: unknown) => {
        decompressor.destroy(err as Error);
      });
      for await (const record of readCpio(decompressor as AsyncIterable<Buffer>, options.limits))
        yield { ...record, segment };
      await feeding;
      return;
    }
  } finally {
    if (typeof source === "string") input.destroy();
  }
}
