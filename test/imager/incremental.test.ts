// Incremental builds (issue 18): extension squashfs images and the initramfs's compressed members kept in the
// intermediate cache are reused by the next schematic, and what comes out is the same, byte for byte, as a cold build of the same profile — for
// every asset kind that carries the initramfs. The warm build's schematic reorders the extensions the first
// one used, changes one of them and adds a kernel argument, so an image cached at one position is reused at
// another. The cache itself: one make per key at a time, nothing partial left by a failed make, and the
// asset cache's limits applied by its collection.
// Compressed disk images (disk/frames.ts, disk/chunks.ts): the first schematic's metal-amd64.raw.zst / .raw.xz
// put their chunks' frames in the cache, the second's reuse the unchanged ones, also where they moved; warm
// equals cold, and `zstd -d` / `xz -d` (the real tools) give back the raw image of the same profile.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  IntermediateCache,
  type IntermediateKind,
  type IntermediateOutcome,
} from "../../src/imager/intermediate-cache.ts";
import { grubPartsStats } from "../../src/imager/iso/grub-parts.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import { buildAsset, type PreparedVersion, prepareVersion, testSchematic } from "./helpers.ts";

/** A frame or stream of a compressed image: where its bytes are in the decompressed image. */
interface FrameRange {
  offset: number;
  length: number;
}

/** The xz streams of `path`, as `xz --robot --list -v` reports them (uncompressed offset and size). */
function xzStreams(path: string): FrameRange[] {
  const text = execFileSync("xz", ["--robot", "--list", "-v", path]).toString();
  return text
    .split("\n")
    .filter((line) => line.startsWith("stream\t"))
    .map((line) => {
      const fields = line.split("\t");
      return { offset: Number(fields[4]), length: Number(fields[6]) };
    });
}

/**
 * The zstd frames of `path`, walked as RFC 8878 §3.1.1 lays them out: magic, frame header (the content size
 * is there: every frame is made with --stream-size), blocks up to the last one, optional checksum.
 */
async function zstdFrames(path: string): Promise<FrameRange[]> {
  const data = await readFile(path);
  const frames: FrameRange[] = [];
  let at = 0;
  let offset = 0;
  while (at < data.length) {
    assert.equal(data.readUInt32LE(at), 0xfd2fb528, `a zstd frame at ${at}`);
    const descriptor = data[at + 4] as number;
    const fcsFlag = descriptor >> 6;
    const singleSegment = (descriptor >> 5) & 1;
    const checksum = (descriptor >> 2) & 1;
    const dictBytes = [0, 1, 2, 4][descriptor & 3] as number;
    const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] as number;
    assert.ok(fcsBytes > 0, "the frame header records the content size");
    let p = at + 5 + (singleSegment ? 0 : 1) + dictBytes;
    let length = fcsBytes === 8 ? Number(data.readBigUInt64LE(p)) : data.readUIntLE(p, fcsBytes);
    if (fcsBytes === 2) length += 256;
    p += fcsBytes;
    for (let last = 0; !last; ) {
      const header = data.readUIntLE(p, 3);
      last = header & 1;
      const type = (header >> 1) & 3;
      p += 3 + (type === 1 ? 1 : header >> 3);
    }
    at = p + (checksum ? 4 : 0);
    frames.push({ offset, length });
    offset += length;
  }
  return frames;
}

/**
 * Each frame's content in the image `decompress` (a real tool) gives back from `path`: `<length> <SHA-256>`
 * with its offset, in order.
 */
