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
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type CpioEntry, createCpio } from "../formats/cpio.ts";
import { type Compression, writeCompressedCpio } from "../tools/compression.ts";
import { toolVersionText } from "../tools/run.ts";
import { xzTool } from "../tools/xz.ts";
import { zstdTool } from "../tools/zstd.ts";
import type { IntermediateCache } from "./intermediate-cache.ts";

/** Bumped when the cpio layout or the compressor's arguments change for the same entries. */
const memberRecipe = 1;

export interface InitramfsMembersOptions {
  compression: Extract<Compression, "zstd" | "xz">;
  /** The compressor's level (upstream: zstd 18, xz 0). */
  level: number;
  /** zstd: "cli" for the multithreaded CLI (upstream's), "zlib" in-process. */
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

/**
 * Appends one compressed cpio member per group of entries to `outPath`, in order; empty groups are skipped.
 * Returns how many members came from the intermediate cache.
 */
export async function appendInitramfsMembers(
  groups: readonly (readonly CpioEntry[])[],
  outPath: string,
  options: InitramfsMembersOptions,
): Promise<{ members: number; hits: number }> {
  const { compression, level, mtime, signal } = options;
  const engine = compression === "zstd" ? (options.engine ?? "zlib") : "cli";
  const compress = (entries: readonly CpioEntry[], path: string, append: boolean) =>
    writeCompressedCpio(entries, path, {
      compression,
      level,
      ...(compression === "zstd" ? { engine } : {}),
      append,
      mtime,
      signal,
    });
  const cache = options.intermediateCache;
  // The in-process zstd is part of Node, whose version names it; the CLIs answer --version.
  const tool =
    cache === undefined
      ? undefined
      : engine === "zlib"
        ? `node ${process.versions.zstd ?? process.version}`
        : await toolVersionText(compression === "zstd" ? zstdTool : xzTool, signal);
  let members = 0;
  let hits = 0;
  for (const entries of groups) {
    if (entries.length === 0) continue;
    signal?.throwIfAborted();
    const index = members++;
    if (cache === undefined || tool === undefined) {
      await compress(entries, outPath, true);
      continue;
    }
    const key = initramfsMemberKey({
      cpio: await cpioDigest(entries, mtime, signal),
      compression,
      level,
      engine,
      tool,
    });
    const member = join(options.workDir, `member-${index}`);
    if (
      await cache.provide(
        "initramfs-member",
        key,
        member,
        (out) => compress(entries, out, false).then(() => {}),
        signal,
      )
    )
      hits++;
    await pipeline(createReadStream(member), createWriteStream(outPath, { flags: "a" }), { signal });
  }
  return { members, hits };
}
