// The "newc" cpio format (magic "070701"), the only one the Linux kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Each entry is a 110-byte ASCII header of
// thirteen 8-digit hex fields, the NUL-terminated name padded to a multiple of 4 bytes (header included),
// then the data padded the same way; the archive ends with an entry named "TRAILER!!!".
//
// The writer is deterministic: the same entries always give the same bytes.
//   - entries are sorted bytewise by path (UTF-8), which also puts every directory before what it holds —
//     the kernel creates files with a plain open(), so a missing parent would lose the file;
//   - every missing ancestor is added as a directory (0755) unless `impliedParents: false`;
//   - uid/gid 0, one mtime for all (option, else SOURCE_DATE_EPOCH, else 0), inode numbers 1, 2, … in
//     output order, nlink 2 for directories and 1 otherwise, device numbers 0 except for device nodes.
// The kernel forgets inode numbers at each trailer, so concatenated archives may reuse them.

import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { badRequest, integrity } from "../errors.ts";

export type CpioEntry =
  | { type: "file"; path: string; mode?: number; content: Uint8Array }
  /** Content streamed from `sourcePath`; `size` must be its exact length (the header carries it). */
  | { type: "file"; path: string; mode?: number; sourcePath: string; size: number }
  | { type: "directory"; path: string; mode?: number }
  | { type: "symlink"; path: string; target: string }
  /** A device node, e.g. /dev/console (character 5:1). */
  | { type: "chardev" | "blockdev"; path: string; mode?: number; major: number; minor: number };

export interface CpioOptions {
  /** Modification time of every entry: a Date or seconds since the epoch. Overrides SOURCE_DATE_EPOCH. */
  mtime?: Date | number;
  /** Add a directory entry for every missing ancestor (default true). */
  impliedParents?: boolean;
}

export const newcMagic = "070701";
export const cpioTrailerName = "TRAILER!!!";
const headerSize = 110;
const maxFieldValue = 0xffffffff;
/** The kernel refuses names longer than PATH_MAX. */
const maxNameBytes = 4096;

const fileTypeBits = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  chardev: 0o020000,
  blockdev: 0o060000,
} as const;
export type CpioEntryType = keyof typeof fileTypeBits;
const fileTypeMask = 0o170000;
const permissionBits = 0o7777;

/** The fixed mtime in seconds: the explicit option, else SOURCE_DATE_EPOCH, else 0. */
export function cpioMtime(option?: Date | number, env: NodeJS.ProcessEnv = process.env): number {
  if (option !== undefined) {
    const seconds = option instanceof Date ? Math.floor(option.getTime() / 1000) : option;
    if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > maxFieldValue)
      throw badRequest(`invalid cpio mtime ${String(option)}: must be whole seconds between 0 and 2^32-1`);
    return seconds;
  }
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv === undefined || fromEnv === "") return 0;
  if (!/^[0-9]{1,10}$/.test(fromEnv) || Number(fromEnv) > maxFieldValue)
    throw badRequest(`invalid SOURCE_DATE_EPOCH "${fromEnv}": must be whole seconds below 2^32`);
  return Number(fromEnv);
}

/** The relative, slash-separated name stored in the archive ("./a//b/" → "a/b"); rejects escapes. */
export function normalizeCpioPath(path: string): string {
  if (path.includes("\0")) throw badRequest(`invalid cpio entry path "${path}": contains a NUL byte`);
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw badRequest(`invalid cpio entry path "${path}": names no file`);
  if (parts.includes("..")) throw badRequest(`invalid cpio entry path "${path}": contains a ".." component`);
  const normalized = parts.join("/");
  if (Buffer.byteLength(normalized) >= maxNameBytes) throw badRequest(`cpio entry path too long: "${path}"`);
  return normalized;
}

type Planned = CpioEntry & { mode: number };

const compareBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

function checkUint32(value: number, what: string, path: string): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > maxFieldValue)
    throw badRequest(`cpio entry "${path}": invalid ${what} ${value}`);
  return value;
}

