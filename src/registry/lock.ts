// The store's writer lock: a file that exists while one process has the store open for writing.
//
// Creation is atomic and exclusive: the holder's record is written to a private temp file, then hard-linked
// to the lock path (link(2) fails with EEXIST like O_EXCL, and readers never see a half-written record).
// A lock is stale when its holder ran on this host and is gone: the pid is not alive, or the pid has been
// reused by a process that started at another time (Linux /proc start time). A stale lock is taken over;
// a lock held from another host is never judged (we cannot see its processes) and stays a Conflict.

import { randomUUID } from "node:crypto";
import { link, readFile, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { AppError } from "../errors.ts";
import { isNotFoundError } from "../util/fs.ts";

export interface LockHolder {
  pid: number;
  hostname: string;
  /** The holder's start time in clock ticks since boot (Linux), to recognise a reused pid. */
  processStart?: string;
  acquiredAt: string;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined where /proc is unavailable. */
async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19];
  } catch {
    return undefined;
  }
}

async function isHolderAlive(holder: LockHolder): Promise<boolean> {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (holder.processStart === undefined) return true;
  const start = await processStartTime(holder.pid);
  return start === undefined || start === holder.processStart;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid === "number" && typeof value.hostname === "string") return value as LockHolder;
  } catch {
    // fall through: an unreadable record
  }
  return undefined;
}

function lockConflict(path: string, holder: LockHolder | undefined): AppError {
  const who = holder
    ? `process ${holder.pid} on ${holder.hostname} (since ${holder.acquiredAt})`
    : "a process whose lock record is unreadable";
  return new AppError("Conflict", `store is locked by ${who}: lock file ${path}`, {
    code: "STORE_LOCKED",
    detail: { lockFile: path, holder },
  });
}

export class StoreLock {
  readonly path: string;
  readonly holder: LockHolder;
  private released = false;

  private constructor(path: string, holder: LockHolder) {
    this.path = path;
    this.holder = holder;
  }

  /** Takes the lock at `path`, taking over a stale one; throws Conflict (code STORE_LOCKED) naming the holder. */
  static async acquire(path: string): Promise<StoreLock> {
    const holder: LockHolder = {
      pid: process.pid,
      hostname: hostname(),
      acquiredAt: new Date().toISOString(),
    };
    const start = await processStartTime(process.pid);
    if (start !== undefined) holder.processStart = start;
    const record = `${JSON.stringify(holder)}\n`;

    // Two rounds: the second follows the removal of a stale lock.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await tryCreate(path, record)) return new StoreLock(path, holder);
      const existingText = await readFile(path, "utf8").catch((err) => {
        if (isNotFoundError(err)) return undefined;
        throw err;
      });
      if (existingText === undefined) continue; // released meanwhile: try again
      const existing = parseHolder(existingText);
      if (!existing || existing.hostname !== holder.hostname || (await isHolderAlive(existing)))
        throw lockConflict(path, existing);
      await removeStaleLock(path, existingText);
    }
    throw lockConflict(path, parseHolder(await readFile(path, "utf8").catch(() => "")));
  }

  /** Removes the lock file if it is still ours. Safe to call twice. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const text = await readFile(this.path, "utf8").catch(() => undefined);
    const current = text === undefined ? undefined : parseHolder(text);
    if (current && current.pid === this.holder.pid && current.acquiredAt === this.holder.acquiredAt)
      await rm(this.path, { force: true });
  }
}

async function tryCreate(path: string, record: string): Promise<boolean> {
  const temp = join(dirname(path), `.lock-${randomUUID()}`);
  await writeFile(temp, record, { flag: "wx" });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Moves the stale lock aside atomically and checks that what was moved is the record judged stale; if another
 * process replaced it in between, its live lock is put back.
 */
async function removeStaleLock(path: string, staleText: string): Promise<void> {
  const aside = join(dirname(path), `.stale-lock-${randomUUID()}`);
  try {
    await rename(path, aside);
  } catch (err) {
    if (isNotFoundError(err)) return;
    throw err;
  }
  const moved = await readFile(aside, "utf8");
  if (moved !== staleText) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}
