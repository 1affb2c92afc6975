// The schematic journal: how a POST /schematics on the embedded store answers after one durable write instead of
// five (issue 18, "schematic POST p99 < 5 ms"). Storing a schematic in the repository is five atomic file
// writes (layer, config, their links, manifest, its link, tag), each fsynced with its directory: about 1.3 ms
// each on this machine's disk. The journal is one append-only file in the data directory; a create appends one
// line (`{"id":…,"yaml":…}`) and waits for its fdatasync, and the schematic is then written to the repository
// in the background (schematics.ts SchematicService).
//
// - Group commit: appends that arrive while a sync is under way are written and synced together by the next
//   one, so a burst costs one sync per round, not one per request.
// - Replay: at start, every line is read back; each schematic not in the repository is stored there before
//   the factory answers, then the file is emptied. A torn last line (a crash mid-append) was never answered
//   and is dropped; a line whose YAML does not hash to its ID is refused as corruption, naming the line.
// - Emptied when every appended schematic is in the repository and the records pass 256 KiB
//   (schematics.ts), and at a clean stop: not at every catch-up of the writer, each emptying being one more
//   sync that creates would queue behind; a replay skips a stored schematic after one lookup.
// - Preallocated: the file is kept at least 1 MiB of written zeros, the records at its start, and appends
//   overwrite those zeros in place. An fdatasync then flushes only the data: the file's size and its block
//   map do not change, so the file system commits no metadata (an append that grew the file did, each time:
//   p99 of append + fdatasync 1.1–4.0 ms preallocated against 1.6–9.9 ms growing, 400 appends, 3 rounds).
//   Emptying writes zeros over the records (data only too); a reader stops at the first NUL (a JSON line never
//   holds one: JSON escapes it). Appends only ever write into zeros, so a torn append is a line without its
//   newline followed by zeros: dropped.
// Only for the embedded store: with a remote registry the repository is shared with other replicas, which must
// see a schematic as soon as its POST is answered, so creates write through as upstream's do.

