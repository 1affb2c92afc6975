// Content-defined chunks of a disk image's data (issue 18), for the frames of ./frames.ts.
//
// A fixed grid of blocks keeps only what stays at the same offset: once a schematic's initramfs, or the UKI
// holding it, is a few bytes longer or shorter than the last one, every block after the change holds other
// bytes although almost all of them were seen before, only elsewhere. So the image's data is cut where its
// content says, not where its offset does:
//   - the image is read in grid blocks of `gridBytes`; an all-zero grid block is a chunk of its own (kept as
//     it is: recognised by comparison, never hashed, the same frame wherever it is);
//   - each run of consecutive grid blocks that are not all zero is cut by a gear rolling hash (as FastCDC,
//     Xia et al., USENIX ATC 2016): h = (h << 1) + gear[byte] over 32 bits, so h depends on the last 32 bytes
//     only; a chunk ends after the byte where the hash's top `cutBits` bits are all zero, but never before
//     `minBytes` (those bytes are not examined) and always at `maxBytes`; the run's end ends its last chunk;
//   - the gear table is 256 numbers fixed forever: the first four bytes of SHA-256("talos gear <i>").
// So a change moves the cuts only around it: before it the chunks are those of the last image, and a few
// bytes after it the hash finds the same cut points again, whatever offset the same bytes are at now. Every
// part of this (the grid, the table, the bits and the bounds) is in the frames' recipe: changing any of it
// changes the chunks and so every frame key.

import { createHash, type Hash } from "node:crypto";

/** The grid in which all-zero blocks are found: zstd -18's window, so a zero frame loses nothing. */
export const gridBytes = 8 * 1024 * 1024;
/** No chunk ends before this many bytes (except at a run's end). */
export const minBytes = 512 * 1024;
/** Every chunk ends at this many bytes at the latest. */
export const maxBytes = 8 * 1024 * 1024;
/** A cut after a byte where the hash's top 20 bits are zero: on average 1 MiB past minBytes. */
const cutBits = 20;
const cutMask = (0xffff_ffff << (32 - cutBits)) >>> 0;

const gear = new Int32Array(256);
for (let i = 0; i < 256; i++) gear[i] = createHash("sha256").update(`talos gear ${i}`).digest().readInt32BE(0);
// Over a run of zeros h settles on -gear[0] (h = 2h + gear[0]): that value must not be a cut point, or data
// with zeros in it would be cut every minBytes there.
if (((-(gear[0] as number) | 0) & cutMask) === 0) throw new Error("the gear table cuts runs of zeros");

/** One chunk: its place in the image and, unless it is a zero grid block, the SHA-512/256 of its bytes. */
export interface Chunk {
  offset: number;
  length: number;
  /** undefined for an all-zero grid block. */
  digest: string | undefined;
}

/**
 * Cuts a run of data fed in order (`push`) into chunks; `end()` ends the run. The cut points depend only on
 * the run's bytes, never on how they were split into pushes.
 */
export class ContentChunker {
  #start = 0;
  #length = 0;
  #h = 0;
  #hash: Hash = createHash("sha512-256");

  /** Feeds `bytes`, which start at `offset` in the image; returns the chunks they ended. */
  push(bytes: Uint8Array, offset: number): Chunk[] {
    const chunks: Chunk[] = [];
    if (this.#length === 0) this.#start = offset;
    let i = 0;
    while (i < bytes.length) {
      // The first byte examined is the chunk's minBytes-th; none past its maxBytes-th.
      let k = i + Math.max(0, minBytes - this.#length);
      const limit = Math.min(bytes.length, i + (maxBytes - this.#length));
      let h = this.#h;
      let end = -1;
      for (; k < limit; k++) {
        h = ((h << 1) + (gear[bytes[k] as number] as number)) | 0;
        if ((h & cutMask) === 0) {
          end = k + 1;
          break;
        }
      }
      if (end < 0 && this.#length + (limit - i) === maxBytes) end = limit;
      if (end < 0) {
        this.#hash.update(bytes.subarray(i));
        this.#length += bytes.length - i;
        this.#h = h;
        break;
      }
      this.#hash.update(bytes.subarray(i, end));
      this.#length += end - i;
      chunks.push(this.#finish());
      this.#start = offset + end;
      i = end;
    }
    return chunks;
  }

  /** Ends the run: its last chunk, if it has bytes. */
  end(): Chunk[] {
    return this.#length === 0 ? [] : [this.#finish()];
  }

  #finish(): Chunk {
    const chunk = { offset: this.#start, length: this.#length, digest: this.#hash.digest("hex") };
    this.#length = 0;
    this.#h = 0;
    this.#hash = createHash("sha512-256");
    return chunk;
  }
}

/** The recipe of the cut, for the frames' keys: any change here is a new recipe. */
export const chunkRecipe = `grid ${gridBytes} gear sha256 "talos gear <i>" bits ${cutBits} min ${minBytes} max ${maxBytes}`;
