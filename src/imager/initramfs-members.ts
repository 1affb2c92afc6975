// The archive extensions.ts appends to the base initramfs, as a row of members: each member is one complete
// newc cpio (with its own trailer), compressed on its own into a complete zstd frame or xz stream, and the
// members are written one after the other. The kernel unpacks an initramfs as any number of cpio archives,
// compressed or not, one after the other, each picking up where the previous one ended (the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst: "initramfs is a series of compressed and
// uncompressed cpio archives"); upstream's own extended initramfs is two such members already (the base and
// the extensions archive; talos pkg/imager/extensions). The unpacked tree is the same as from one archive
// holding every entry.
//
// Why (issue 18): one compressed archive of every extension image makes a schematic that changes one
// extension, or only the schematic's ID, compress all of them again (zstd -18 over hundreds of MiB). A
// member depends only on its entries' bytes and the compressor, so it is kept in the intermediate cache
// under the hash of its uncompressed cpio and the compressor (kind "initramfs-member"); the next initramfs
// with the same member copies it. The members are always the same for the same extensions — cold or warm,
// with or without the cache — so the bytes are too.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlib, zstdCompressSync } from "node:zlib";
import { type CpioEntry, createCpio } from "../formats/cpio.ts";
import { type Compression, writeCompressedCpio } from "../tools/compression.ts";
import { toolVersionText } from "../tools/run.ts";
import { xzTool } from "../tools/xz.ts";
import { zstdTool } from "../tools/zstd.ts";
import type { IntermediateCache } from "./intermediate-cache.ts";

/** Bumped when the cpio layout or the compressor's arguments change for the same entries. */
const memberRecipe = 1;
/**
 * zstd members whose data is smaller than this are compressed in-process (Node's zstd, one frame, level and
 * checksum as the CLI's): `zstd -T0 -18` spends about 0.2 s setting up its tables, whatever the input's size.
 */
export const smallMemberBytes = 1024 * 1024;
const copyChunkBytes = 1024 * 1024;

/** A member: its entries, and optionally what determines their data's bytes (then they are not hashed). */
export interface InitramfsMember {
  entries: readonly CpioEntry[];
  /** e.g. `squashfs <key>`: the intermediate cache key of the one file's bytes (extension-images.ts). */
  dataKey?: string;
}

export interface InitramfsMembersOptions {
  compression: Extract<Compression, "zstd" | "xz">;
  /** The compressor's level (upstream: zstd 18, xz 0). */
  level: number;
  /** zstd: "cli" for the multithreaded CLI (upstream's), "zlib" in-process; small members are always in-process. */
  engine?: "zlib" | "cli";
  mtime: number;
  /** Scratch directory for the members taken from the cache. */
  workDir: string;
  intermediateCache?: IntermediateCache;
  signal?: AbortSignal;
}

/** The SHA-256 of the uncompressed cpio of `entries`, streamed. */
async function cpioDigest(entries: readonly CpioEntry[], mtime: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(
    createCpio(entries, { mtime }),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done();
      },
    }),
    { signal },
  );
  return hash.digest("hex");
}

/** The intermediate cache key of one member: its uncompressed cpio and the compressor that made it. */
export function initramfsMemberKey(parts: {
  cpio: string;
  compression: string;
  level: number;
  engine: string;
  tool: string;
}): string {
  const fields = { recipe: memberRecipe, ...parts };
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)));
  return createHash("sha256").update(JSON.stringify(sorted)).digest("hex");
}

/** "buffer": a small member's cpio in memory, compressed in one call (compressSmallZstd). */
type Engine = "buffer" | "zlib" | "cli";

/**
 * A small member's cpio compressed in one call with its size given (one frame, checksummed, at `level`): a
 * zstd stream at level 18 that is not told the size sets up tables for any input, 0.16 s for 3 KB.
 */
