// Content-defined chunks (src/imager/disk/chunks.ts), the cut behind a compressed disk image's frames: the
// chunks cover a run exactly, within their bounds; where they fall does not depend on how the bytes were fed;
// bytes inserted or removed move only the cuts around the change (the property a warm build relies on when a
// schematic's initramfs is a few bytes longer); zeros inside data are cut only at the maximum.

import assert from "node:assert/strict";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type Chunk, ContentChunker, maxBytes, minBytes } from "../../src/imager/disk/chunks.ts";

/** The chunks of `data` (one run starting at `base`) fed in pieces of the given sizes (cycled). */
function cut(data: Buffer, pieces: readonly number[] = [data.length], base = 0): Chunk[] {
  const chunker = new ContentChunker();
  const chunks: Chunk[] = [];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = Math.max(1, pieces[i % pieces.length] as number);
    const piece = data.subarray(offset, offset + size);
    chunks.push(...chunker.push(piece, base + offset));
    offset += piece.length;
  }
  return [...chunks, ...chunker.end()];
}

const sha = (bytes: Buffer) => createHash("sha512-256").update(bytes).digest("hex");

/** Deterministic pseudo-random bytes: AES-128-CTR over zeros, keyed by the seed (a failure can be replayed). */
function bytesFrom(seed: number, length: number): Buffer {
  const key = createHash("sha256").update(String(seed)).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

describe("content-defined chunks", () => {
  it("cover the run exactly, each within [minBytes, maxBytes] but the last, with each chunk's own digest", () => {
    const data = randomBytes(12 * 1024 * 1024 + 12345);
    const chunks = cut(data, [data.length], 4096);
    let next = 4096;
    for (const [i, chunk] of chunks.entries()) {
      assert.equal(chunk.offset, next);
      assert.ok(chunk.length <= maxBytes);
      if (i < chunks.length - 1) assert.ok(chunk.length >= minBytes, `chunk ${i} is ${chunk.length} bytes`);
      const bytes = data.subarray(chunk.offset - 4096, chunk.offset - 4096 + chunk.length);
      assert.equal(chunk.digest, sha(bytes));
      next += chunk.length;
    }
    assert.equal(next, 4096 + data.length);
    assert.ok(chunks.length >= 4, `random data is cut between the bounds (${chunks.length} chunks of 12 MiB)`);
  });

  it("are the same however the bytes are fed", () => {
    const data = randomBytes(6 * 1024 * 1024);
    const whole = cut(data);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 * 1024 * 1024 }), { minLength: 1, maxLength: 6 }), (pieces) => {
        assert.deepEqual(cut(data, pieces), whole);
      }),
      { numRuns: 25 },
    );
  });

  it("an insertion or removal changes only the chunks around it; the rest are found again, moved", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 0, max: 20 * 1024 * 1024 }),
        fc.integer({ min: -4096, max: 4096 }).filter((n) => n !== 0),
        (seed, at, delta) => {
          const before = bytesFrom(seed, 24 * 1024 * 1024);
          const after =
            delta > 0
              ? Buffer.concat([before.subarray(0, at), bytesFrom(seed + 1, delta), before.subarray(at)])
              : Buffer.concat([before.subarray(0, at), before.subarray(at - delta)]);
          const old = new Set(cut(before).map((c) => c.digest));
          const now = cut(after);
          const fresh = now.filter((c) => !old.has(c.digest));
          const freshBytes = fresh.reduce((sum, c) => sum + c.length, 0);
          // The change touches the chunk it falls in and the next few, until a cut falls where it fell before.
          assert.ok(freshBytes <= 8 * 1024 * 1024, `${fresh.length} new chunks, ${freshBytes} bytes`);
          // Past that, every chunk is an old one, at an offset moved by delta.
          for (const chunk of now)
            if (chunk.offset > at + 8 * 1024 * 1024 + 4096)
              assert.ok(old.has(chunk.digest), `chunk at ${chunk.offset}`);
        },
      ),
      // A fixed seed: the same cases every run (the bound is about how fast cuts resync, a matter of chance).
      { numRuns: 8, seed: 18 },
    );
  });

  it("zeros inside data are cut only at maxBytes (never every minBytes)", () => {
    const data = Buffer.concat([randomBytes(1024 * 1024), Buffer.alloc(20 * 1024 * 1024), randomBytes(1024 * 1024)]);
    const chunks = cut(data);
    const zeroChunks = chunks.filter((c) => c.offset >= 2 * 1024 * 1024 && c.offset + c.length <= 20 * 1024 * 1024);
    assert.ok(zeroChunks.length > 0);
    for (const chunk of zeroChunks) assert.equal(chunk.length, maxBytes);
  });
});
