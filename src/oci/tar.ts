// A deterministic tar writer: the same entries always give the same bytes, so layers built from the same
// inputs have the same digest on every machine.
//   - entries are sorted bytewise by path (UTF-8);
//   - owner is uid/gid 0 with empty user/group names; every entry has one fixed mtime: the `mtime` option,
//     else SOURCE_DATE_EPOCH from the environment, else 0 (1970-01-01);
//   - parent directories are always explicit: every missing ancestor of an entry is added as a directory
//     (mode 0755), so any extractor creates them with a known mode and owner, and a given set of entries
//     yields one tar whether or not the caller listed the directories;
//   - a hardlink group (a file plus links to it) is written with the first path in sort order holding the
//     content and the others linking to it, so a link never precedes its target whichever name was the
//     "original";
//   - long or non-ASCII names use PAX headers (tar-stream does this when ustar cannot hold the name).

import { createReadStream } from "node:fs";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { badRequest, integrity } from "../errors.ts";

export type TarEntry =
  | { type: "file"; path: string; mode?: number; content: Uint8Array }
  /** Content streamed from `sourcePath` on disk; `size` must be its exact length (the tar header needs it). */
  | { type: "file"; path: string; mode?: number; sourcePath: string; size: number }
  | { type: "directory"; path: string; mode?: number }
  | { type: "symlink"; path: string; target: string }
  /** `target` is the path of another file entry in the same tar. */
  | { type: "hardlink"; path: string; target: string };

export interface TarOptions {
  /** Modification time of every entry: a Date or seconds since the epoch. Overrides SOURCE_DATE_EPOCH. */
  mtime?: Date | number;
}

const defaultFileMode = 0o644;
const defaultDirectoryMode = 0o755;
const symlinkMode = 0o777;
const permissionBits = 0o7777;

/** The fixed mtime in seconds: the explicit option, else SOURCE_DATE_EPOCH, else 0. */
export function resolveMtime(option?: Date | number, env: NodeJS.ProcessEnv = process.env): number {
  if (option !== undefined) {
    const seconds = option instanceof Date ? Math.floor(option.getTime() / 1000) : option;
    if (!Number.isSafeInteger(seconds) || seconds < 0)
      throw badRequest(`invalid tar mtime ${String(option)}: must be a non-negative whole number of seconds`);
    return seconds;
  }
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv === undefined || fromEnv === "") return 0;
  if (!/^[0-9]{1,12}$/.test(fromEnv))
    throw badRequest(`invalid SOURCE_DATE_EPOCH "${fromEnv}": must be a whole number of seconds`);
  return Number(fromEnv);
}

/** Normalizes an entry path to the relative, slash-separated form stored in the tar; rejects escapes. */
export function normalizeEntryPath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw badRequest(`invalid tar entry path "${path}": names no file`);
  if (parts.includes("..")) throw badRequest(`invalid tar entry path "${path}": contains a ".." component`);
  if (path.includes("\0")) throw badRequest(`invalid tar entry path "${path}": contains a NUL byte`);
  return parts.join("/");
}

const compareBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

type Planned =
  | { type: "file"; path: string; mode: number; content: Uint8Array }
  | { type: "file"; path: string; mode: number; sourcePath: string; size: number }
  | { type: "directory"; path: string; mode: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "hardlink"; path: string; target: string; mode: number };

/** Normalizes, completes (implied parents, hardlink groups) and sorts the entries. Exported for tests. */
export function planTarEntries(entries: Iterable<TarEntry>): Planned[] {
  const byPath = new Map<string, Planned>();
  for (const entry of entries) {
    const path = normalizeEntryPath(entry.path);
    if (byPath.has(path)) throw badRequest(`duplicate tar entry path "${path}"`);
    let planned: Planned;
    switch (entry.type) {
      case "file":
        planned =
          "content" in entry
            ? { type: "file", path, mode: (entry.mode ?? defaultFileMode) & permissionBits, content: entry.content }
            : {
                type: "file",
                path,
                mode: (entry.mode ?? defaultFileMode) & permissionBits,
                sourcePath: entry.sourcePath,
                size: entry.size,
              };
        if ("size" in planned && (!Number.isSafeInteger(planned.size) || planned.size < 0))
          throw badRequest(`tar entry "${path}": invalid size ${planned.size}`);
        break;
      case "directory":
        planned = { type: "directory", path, mode: (entry.mode ?? defaultDirectoryMode) & permissionBits };
        break;
      case "symlink":
        if (entry.target === "" || entry.target.includes("\0"))
          throw badRequest(`tar entry "${path}": symlink target is empty or contains NUL`);
        planned = { type: "symlink", path, target: entry.target };
        break;
      case "hardlink":
        planned = { type: "hardlink", path, target: normalizeEntryPath(entry.target), mode: defaultFileMode };
        break;
    }
    byPath.set(path, planned);
  }

  // Every ancestor must be a directory; add the missing ones.
  for (const path of [...byPath.keys()]) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { type: "directory", path: parent, mode: defaultDirectoryMode });
      else if (existing.type !== "directory")
        throw badRequest(`tar entry "${path}": its parent "${parent}" is a ${existing.type}, not a directory`);
    }
  }

  regroupHardlinks(byPath);
  return [...byPath.values()].sort((a, b) => compareBytes(a.path, b.path));
}