async function compressSmallZstd(
  entries: readonly CpioEntry[],
  level: number,
  mtime: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createCpio(entries, { mtime })) {
    signal?.throwIfAborted();
    chunks.push(chunk as Buffer);
  }
  const cpio = Buffer.concat(chunks);
  return zstdCompressSync(cpio, {
    params: { [zlib.ZSTD_c_compressionLevel]: level, [zlib.ZSTD_c_checksumFlag]: 1 },
    pledgedSrcSize: cpio.length,
  });
}

/** The bytes of data the entries carry. */
function dataBytes(entries: readonly CpioEntry[]): number {
  let total = 0;
  for (const entry of entries)
    if (entry.type === "file") total += "content" in entry ? entry.content.length : entry.size;
  return total;
}

/** What names the member's uncompressed cpio: its SHA-256, or (with a data key) the headers and that key. */
async function cpioIdentity(member: InitramfsMember, mtime: number, signal?: AbortSignal): Promise<string> {
  if (member.dataKey === undefined) return `cpio ${await cpioDigest(member.entries, mtime, signal)}`;
  const headers = member.entries.map((e) => ({
    type: e.type,
    path: e.path,
    mode: "mode" in e ? (e.mode ?? null) : null,
    size: dataBytes([e]),
  }));
  const digest = createHash("sha256")
    .update(JSON.stringify({ headers, mtime, data: member.dataKey }))
    .digest("hex");
  return `headers ${digest}`;
}

/**
 * Appends one compressed cpio member per group of entries to `outPath`, in order; empty groups are skipped.
 * Returns how many members came from the intermediate cache.
 */
export async function appendInitramfsMembers(
  groups: readonly InitramfsMember[],
  outPath: string,
  options: InitramfsMembersOptions,
): Promise<{ members: number; hits: number }> {
  const { compression, level, mtime, signal } = options;
  const engineOf = (entries: readonly CpioEntry[]): Engine =>
    compression !== "zstd" ? "cli" : dataBytes(entries) < smallMemberBytes ? "buffer" : (options.engine ?? "zlib");
  const compress = async (entries: readonly CpioEntry[], engine: Engine, path: string, append: boolean) => {
    if (engine === "buffer") {
      await writeFile(path, await compressSmallZstd(entries, level, mtime, signal), { flag: append ? "a" : "w" });
      return;
    }
    await writeCompressedCpio(entries, path, {
      compression,
      level,
      ...(compression === "zstd" ? { engine } : {}),
      append,
      mtime,
      signal,
    });
  };
  const cache = options.intermediateCache;
  // The in-process zstd is part of Node, whose version names it; the CLIs answer --version.
  const toolOf = async (engine: Engine) =>
    engine !== "cli"
      ? `node ${process.versions.zstd ?? process.version}`
      : await toolVersionText(compression === "zstd" ? zstdTool : xzTool, signal);
  let members = 0;
  let hits = 0;
  for (const member of groups) {
    const { entries } = member;
    if (entries.length === 0) continue;
    signal?.throwIfAborted();
    const index = members++;
    const engine = engineOf(entries);
    if (cache === undefined) {
      await compress(entries, engine, outPath, true);
      continue;
    }
    const key = initramfsMemberKey({
      cpio: await cpioIdentity(member, mtime, signal),
      compression,
      level,
      engine,
      tool: await toolOf(engine),
    });
    const memberPath = join(options.workDir, `member-${index}`);
    if (
      await cache.provide(
        "initramfs-member",
        key,
        memberPath,
        (out) => compress(entries, engine, out, false),
        signal,
        // A small member is made in milliseconds: cheaper than the remote's round trips (and signature).
        { localOnly: engine === "buffer" },
      )
    )
      hits++;
    // 1 MiB reads and writes: a member can be hundreds of MiB, and 64 KiB chunks copy it at a third of the speed.
    await pipeline(
      createReadStream(memberPath, { highWaterMark: copyChunkBytes }),
      createWriteStream(outPath, { flags: "a", highWaterMark: copyChunkBytes }),
      { signal },
    );
  }
  return { members, hits };
}