/** Normalizes, completes (implied parents) and sorts the entries. Exported for tests. */
export function planCpioEntries(entries: Iterable<CpioEntry>, impliedParents = true): Planned[] {
  const byPath = new Map<string, Planned>();
  for (const entry of entries) {
    const path = normalizeCpioPath(entry.path);
    if (byPath.has(path)) throw badRequest(`duplicate cpio entry path "${path}"`);
    const mode =
      entry.type === "symlink" ? 0o777 : (entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644)) & permissionBits;
    if (entry.type === "file" && "size" in entry) checkUint32(entry.size, "size", path);
    if (entry.type === "file" && "content" in entry) checkUint32(entry.content.length, "size", path);
    if (entry.type === "symlink" && (entry.target === "" || entry.target.includes("\0")))
      throw badRequest(`cpio entry "${path}": symlink target is empty or contains NUL`);
    if (entry.type === "chardev" || entry.type === "blockdev") {
      checkUint32(entry.major, "device major", path);
      checkUint32(entry.minor, "device minor", path);
    }
    byPath.set(path, { ...entry, path, mode } as Planned);
  }
  if (impliedParents)
    for (const path of [...byPath.keys()]) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join("/");
        const existing = byPath.get(parent);
        if (existing === undefined) byPath.set(parent, { type: "directory", path: parent, mode: 0o755 });
        else if (existing.type !== "directory")
          throw badRequest(`cpio entry "${path}": its parent "${parent}" is a ${existing.type}, not a directory`);
      }
    }
  return [...byPath.values()].sort((a, b) => compareBytes(a.path, b.path));
}

const hex8 = (value: number) => value.toString(16).toUpperCase().padStart(8, "0");
const padding = (length: number) => Buffer.alloc((4 - (length % 4)) % 4);

interface HeaderFields {
  ino: number;
  mode: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
}

/** One header plus its padded name. */
export function cpioHeader(fields: HeaderFields): Buffer {
  const name = Buffer.from(`${fields.name}\0`, "utf8");
  const values = [
    fields.ino,
    fields.mode,
    0, // uid
    0, // gid
    fields.nlink,
    fields.mtime,
    fields.size,
    0, // devmajor
    0, // devminor
    fields.rdevMajor,
    fields.rdevMinor,
    name.length,
    0, // check: always 0 in "070701" archives
  ];
  const header = Buffer.from(newcMagic + values.map(hex8).join(""), "ascii");
  return Buffer.concat([header, name, padding(headerSize + name.length)]);
}

/** The bytes that end an archive. */
export function cpioTrailer(): Buffer {
  return cpioHeader({
    ino: 0,
    mode: 0,
    nlink: 1,
    mtime: 0,
    size: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    name: cpioTrailerName,
  });
}

async function* streamExactly(sourcePath: string, size: number, path: string): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of createReadStream(sourcePath) as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > size) throw integrity(`cpio entry "${path}": source file is larger than ${size} bytes`);
    yield chunk;
  }
  if (seen !== size) throw integrity(`cpio entry "${path}": source file has ${seen} bytes, expected ${size}`);
}

async function* generateCpio(planned: Planned[], mtime: number): AsyncGenerator<Buffer> {
  let ino = 0;
  for (const entry of planned) {
    ino++;
    const base = { ino, mtime, name: entry.path, rdevMajor: 0, rdevMinor: 0 };
    const mode = fileTypeBits[entry.type] | entry.mode;
    switch (entry.type) {
      case "directory":
        yield cpioHeader({ ...base, mode, nlink: 2, size: 0 });
        break;
      case "symlink": {
        const target = Buffer.from(entry.target, "utf8");
        yield cpioHeader({ ...base, mode, nlink: 1, size: target.length });
        yield Buffer.concat([target, padding(target.length)]);
        break;
      }
      case "chardev":
      case "blockdev":
        yield cpioHeader({ ...base, mode, nlink: 1, size: 0, rdevMajor: entry.major, rdevMinor: entry.minor });
        break;
      case "file":
        if ("content" in entry) {
          yield cpioHeader({ ...base, mode, nlink: 1, size: entry.content.length });
          yield Buffer.from(entry.content);
          yield padding(entry.content.length);
        } else {
          yield cpioHeader({ ...base, mode, nlink: 1, size: entry.size });
          yield* streamExactly(entry.sourcePath, entry.size, entry.path);
          yield padding(entry.size);
        }
        break;
    }
  }
  yield cpioTrailer();
}

/**
 * Writes the entries as a deterministic newc cpio stream (rules at the top of this file). File contents
 * from `sourcePath` are streamed one at a time; bad entries throw here, a source file of the wrong size
 * fails the stream.
 */
export function createCpio(entries: Iterable<CpioEntry>, options?: CpioOptions): Readable {
  const planned = planCpioEntries(entries, options?.impliedParents ?? true);
  const mtime = cpioMtime(options?.mtime);
  return Readable.from(generateCpio(planned, mtime), { objectMode: false });
}

