// The diff_id recorded in an asset cache entry's config (registry-cache.ts diffIdOf): go-containerregistry's
// hash of the decompressed layer. A disk image's .zst is several concatenated frames (src/imager/disk/frames.ts):
// the diff_id must cover all of them, as Go's zstd decoder (klauspost/compress) reads them all.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { diffIdOf } from "../../src/factory/assets/registry-cache.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "diff-id-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha256 = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

test("a zstd file of concatenated frames: the hash of all of them decompressed", async () => {
  const parts = [randomBytes(300_000), Buffer.alloc(2_000_000), randomBytes(1000)];
  const frames: Buffer[] = [];
  for (const [i, part] of parts.entries()) {
    const file = join(dir, `part-${i}`);
    await writeFile(file, part);
    frames.push(execFileSync("zstd", ["-q", "-c", "-3", file]));
  }
  const file = join(dir, "image.raw.zst");
  const compressed = Buffer.concat(frames);
  await writeFile(file, compressed);
  assert.equal(await diffIdOf(file, sha256(compressed)), sha256(Buffer.concat(parts)));
  // `zstd -d` agrees (the real tool, not our reading of the format).
  assert.deepEqual(execFileSync("zstd", ["-dcq", file], { maxBuffer: 64 << 20 }), Buffer.concat(parts));
});

test("a file that is not compressed: its own hash", async () => {
  const file = join(dir, "plain");
  await writeFile(file, "plain bytes\n");
  const digest = sha256(await readFile(file));
  assert.equal(await diffIdOf(file, digest), digest);
});
