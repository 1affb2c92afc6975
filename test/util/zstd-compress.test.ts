import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { buffer } from "node:stream/consumers";
import { test } from "node:test";
import { runToolText } from "../../src/tools/run.ts";
import { zstdTool } from "../../src/tools/zstd.ts";
import { createZstdCompressor } from "../../src/util/zstd-compress.ts";

// Everything written at once, then end() while writes are still queued: the shape that made Node's own zstd
// stream append an empty frame (nodejs/node#66078).
async function compress(stream: Duplex, writes: Buffer[]): Promise<Buffer> {
  const out = buffer(stream);
  for (const chunk of writes) stream.write(chunk);
  stream.end();
  return await out;
}

test("zstd output does not depend on how the input was chunked, and is one frame that zstd reads back", async () => {
  const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(500_000, 7), randomBytes(100_000)]);
  const pieces = (size: number) => {
    const out: Buffer[] = [];
    for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
    return out;
  };
  const whole = await compress(createZstdCompressor({}), [data]);
  for (const size of [997, 65_536, 131_073])
    assert.deepEqual(await compress(createZstdCompressor({}), pieces(size)), whole, `chunks of ${size} bytes`);
  const dir = await mkdtemp(join(tmpdir(), "zstd-"));
  try {
    await writeFile(join(dir, "a.zst"), await compress(createZstdCompressor({}), pieces(1000)));
    // `zstd -l` lists the frames of a file; exactly one.
    const listing = await runToolText(zstdTool, ["-lv", join(dir, "a.zst")]);
    assert.match(listing, /# Zstandard Frames: 1\n/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