/**
 * The entries for everything under `root` (not `root` itself), named relative to it under `prefix`:
 * directories, regular files (streamed from disk; permission bits kept), symlinks. Anything else is
 * refused: initramfs trees are built by us and hold no device nodes.
 */
export async function cpioEntriesFromDirectory(root: string, prefix = ""): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = [];
  async function walk(dir: string, relative: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const path = relative === "" ? name : `${relative}/${name}`;
      const info = await lstat(full);
      const mode = info.mode & permissionBits;
      if (info.isDirectory()) {
        entries.push({ type: "directory", path, mode });
        await walk(full, path);
      } else if (info.isFile()) entries.push({ type: "file", path, mode, sourcePath: full, size: info.size });
      else if (info.isSymbolicLink()) entries.push({ type: "symlink", path, target: await readlink(full) });
      else throw badRequest(`cannot put "${full}" in a cpio archive: not a file, directory or symlink`);
    }
  }
  await walk(root, prefix.replace(/^\/+|\/+$/g, ""));
  return entries;
}

// ---------------------------------------------------------------------------------------------------------
// Reader

export interface CpioRecord {
  path: string;
  type: CpioEntryType;
  /** Permission bits only (the type is in `type`). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  ino: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  /** Symlink target. */
  target?: string;
  /**
   * The data of a regular file. Consume it before asking for the next record, or it is skipped.
   * Only valid until the iteration moves on.
   */
  data: AsyncIterable<Buffer>;
}

export interface CpioReadLimits {
  /** Largest name (default 4096 bytes, the kernel's PATH_MAX). */
  maxNameBytes?: number;
  /** Largest symlink target (default 4096 bytes). */
  maxTargetBytes?: number;
  /** Most entries in one archive (default 1,000,000). */
  maxEntries?: number;
}

/** Pulls exact byte counts out of a chunked stream. */
export class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Buffers at least `n` bytes if the stream has them; returns how many are buffered. */
  async fill(n: number): Promise<number> {
    while (this.buffered.length < n && !this.ended) {
      const next = await this.iterator.next();
      if (next.done) this.ended = true;
      else
        this.buffered =
          this.buffered.length === 0 ? Buffer.from(next.value) : Buffer.concat([this.buffered, next.value]);
    }
    return this.buffered.length;
  }

  /** The next `n` bytes without consuming them (fewer at the end of the stream). */
  async peek(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.buffered.subarray(0, n);
  }

  async read(n: number, what: string): Promise<Buffer> {
    if ((await this.fill(n)) < n) throw integrity(`truncated cpio archive: end of data inside ${what}`);
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    this.offset += n;
    return out;
  }

  /** Yields the next `n` bytes as they arrive, without buffering them all. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered.length === 0 && (await this.fill(1)) === 0)
        throw integrity(`truncated cpio archive: end of data inside ${what}`);
      const take = Math.min(left, this.buffered.length);
      const out = this.buffered.subarray(0, take);
      this.buffered = this.buffered.subarray(take);
      this.offset += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.stream(n, what));
  }

  /** Everything not consumed yet, as a stream (the reader must not be used afterwards). */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.buffered.length > 0) yield this.buffered;
    this.buffered = Buffer.alloc(0);
    if (this.ended) return;
    for (;;) {
      const next = await this.iterator.next();
      if (next.done) return;
      this.offset += next.value.length;
      yield next.value;
    }
  }

  /** True when no bytes are left. */
  async atEnd(): Promise<boolean> {
    return (await this.fill(1)) === 0;
  }
}

function parseHeader(header: Buffer, offset: number): number[] {
  const magic = header.toString("ascii", 0, 6);
  if (magic !== newcMagic && magic !== "070702")
    throw integrity(`not a newc cpio archive at byte ${offset}: magic ${JSON.stringify(magic)}`);
  const fields: number[] = [];
  for (let i = 0; i < 13; i++) {
    const text = header.toString("ascii", 6 + i * 8, 14 + i * 8);
    if (!/^[0-9a-fA-F]{8}$/.test(text)) throw integrity(`corrupt cpio header at byte ${offset}: field ${i} "${text}"`);
    fields.push(Number.parseInt(text, 16));
  }
  return fields;
}

async function* emptyData(): AsyncGenerator<Buffer> {}

