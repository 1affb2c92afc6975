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
// - Emptied (truncated and synced) whenever every appended schematic is in the repository, so it holds only
//   what the background writer has not finished.
// Only for the embedded store: with a remote registry the repository is shared with other replicas, which must
// see a schematic as soon as its POST is answered, so creates write through as upstream's do.

import { createHash } from "node:crypto";
import { type FileHandle, open, readFile } from "node:fs/promises";
import { integrity } from "../errors.ts";
import { isNotFoundError } from "../util/fs.ts";

export interface JournalRecord {
  id: string;
  yaml: string;
}

/** Lines longer than this are corruption (a schematic's canonical YAML is bounded far below it). */
const maxLineBytes = 4 * 1024 * 1024;

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

  private constructor(path: string, handle: FileHandle) {
    this.path = path;
    this.#handle = handle;
  }

  /** Opens (creates) the journal at `path`, returning it and the records left by the last run, oldest first. */
  static async open(path: string): Promise<{ journal: SchematicJournal; records: JournalRecord[] }> {
    const records = await readRecords(path);
    const handle = await open(path, "a");
    return { journal: new SchematicJournal(path, handle), records };
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
      await this.#handle.write(Buffer.concat(batch.map((entry) => entry.line)));
      await this.#handle.datasync();
      for (const entry of batch) entry.done();
    } catch (err) {
      for (const entry of batch) entry.done(err);
    }
  }

  /**
   * Empties the journal: the caller has every record appended so far in the repository. Skipped when a record
   * was appended after the call (its schematic may not be there yet).
   */
  truncate(): Promise<void> {
    const mark = this.#appends;
    return this.#run(async () => {
      if (this.#appends !== mark || this.#closed) return;
      await this.#handle.truncate(0);
      await this.#handle.datasync();
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

/** The journal's records; a torn last line is dropped, anything else that does not parse is corruption. */
async function readRecords(path: string): Promise<JournalRecord[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isNotFoundError(err)) return [];
    throw err;
  }
  const lines = text.split("\n");
  const complete = lines.slice(0, -1); // the part after the last newline was never synced whole
  const records: JournalRecord[] = [];
  complete.forEach((line, index) => {
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
  return records;
}