import { createHash } from "node:crypto";
import { type FileHandle, open, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { integrity } from "../errors.ts";
import { fsyncDirectory, isNotFoundError, writeFully } from "../util/fs.ts";

export interface JournalRecord {
  id: string;
  yaml: string;
}

/** Lines longer than this are corruption (a schematic's canonical YAML is bounded far below it). */
const maxLineBytes = 4 * 1024 * 1024;

/** The journal's size in written zeros, kept at least; it grows by this much when a burst needs more. */
const preallocBytes = 1024 * 1024;
/** Emptying shrinks a journal a burst grew beyond this back to preallocBytes. */
const shrinkAboveBytes = 8 * preallocBytes;

export class SchematicJournal {
  readonly path: string;
  readonly #handle: FileHandle;
  #queue: { line: Buffer; done: (err?: unknown) => void }[] = [];
  #flushScheduled = false;
  /** Every write, sync and truncation, one after the other. */
  #chain: Promise<void> = Promise.resolve();
  /** Appends requested so far (a truncation asked before a later append skips). */
  #appends = 0;
  #closed = false;
  /** Where the next record goes: the end of the records (zeros from here on). */
  #position: number;
  /** The file's size: written zeros from #position to here. */
  #allocated: number;

  private constructor(path: string, handle: FileHandle, position: number, allocated: number) {
    this.path = path;
    this.#handle = handle;
    this.#position = position;
    this.#allocated = allocated;
  }

  /** Opens (creates) the journal at `path`, returning it and the records left by the last run, oldest first. */
  static async open(path: string): Promise<{ journal: SchematicJournal; records: JournalRecord[] }> {
    const { records, recordBytes, usedBytes } = await readRecords(path);
    let handle: FileHandle;
    let created = false;
    try {
      handle = await open(path, "r+");
    } catch (err) {
      if (!isNotFoundError(err)) throw err;
      handle = await open(path, "w+");
      created = true;
    }
    try {
      const { size } = await handle.stat();
      // A torn last line goes (zeros over it), so appends write into zeros only; then the preallocation.
      if (usedBytes > recordBytes) await writeZeros(handle, recordBytes, usedBytes);
      if (size < preallocBytes) await writeZeros(handle, size, preallocBytes);
      if (usedBytes > recordBytes || size < preallocBytes) await handle.datasync();
      if (created) await fsyncDirectory(dirname(path));
      return {
        journal: new SchematicJournal(path, handle, recordBytes, Math.max(size, preallocBytes)),
        records,
      };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  #run(operation: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(operation);
    this.#chain = next.catch(() => {});
    return next;
  }

  /** Appends the record; resolves once it is on disk (with the other appends of its round: one sync). */
  append(record: JournalRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the schematic journal is closed"));
    const line = Buffer.from(`${JSON.stringify({ id: record.id, yaml: record.yaml })}\n`, "utf8");
    this.#appends++;
    const written = new Promise<void>((resolve, reject) => {
      this.#queue.push({ line, done: (err) => (err === undefined ? resolve() : reject(err)) });
    });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      void this.#run(() => this.#flush());
    }
    return written;
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    try {
      const bytes = Buffer.concat(batch.map((entry) => entry.line));
      await writeFully(this.#handle, bytes, this.#position);
      const end = this.#position + bytes.length;
      if (end > this.#allocated) {
        // Past the preallocation (a burst): zeros again up to the next whole preallocation step.
        const allocated = Math.ceil((end + 1) / preallocBytes) * preallocBytes;
        await writeZeros(this.#handle, end, allocated);
        this.#allocated = allocated;
      }
      await this.#handle.datasync();
      this.#position = end;
      for (const entry of batch) entry.done();
    } catch (err) {
      for (const entry of batch) entry.done(err);
    }
  }

  /**
   * Empties the journal: the caller has every record appended so far in the repository. Skipped when a record
   * was appended after the call (its schematic may not be there yet), and with `ifAbove` while the records take
   * no more than that many bytes: emptying is one more sync that appends would queue behind, and records of
   * schematics already stored cost a replay only a lookup each.
   */
  truncate(options: { ifAbove?: number } = {}): Promise<void> {
    const mark = this.#appends;
    if (this.#position <= (options.ifAbove ?? 0)) return Promise.resolve();
    return this.#run(async () => {
      if (this.#appends !== mark || this.#closed || this.#position === 0) return;
      await writeZeros(this.#handle, 0, this.#position);
      if (this.#allocated > shrinkAboveBytes) {
        await this.#handle.truncate(preallocBytes);
        this.#allocated = preallocBytes;
      }
      await this.#handle.datasync();
      this.#position = 0;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#chain;
    this.#closed = true;
    await this.#chain;
    await this.#handle.close();
  }
}

/** Writes zeros over [from, to) of the file, 1 MiB at a time. */
async function writeZeros(handle: FileHandle, from: number, to: number): Promise<void> {
  const zeros = Buffer.alloc(Math.min(preallocBytes, Math.max(0, to - from)));
  for (let at = from; at < to; at += zeros.length)
    await writeFully(handle, zeros.subarray(0, Math.min(zeros.length, to - at)), at);
}

/**
 * The journal's records, and how many bytes they take (where the next one goes) and the bytes before the
 * first NUL (more when the last line is torn). A torn last line is dropped, anything else that does not parse
 * is corruption.
 */
async function readRecords(
  path: string,
): Promise<{ records: JournalRecord[]; recordBytes: number; usedBytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (isNotFoundError(err)) return { records: [], recordBytes: 0, usedBytes: 0 };
    throw err;
  }
  const nul = bytes.indexOf(0);
  const used = nul < 0 ? bytes : bytes.subarray(0, nul);
  const recordBytes = used.lastIndexOf(0x0a) + 1; // the part after the last newline was never synced whole
  const lines = used.subarray(0, recordBytes).toString("utf8").split("\n").slice(0, -1);
  const records: JournalRecord[] = [];
  lines.forEach((line, index) => {
    const where = `${path} line ${index + 1}`;
    if (Buffer.byteLength(line) > maxLineBytes) throw integrity(`${where}: longer than ${maxLineBytes} bytes`);
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw integrity(`${where}: not a journal record`);
    }
    const { id, yaml } = (record ?? {}) as Partial<JournalRecord>;
    if (typeof id !== "string" || typeof yaml !== "string") throw integrity(`${where}: not a journal record`);
    if (createHash("sha256").update(yaml).digest("hex") !== id)
      throw integrity(`${where}: the YAML does not hash to schematic ${id}`);
    records.push({ id, yaml });
  });
  return { records, recordBytes, usedBytes: used.length };
}
