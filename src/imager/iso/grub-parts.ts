// The GRUB part of GRUB and hybrid ISOs (issue 18, docs/caches.md "The intermediate cache").
// grub-mkrescue does two jobs: it stages GRUB's files in a temp dir (every module of each platform, xz-compressed
// with --compress=xz; the El Torito core image; fonts and locales; efi.img with the EFI core images) and then
// runs xorriso on that dir and ours with its own arguments (the El Torito image, boot_hybrid.img as the MBR,
// efi.img, HFS+ for Macs…). The first costs 5–10 s and is the same for every schematic of a GRUB version; the
// second about 1 s. They are split here: grub-mkrescue runs with `--xorriso=` a small wrapper that records the
// arguments it is given and copies the staged dir instead of running xorriso; then xorriso runs on that copy and
// our tree with the recorded arguments (temp dir, tree and output put back). Every GRUB and hybrid ISO is made
// this way, with or without the intermediate cache, so a warm ISO is a cold one's bytes by construction.
// Not chosen: making the parts with grub-mkimage ourselves. Debian's grub-mkrescue (2.06) decides which
// platforms, modules, fonts and xorriso options go in, and the efi.img layout; the recording takes whatever the
// installed grub-mkrescue does instead of following it release by release.
//
// Kept as one tar in the intermediate cache (kind "grub-iso"), keyed by grub-mkrescue's and xorriso's versions,
// the content of each platform directory it reads, its arguments and the environment given (SOURCE_DATE_EPOCH dates efi.img).

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { grubLibDir, grubMkrescue, grubMkrescueVersion } from "../../tools/grub.ts";
import { findTool, toolMissingError } from "../../tools/run.ts";
import { tarDirectory, untarDirectory } from "../../tools/tar.ts";
import { xorrisofs, xorrisoTool, xorrisoVersion } from "../../tools/xorriso.ts";
import type { IntermediateCache } from "../intermediate-cache.ts";

/** Bumped when what is recorded, or how, changes. */
const recipe = 1;

const placeholder = {
  output: "@OUTPUT@",
  parts: "@GRUB_PARTS@",
  tree: "@TREE@",
  modificationDate: "@MODIFICATION_DATE@",
} as const;

/** How many times grub-mkrescue ran in this process (a warm ISO runs it no more). */
export const grubPartsStats = { captures: 0 };

export interface GrubIsoOptions {
  out: string;
  /** grub-mkrescue's own options: --compress=xz, --directory=… */
  mkrescueArgs: readonly string[];
  /** What grub-mkrescue passes on to xorriso after its own arguments: our tree, options, "--" commands. */
  xorrisoArgs: readonly string[];
  /** The environment of both tools (SOURCE_DATE_EPOCH, GRUB_FAT_SERIAL_NUMBER). */
  env: Record<string, string>;
  scratchDir: string;
  intermediateCache?: IntermediateCache | undefined;
  signal?: AbortSignal | undefined;
}

// Run by grub-mkrescue in place of xorriso: records its argv and the staged dir (the argument after -r). Its probes
// (`-as mkisofs -help`, which options this xorriso has) go to the real xorriso. mkdir fails on a second
// recording, so a grub-mkrescue that ran xorriso twice would be noticed.
const wrapperScript = `#!/bin/sh
set -e
if [ "$#" = 3 ] && [ "$3" = "-help" ]; then exec "$GRUB_PARTS_XORRISO" "$@"; fi
mkdir "$GRUB_PARTS_RECORD"
printf '%s\\0' "$@" > "$GRUB_PARTS_RECORD/argv"
staged=
prev=
for arg in "$@"; do
  if [ "$prev" = "-r" ]; then staged=$arg; fi
  prev=$arg
done
[ -n "$staged" ] && [ -d "$staged" ]
cp -a "$staged" "$GRUB_PARTS_RECORD/tree"
`;