const typeByBits = new Map<number, CpioEntryType>(
  Object.entries(fileTypeBits).map(([type, bits]) => [bits, type as CpioEntryType]),
);

/**
 * Reads ONE newc archive from `reader` up to and including its trailer, yielding each entry. Other file
 * types (fifos, sockets) and names that escape (`..`, absolute after normalization) are refused, since
 * callers extract or inspect what this yields.
 */
export async function* readCpioArchive(reader: ByteReader, limits?: CpioReadLimits): AsyncGenerator<CpioRecord> {
  const maxName = limits?.maxNameBytes ?? maxNameBytes;
  const maxTarget = limits?.maxTargetBytes ?? 4096;
  const maxEntries = limits?.maxEntries ?? 1_000_000;
  for (let count = 0; ; count++) {
    if (count > maxEntries) throw integrity(`cpio archive has more than ${maxEntries} entries`);
    const at = reader.offset;
    const fields = parseHeader(await reader.read(headerSize, "a header"), at);
    const [ino, rawMode, uid, gid, nlink, mtime, size, , , rdevMajor, rdevMinor, nameSize] = fields as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (nameSize < 1 || nameSize > maxName + 1) throw integrity(`cpio header at byte ${at}: bad name size ${nameSize}`);
    const nameBytes = await reader.read(nameSize, "a name");
    await reader.read((4 - ((headerSize + nameSize) % 4)) % 4, "name padding");
    if (nameBytes[nameSize - 1] !== 0) throw integrity(`cpio header at byte ${at}: name is not NUL-terminated`);
    const rawName = nameBytes.toString("utf8", 0, nameSize - 1);
    if (rawName === cpioTrailerName) {
      await reader.skip(size + ((4 - (size % 4)) % 4), "trailer data");
      return;
    }
    const type = typeByBits.get(rawMode & fileTypeMask);
    if (type === undefined)
      throw integrity(`cpio entry "${rawName}": unsupported file type 0o${(rawMode & fileTypeMask).toString(8)}`);
    const path = rawName === "." ? "." : normalizeCpioPath(rawName);
    const dataPadding = (4 - (size % 4)) % 4;
    const record: CpioRecord = {
      path,
      type,
      mode: rawMode & permissionBits,
      uid,
      gid,
      nlink,
      mtime,
      ino,
      size,
      rdevMajor,
      rdevMinor,
      data: emptyData(),
    };
    if (type === "symlink") {
      if (size === 0 || size > maxTarget) throw integrity(`cpio entry "${path}": bad symlink target size ${size}`);
      record.target = (await reader.read(size, "a symlink target")).toString("utf8");
      await reader.read(dataPadding, "data padding");
      yield record;
      continue;
    }
    if (type !== "file" && size !== 0) throw integrity(`cpio entry "${path}": a ${type} with ${size} bytes of data`);
    const dataEnd = reader.offset + size;
    record.data = reader.stream(size, `the data of "${path}"`);
    yield record;
    // Skip whatever the caller left unread (all of it, or the rest after an early break).
    await reader.skip(dataEnd - reader.offset, `the data of "${path}"`);
    await reader.read(dataPadding, "data padding");
  }
}

/**
 * Reads every archive in an uncompressed stream of concatenated newc archives (zero padding between them
 * is skipped, as the kernel does).
 */
export async function* readCpio(
  source: AsyncIterable<Buffer | Uint8Array>,
  limits?: CpioReadLimits,
): AsyncGenerator<CpioRecord> {
  const reader = new ByteReader(source);
  for (;;) {
    yield* readCpioArchive(reader, limits);
    if (!(await skipZeros(reader))) return;
  }
}

/** Skips NUL padding; returns false at the end of the stream. */
export async function skipZeros(reader: ByteReader): Promise<boolean> {
  for (;;) {
    const head = await reader.peek(512);
    if (head.length === 0) return false;
    const firstNonZero = head.findIndex((b) => b !== 0);
    if (firstNonZero === -1) await reader.read(head.length, "padding");
    else {
      await reader.read(firstNonZero, "padding");
      return true;
    }
  }
}

/** Collects a record's data into memory (for small files and tests), refusing more than `maxBytes`. */
export async function readRecordData(record: CpioRecord, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  if (record.size > maxBytes) throw integrity(`cpio entry "${record.path}" is larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  for await (const chunk of record.data) chunks.push(chunk);
  return Buffer.concat(chunks);
}
