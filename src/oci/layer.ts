// Image layers: a tar stream compressed (gzip, zstd or not at all) into a blob file, with both digests a
// manifest and its config need — the compressed blob's digest/size (the layer descriptor) and the
// uncompressed tar's digest (the config's `rootfs.diff_ids`).

import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { type Duplex, PassThrough, Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip, constants as zlibConstants } from "node:zlib";
import { AppError, integrity } from "../errors.ts";
import { zstdDecompress } from "../tools/zstd.ts";
import { createZstdCompressor } from "../util/zstd-compress.ts";
import { type Digest, VerifyingStream } from "./digest.ts";
import type { Descriptor } from "./manifest.ts";
import { layerCompression, MediaType } from "./mediatypes.ts";
import { createTar, type TarEntry, type TarOptions } from "./tar.ts";

export type LayerCompression = "gzip" | "zstd" | "none";

export interface LayerOptions {
  /** Default gzip: what upstream images use and every client reads. */
  compression?: LayerCompression;
  /** Compression level (gzip 1–9, default 6; zstd 1–19, default 3). */
  level?: number;
}

export interface BuiltLayer {
  descriptor: Descriptor;
  /** Digest of the uncompressed tar, for the image config's rootfs.diff_ids. */
  diffId: Digest;
}

export function layerMediaType(compression: LayerCompression): string {
  if (compression === "gzip") return MediaType.ociLayerGzip;
  if (compression === "zstd") return MediaType.ociLayerZstd;
  return MediaType.ociLayerTar;
}

const gzipOsByteOffset = 9;
const gzipOsUnix = 3;

/**
 * Sets the gzip header's OS byte to "Unix". zlib writes mtime 0 and no file name already, but its OS byte
 * depends on the platform it was built for; pinning it keeps layer digests equal across machines.
 */
class PinGzipOsByte extends Transform {
  private offset = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    const at = gzipOsByteOffset - this.offset;
    if (at >= 0 && at < chunk.length && chunk[at] !== gzipOsUnix) {
      chunk = Buffer.from(chunk);
      chunk[at] = gzipOsUnix;
    }
    this.offset += chunk.length;
    callback(null, chunk);
  }
}

function compressor(compression: LayerCompression, level?: number): Duplex[] {
  if (compression === "gzip") return [createGzip({ level: level ?? 6 }), new PinGzipOsByte()];
  if (compression === "zstd")
    return [
      createZstdCompressor({
        params: {
          [zlibConstants.ZSTD_c_compressionLevel]: level ?? 3,
          // A frame checksum lets readers detect corruption inside the frame.
          [zlibConstants.ZSTD_c_checksumFlag]: 1,
        },
      }),
    ];
  return [];
}

/**
 * Compresses a tar stream into `outPath` (created or replaced), hashing the tar and the compressed bytes on
 * the way. On failure the partial file is removed.
 */
export async function writeLayer(tarStream: Readable, outPath: string, options?: LayerOptions): Promise<BuiltLayer> {
  const compression = options?.compression ?? "gzip";
  const uncompressed = new VerifyingStream();
  const compressed = new VerifyingStream();
  try {
    await pipeline([
      tarStream,
      uncompressed,
      ...compressor(compression, options?.level),
      compressed,
      createWriteStream(outPath),
    ]);
  } catch (err) {
    await rm(outPath, { force: true });
    throw err;
  }
  return {
    descriptor: { mediaType: layerMediaType(compression), digest: compressed.digest(), size: compressed.size },
    diffId: uncompressed.digest(),
  };
}

/** Builds a deterministic layer from tar entries (see tar.ts) into `outPath`. */
export function buildLayer(
  entries: Iterable<TarEntry>,
  outPath: string,
  options?: LayerOptions & TarOptions,
): Promise<BuiltLayer> {
  return writeLayer(createTar(entries, options), outPath, options);
}

const gzipMagic = [0x1f, 0x8b];
const zstdMagic = [0x28, 0xb5, 0x2f, 0xfd];
const startsWith = (head: Buffer, magic: number[]) => magic.every((b, i) => head[i] === b);

/**
 * The uncompressed tar of a layer. The compression is judged by the content's magic bytes, so a layer
 * mislabelled as plain tar (some registries do) still reads; a layer labelled gzip or zstd whose bytes are
 * neither is refused as Integrity rather than read as tar.
 */
export function decompressLayer(source: Readable, mediaType: string): Readable {
  const labelled = layerCompression(mediaType);
  async function* decompressed(): AsyncGenerator<Buffer> {
    const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      let head = Buffer.alloc(0);
      while (head.length < zstdMagic.length) {
        const next = await iterator.next();
        if (next.done) break;
        head = Buffer.concat([head, next.value]);
      }
      const actual = startsWith(head, gzipMagic) ? "gzip" : startsWith(head, zstdMagic) ? "zstd" : "none";
      if (actual === "none" && labelled !== "none")
        throw integrity(`layer labelled ${mediaType} is not ${labelled}-compressed`);
      let sourceError: unknown;
      async function* everything(): AsyncGenerator<Buffer> {
        if (head.length > 0) yield head;
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await iterator.next();
          } catch (err) {
            sourceError = err;
            throw err;
          }
          if (next.done) return;
          yield next.value;
        }
      }
      if (actual === "none") {
        yield* everything();
        return;
      }
      // zstd through the CLI: Node's zstd stream stops after the first frame, and a layer may hold several.
      const inflate = actual === "gzip" ? createGunzip() : zstdDecompress();
      let inflateError: unknown;
      inflate.once("error", (err) => {
        inflateError = err;
      });
      const out = new PassThrough();
      pipeline(Readable.from(everything()), inflate, out).catch(() => {
        // The error also destroys `out`, which fails the iteration below.
      });
      try {
        yield* out;
      } catch (err) {
        // Corrupt compressed data is an integrity failure of the layer; other errors (the source's) pass as-is.
        if (err !== inflateError || err === sourceError) throw err;
        throw new AppError("Integrity", `layer (${actual}) is corrupt: ${(err as Error).message}`, { cause: err });
      }
    } finally {
      source.destroy();
    }
  }
  return Readable.from(decompressed(), { objectMode: false });
}