/** Runs grub-mkrescue, recording into `dest` (new): `args.json` (with placeholders) and `tree/`. */
async function recordGrubParts(options: GrubIsoOptions, dest: string): Promise<void> {
  const work = await mkdtemp(join(options.scratchDir, "grub-mkrescue-"));
  try {
    const wrapper = join(work, "xorriso");
    await writeFile(wrapper, wrapperScript, { mode: 0o755 });
    const marker = join(work, "tree");
    await mkdir(marker);
    const output = join(work, "out.iso");
    const record = join(work, "record");
    await grubMkrescue([...options.mkrescueArgs, `--xorriso=${wrapper}`, `--output=${output}`, marker], {
      env: { ...options.env, TMPDIR: work, GRUB_PARTS_RECORD: record, GRUB_PARTS_XORRISO: xorrisoPath() },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    grubPartsStats.captures++;
    const argv = (await readFile(join(record, "argv"), "utf8")).split("\0");
    argv.pop();
    if (argv[0] !== "-as" || argv[1] !== "mkisofs")
      throw new Error(`grub-mkrescue ran xorriso as "${argv.slice(0, 2).join(" ")}", not "-as mkisofs"`);
    const args = argv.slice(2);
    const staged = args[args.indexOf("-r") + 1];
    if (args.filter((a) => a === marker).length !== 1 || args[args.indexOf("-o") + 1] !== output || !staged)
      throw new Error(`grub-mkrescue's xorriso arguments are not the expected ones: ${args.join(" ")}`);
    const recorded = args.map((arg) => {
      if (arg === output) return placeholder.output;
      if (arg === staged) return placeholder.parts;
      if (arg === marker) return placeholder.tree;
      if (arg.startsWith("--modification-date=")) return placeholder.modificationDate;
      if (arg.includes(staged) || arg.includes(work))
        throw new Error(`grub-mkrescue passed xorriso a temporary path that cannot be recorded: ${arg}`);
      return arg;
    });
    await mkdir(dest);
    await rename(join(record, "tree"), join(dest, "tree"));
    await writeFile(join(dest, "args.json"), `${JSON.stringify(recorded)}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function xorrisoPath(): string {
  const path = findTool(xorrisoTool);
  if (path === undefined) throw toolMissingError(xorrisoTool);
  return path;
}

const dirDigests = new Map<string, Promise<string>>();

/** A digest of every file under `dir` (names and contents), memoized while sizes, dates and inodes stay. */
async function directoryDigest(dir: string): Promise<string> {
  const files: string[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const entry of (await readdir(at, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push(path);
    }
  };
  await walk(dir);
  const stats = await Promise.all(files.map(async (f) => stat(f)));
  const signature = JSON.stringify([dir, files.map((f, i) => [f, stats[i]?.size, stats[i]?.mtimeMs, stats[i]?.ino])]);
  let digest = dirDigests.get(signature);
  if (digest === undefined) {
    digest = (async () => {
      const hash = createHash("sha256");
      for (const file of files) {
        hash.update(`${relative(dir, file)}\0`);
        const fileHash = createHash("sha256");
        for await (const chunk of createReadStream(file)) fileHash.update(chunk as Buffer);
        hash.update(`${fileHash.digest("hex")}\n`);
      }
      return hash.digest("hex");
    })();
    dirDigests.set(signature, digest);
    digest.catch(() => dirDigests.delete(signature));
  }
  return await digest;
}

/** The platform directories grub-mkrescue reads: --directory's, else each one installed under /usr/lib/grub. */
async function platformDirectories(mkrescueArgs: readonly string[]): Promise<string[]> {
  const given = mkrescueArgs.filter((a) => a.startsWith("--directory=")).map((a) => a.slice("--directory=".length));
  if (given.length > 0) return given;
  const dirs: string[] = [];
  for (const name of (await readdir(grubLibDir)).sort()) {
    const dir = join(grubLibDir, name);
    if ((await stat(join(dir, "moddep.lst")).catch(() => undefined))?.isFile()) dirs.push(dir);
  }
  return dirs;
}

export async function grubPartsKey(options: Pick<GrubIsoOptions, "mkrescueArgs" | "env">): Promise<string> {
  const platforms: [string, string][] = [];
  for (const dir of await platformDirectories(options.mkrescueArgs)) platforms.push([dir, await directoryDigest(dir)]);
  const env = Object.entries(options.env).sort(([a], [b]) => (a < b ? -1 : 1));
  // xorriso's version too: grub-mkrescue asks it which options it has.
  const described = {
    recipe,
    grubMkrescue: await grubMkrescueVersion(),
    xorriso: await xorrisoVersion(),
    args: options.mkrescueArgs,
    env,
    platforms,
  };
  return createHash("sha256").update(JSON.stringify(described)).digest("hex");
}

/** The parts at `dest` (new): taken from the intermediate cache or recorded into it, else recorded there. */
async function grubParts(options: GrubIsoOptions, dest: string): Promise<void> {
  const cache = options.intermediateCache;
  if (cache === undefined) return await recordGrubParts(options, dest);
  const tar = `${dest}.tar`;
  await cache.provide(
    "grub-iso",
    await grubPartsKey(options),
    tar,
    async (out) => {
      const work = await mkdtemp(join(options.scratchDir, "grub-parts-"));
      try {
        await recordGrubParts(options, join(work, "parts"));
        await tarDirectory(join(work, "parts"), out, options.signal === undefined ? {} : { signal: options.signal });
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
    options.signal,
  );
  await mkdir(dest);
  await untarDirectory(tar, dest, options.signal === undefined ? {} : { signal: options.signal });
  await rm(tar, { force: true });
}

function readRecordedArgs(text: string): string[] {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string"))
    throw new Error("GRUB ISO parts: args.json is not a list of strings");
  return parsed;
}

/** grub-mkrescue's date format for --modification-date (UTC, hundredths 00). */
function modificationDateNow(): string {
  return `${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}00`;
}

/** An ISO as `grub-mkrescue <mkrescueArgs> --output=<out> <xorrisoArgs>` makes it. */
export async function buildIsoWithGrub(options: GrubIsoOptions): Promise<void> {
  const parts = await mkdtemp(join(options.scratchDir, "grub-parts-"));
  try {
    const dest = join(parts, "parts");
    await grubParts(options, dest);
    const recorded = readRecordedArgs(await readFile(join(dest, "args.json"), "utf8"));
    const args = recorded.flatMap((arg) => {
      if (arg === placeholder.output) return [options.out];
      if (arg === placeholder.parts) return [join(dest, "tree")];
      if (arg === placeholder.tree) return [...options.xorrisoArgs];
      if (arg === placeholder.modificationDate) return [`--modification-date=${modificationDateNow()}`];
      return [arg];
    });
    await xorrisofs(args, { env: options.env, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  } finally {
    await rm(parts, { recursive: true, force: true });
  }
}