/** Makes the first path (in sort order) of each hardlink group the file, and the others links to it. */
function regroupHardlinks(byPath: Map<string, Planned>): void {
  const rootOf = (link: string): string => {
    const seen = new Set<string>();
    let current = link;
    for (;;) {
      const entry = byPath.get(current);
      if (entry === undefined || (entry.type !== "file" && entry.type !== "hardlink"))
        throw badRequest(`tar entry "${link}": hardlink target "${current}" is not a file entry of this tar`);
      if (entry.type === "file") return current;
      if (seen.has(current)) throw badRequest(`tar entry "${link}": hardlinks form a cycle`);
      seen.add(current);
      current = entry.target;
    }
  };
  const groups = new Map<string, string[]>();
  for (const entry of byPath.values()) {
    if (entry.type !== "hardlink") continue;
    const root = rootOf(entry.path);
    const members = groups.get(root) ?? [root];
    members.push(entry.path);
    groups.set(root, members);
  }
  for (const [root, members] of groups) {
    const first = members.sort(compareBytes)[0] as string;
    const file = byPath.get(root) as Planned & { type: "file" };
    byPath.set(first, { ...file, path: first });
    // A hardlink's header carries the file's mode so listings agree with what extractors create.
    for (const member of members)
      if (member !== first) byPath.set(member, { type: "hardlink", path: member, target: first, mode: file.mode });
  }
}

/** Fails when the streamed file turns out to have another size than announced. */
class ExactSize extends Transform {
  private seen = 0;
  private readonly size: number;
  private readonly path: string;
  constructor(size: number, path: string) {
    super();
    this.size = size;
    this.path = path;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size)
      callback(integrity(`tar entry "${this.path}": source file is larger than ${this.size} bytes`));
    else callback(null, chunk);
  }
  override _flush(callback: TransformCallback): void {
    if (this.seen !== this.size)
      callback(integrity(`tar entry "${this.path}": source file has ${this.seen} bytes, expected ${this.size}`));
    else callback();
  }
}

/**
 * The mode handed to tar-stream. It replaces a mode of 0 by its default (0644/0755), so permission bits 0 (as
 * Talos writes its installer artifacts) go with a file-type bit set, which its header encoding masks off.
 */
function packMode(mode: number, type: "file" | "directory"): number {
  if (mode !== 0) return mode;
  return type === "file" ? 0o100000 : 0o040000;
}

function writeEntry(pack: tar.Pack, entry: Planned, mtime: Date): Promise<void> {
  const base = { uid: 0, gid: 0, uname: "", gname: "", mtime };
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    switch (entry.type) {
      case "directory":
        pack.entry(
          { ...base, name: `${entry.path}/`, type: "directory", mode: packMode(entry.mode, "directory") },
          done,
        );
        return;
      case "symlink":
        pack.entry({ ...base, name: entry.path, type: "symlink", mode: symlinkMode, linkname: entry.target }, done);
        return;
      case "hardlink":
        pack.entry(
          { ...base, name: entry.path, type: "link", mode: packMode(entry.mode, "file"), linkname: entry.target },
          done,
        );
        return;
      case "file": {
        if ("content" in entry) {
          pack.entry(
            { ...base, name: entry.path, type: "file", mode: packMode(entry.mode, "file") },
            entry.content,
            done,
          );
          return;
        }
        const sink = pack.entry(
          { ...base, name: entry.path, type: "file", mode: packMode(entry.mode, "file"), size: entry.size },
          (err) => {
            if (err) reject(err);
          },
        );
        pipeline(createReadStream(entry.sourcePath), new ExactSize(entry.size, entry.path), sink as never).then(
          () => resolve(),
          (err: unknown) => reject(err),
        );
      }
    }
  });
}

/**
 * Writes the entries as a deterministic tar stream (see the top of this file for the rules). File
 * contents from `sourcePath` are streamed one at a time; errors (bad entries, a source file of the wrong
 * size) fail the returned stream.
 */
export function createTar(entries: Iterable<TarEntry>, options?: TarOptions): Readable {
  const planned = planTarEntries(entries);
  const mtime = new Date(resolveMtime(options?.mtime) * 1000);
  const pack = tar.pack();
  const out = Readable.from(pack, { objectMode: false });
  (async () => {
    for (const entry of planned) await writeEntry(pack, entry, mtime);
    pack.finalize();
  })().catch((err: unknown) => {
    if (!pack.destroying) pack.destroy(err instanceof Error ? err : new Error(String(err)));
  });
  return out;
}