async function frameContents(
  decompress: string,
  path: string,
  ranges: readonly FrameRange[],
): Promise<{ offset: number; content: string }[]> {
  const child = spawn("sh", ["-c", `${decompress} "$1"`, "sh", path], { stdio: ["ignore", "pipe", "inherit"] });
  const contents: { offset: number; content: string }[] = [];
  let index = 0;
  let hash = createHash("sha256");
  let filled = 0;
  for await (const piece of child.stdout) {
    let bytes = piece as Buffer;
    while (bytes.length > 0) {
      const range = ranges[index] as FrameRange;
      assert.ok(range !== undefined, "the image is longer than its frames");
      const take = Math.min(bytes.length, range.length - filled);
      hash.update(bytes.subarray(0, take));
      filled += take;
      bytes = bytes.subarray(take);
      if (filled === range.length) {
        contents.push({ offset: range.offset, content: `${range.length} ${hash.digest("hex")}` });
        hash = createHash("sha256");
        filled = 0;
        index++;
      }
    }
  }
  assert.equal(index, ranges.length, "every frame's bytes are in the image");
  return contents;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

describe("incremental builds: warm equals cold", () => {
  let fixture: ReleaseFixture;
  let seen: PreparedVersion;
  let prepared: PreparedVersion;
  let out: string;
  let cache: IntermediateCache;
  /** Lookups by kind and outcome ("squashfs local" etc.), from the cache's own report. */
  const lookups = new Map<string, number>();
  const count = (kind: IntermediateKind, outcome: IntermediateOutcome) => lookups.get(`${kind} ${outcome}`) ?? 0;
  const since = (before: Map<string, number>, kind: IntermediateKind, outcome: IntermediateOutcome) =>
    count(kind, outcome) - (before.get(`${kind} ${outcome}`) ?? 0);
  /** The cold metal-amd64.raw of the second schematic, once its test ran. */
  let rawSha: string | undefined;
  // Seen first: three extensions. Then: the three in another order, one new, and a kernel argument.
  const firstNames = ["testbed-dummy", "testbed-ucode", "testbed-hello"];
  const secondNames = ["testbed-hello", "testbed-glibc", "testbed-dummy", "testbed-ucode"];
  const first = testSchematic(firstNames);
  const second = testSchematic(secondNames, {
    extraKernelArgs: ["testbed.warm=yes"],
  });

  before(async () => {
    fixture = await openReleaseFixture(["v1.10.3", "v1.8.2"]);
    // Flattened apart, as separate pulls would be: the key is the image's, not its directory's.
    seen = await prepareVersion(fixture, "v1.10.3", firstNames);
    prepared = await prepareVersion(fixture, "v1.10.3", secondNames);
    out = await mkdtemp(join(fixture.scratch, "out-"));
    cache = new IntermediateCache(join(fixture.scratch, "intermediate"), {
      onLookup: (kind, outcome) => lookups.set(`${kind} ${outcome}`, count(kind, outcome) + 1),
    });
    await mkdir(join(out, "seed"));
    await buildAsset(seen, first, "initramfs-amd64.xz", join(out, "seed"), { intermediateCache: cache });
    assert.equal(count("squashfs", "made"), 3, "each of the first schematic's extensions is made once");
    // The firmware, the three images, the schematic's, modules.dep, extensions.yaml.
    assert.equal(count("initramfs-member", "made"), 7);
  });
  after(async () => {
    await fixture?.close();
  });

  for (const path of [
    "initramfs-amd64.xz",
    "metal-amd64-uki.efi",
    "installer-amd64.tar",
    "metal-amd64.iso",
    "metal-amd64.raw",
  ]) {
    test(`${path}: a warm build is byte for byte a cold one`, async () => {
      const warmDir = join(out, `warm-${path}`);
      const coldDir = join(out, `cold-${path}`);
      await mkdir(warmDir);
      await mkdir(coldDir);
      const before = new Map(lookups);
      const warm = await buildAsset(prepared, second, path, warmDir, { intermediateCache: cache });
      const reused = since(before, "squashfs", "local");
      // hello, dummy and ucode (its image without the firmware the initramfs gets) were seen with the first
      // schematic; glibc with the first test that ran.
      assert.ok(reused >= 3, `at least the three images seen before are reused (${reused})`);
      const cold = await buildAsset(prepared, second, path, coldDir);
      assert.equal(await sha256File(warm.path), await sha256File(cold.path));
      if (path === "metal-amd64.raw") rawSha = await sha256File(cold.path);
    });
  }

  for (const [path, decompress, framesOf] of [
    ["metal-amd64.raw.zst", "zstd -dcq", zstdFrames],
    ["metal-amd64.raw.xz", "xz -dc", async (file: string) => xzStreams(file)],
  ] as const) {
    test(`${path}: unchanged chunks come from the cache wherever they moved, warm is byte for byte cold, and it decompresses to the raw image`, async () => {
      const seedDir = join(out, `seed-${path}`);
      const warmDir = join(out, `warm-${path}`);
      const coldDir = join(out, `cold-${path}`);
      for (const dir of [seedDir, warmDir, coldDir]) await mkdir(dir);
      const seedBuilt = await buildAsset(seen, first, path, seedDir, { intermediateCache: cache });
      const framesBefore = (await cache.list()).filter((e) => e.kind === "disk-frame").length;
      assert.ok(framesBefore > 0, "the first image's frames are kept");
      const before = new Map(lookups);
      const warm = await buildAsset(prepared, second, path, warmDir, { intermediateCache: cache });
      const cold = await buildAsset(prepared, second, path, coldDir);
      // The frames as the real tools see them (xz --list; zstd's frame headers), their content from the
      // real decompressor: exactly the contents the first image did not have are compressed, the rest come
      // from the cache.
      const seedFrames = await frameContents(decompress, seedBuilt.path, await framesOf(seedBuilt.path));
      const coldFrames = await frameContents(decompress, cold.path, await framesOf(cold.path));
      if (path.endsWith(".zst"))
        assert.match(
          execFileSync("zstd", ["-lv", cold.path]).toString(),
          new RegExp(`Frames: ${coldFrames.length}\\b`),
        );
      const seedAt = new Map<string, Set<number>>();
      for (const frame of seedFrames)
        seedAt.set(frame.content, (seedAt.get(frame.content) ?? new Set()).add(frame.offset));
      const distinct = new Set(coldFrames.map((frame) => frame.content));
      const shared = [...distinct].filter((content) => seedAt.has(content)).length;
      assert.ok(shared > 0);
      assert.equal(since(before, "disk-frame", "local"), shared);
      assert.equal(since(before, "disk-frame", "made"), distinct.size - shared);
      // Content-defined: data the first image had at another offset (the initramfs behind a changed member,
      // in BOOT and in the UKI) is found there anyway.
      const moved = coldFrames.filter(
        (frame) => seedAt.has(frame.content) && !(seedAt.get(frame.content) as Set<number>).has(frame.offset),
      );
      assert.ok(moved.length > 0, "some reused frames moved");
      const warmSha = await sha256File(warm.path);
      assert.equal(warmSha, await sha256File(cold.path));
      assert.notEqual(rawSha, undefined, "the metal-amd64.raw test ran first");
      const back = execFileSync("sh", ["-c", `${decompress} "$1" | sha256sum`, "sh", cold.path]).toString();
      assert.equal(back.split(" ")[0], rawSha);
    });
  }

  test("initramfs members: a kernel argument more makes only the schematic's image and extensions.yaml members", async () => {
    const dirs = ["members-warm", "members-cold"].map((name) => join(out, name));
    for (const dir of dirs) await mkdir(dir);
    const [warmDir, coldDir] = dirs as [string, string];
    const withArg = testSchematic(firstNames, { extraKernelArgs: ["testbed.members=yes"] });
    const before = new Map(lookups);
    const warm = await buildAsset(seen, withArg, "initramfs-amd64.xz", warmDir, { intermediateCache: cache });
    // The schematic's ID is in its image and in extensions.yaml; the firmware, the three extension images and
    // modules.dep are the first schematic's.
    assert.equal(since(before, "initramfs-member", "made"), 2);
    assert.equal(since(before, "initramfs-member", "local"), 5);
    const cold = await buildAsset(seen, withArg, "initramfs-amd64.xz", coldDir);
    assert.equal(await sha256File(warm.path), await sha256File(cold.path));
  });

  test("a second hybrid ISO (v1.10.3) takes GRUB's part from the cache: grub-mkrescue does not run", async () => {
    const dir = join(out, "hybrid-again");
    await mkdir(dir);
    const captures = grubPartsStats.captures;
    await buildAsset(seen, first, "metal-amd64.iso", dir, { intermediateCache: cache });
    assert.equal(grubPartsStats.captures, captures);
  });

  test("GRUB ISO (v1.8.2): a warm build is byte for byte a cold one, and runs no grub-mkrescue", async () => {
    const old = await prepareVersion(fixture, "v1.8.2", []);
    const plain = testSchematic([]);
    const withArg = testSchematic([], { extraKernelArgs: ["testbed.warm=yes"] });
    const dirs = ["grub-seed", "grub-warm", "grub-cold"].map((name) => join(out, name));
    for (const dir of dirs) await mkdir(dir);
    const [seedDir, warmDir, coldDir] = dirs as [string, string, string];
    let captures = grubPartsStats.captures;
    await buildAsset(old, plain, "metal-amd64.iso", seedDir, { intermediateCache: cache });
    assert.equal(grubPartsStats.captures, captures + 1, "the first GRUB ISO of this GRUB and platforms records");
    captures = grubPartsStats.captures;
    const warm = await buildAsset(old, withArg, "metal-amd64.iso", warmDir, { intermediateCache: cache });
    assert.equal(grubPartsStats.captures, captures, "the second takes the recorded parts");
    assert.equal(warm.profile.bootloader, "grub");
    const cold = await buildAsset(old, withArg, "metal-amd64.iso", coldDir);
    assert.equal(grubPartsStats.captures, captures + 1, "without the cache, the parts are recorded again");
    assert.equal(await sha256File(warm.path), await sha256File(cold.path));
  });

  test("the cache holds whole entries only, one per extension image and GRUB part", async () => {
    const entries = await cache.list();
    const images = entries.filter((entry) => entry.kind === "squashfs");
    assert.equal(images.length, 4, "dummy, ucode, hello, glibc: one image each");
    assert.equal(
      entries.filter((entry) => entry.kind === "initramfs-member").length,
      count("initramfs-member", "made"),
      "one entry per member made",
    );
    const grub = entries.filter((entry) => entry.kind === "grub-iso");
    assert.equal(grub.length, 2, "the hybrid's (i386-pc) and the GRUB ISO's (every platform)");
    assert.deepEqual(await readdir(join(cache.dir, "tmp")), []);
  });
});

describe("intermediate cache", () => {
  let dir: string;
  const key = (n: number) => createHash("sha256").update(String(n)).digest("hex");

  before(async () => {
    dir = await mkdtemp(join(process.env.TMPDIR ?? "/tmp", "intermediate-"));
  });

  test("one make per key however many ask at once; a hit is the same bytes", async () => {
    const cache = new IntermediateCache(join(dir, "flight"));
    let makes = 0;
    const make = async (path: string) => {
      makes++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      await writeFile(path, "image bytes");
    };
    await mkdir(join(dir, "dest"));
    const hits = await Promise.all(
      [0, 1, 2, 3].map((i) => cache.provide("squashfs", key(1), join(dir, "dest", `f${i}`), make)),
    );
    assert.equal(makes, 1);
    assert.deepEqual(hits, [false, false, false, false]);
    // Answered before the entry is kept (fsync and rename in the background); settled() waits for it.
    await cache.settled();
    assert.deepEqual(await readdir(join(cache.dir, "tmp")), []);
    assert.equal(await cache.provide("squashfs", key(1), join(dir, "dest", "f4"), make), true);
    for (let i = 0; i <= 4; i++) assert.equal(await readFile(join(dir, "dest", `f${i}`), "utf8"), "image bytes");
  });

  test("a failed make leaves no entry and no temp file", async () => {
    const cache = new IntermediateCache(join(dir, "failing"));
    const make = async (path: string) => {
      await writeFile(path, "half an ima");
      throw new Error("mksquashfs died");
    };
    await assert.rejects(cache.provide("squashfs", key(2), join(dir, "failed"), make), /mksquashfs died/);
    assert.deepEqual(await cache.list(), []);
    assert.deepEqual(await readdir(join(cache.dir, "tmp")), []);
    await assert.rejects(stat(join(dir, "failed")), { code: "ENOENT" });
  });

  test("collection: too old first, then least recently used beyond the size limit", async () => {
    const cache = new IntermediateCache(join(dir, "gc"));
    const now = Date.now() / 1000;
    for (const [n, ageSeconds] of [
      [3, 10 * 86400],
      [4, 300],
      [5, 200],
      [6, 100],
    ] as const) {
      await cache.provide("squashfs", key(n), join(dir, `gc-${n}`), (path) => writeFile(path, Buffer.alloc(1000)));
      await cache.settled();
      await utimes(join(cache.dir, "squashfs", key(n)), now - ageSeconds, now - ageSeconds);
    }
    const dry = await cache.collect({ maxAgeMs: 86400 * 1000, maxSizeBytes: 2000, dryRun: true });
    assert.equal((await cache.list()).length, 4, "a dry run removes nothing");
    const result = await cache.collect({ maxAgeMs: 86400 * 1000, maxSizeBytes: 2000 });
    assert.deepEqual(dry.removed, result.removed);
    assert.deepEqual(
      result.removed.map((r) => [r.key, r.reason]),
      [
        [key(3), "age"],
        [key(4), "size"],
      ],
    );
    assert.deepEqual((await cache.list()).map((e) => e.key).sort(), [key(5), key(6)].sort());
    // What a build already took stays readable.
    assert.equal((await readFile(join(dir, "gc-3"))).length, 1000);
  });
});
