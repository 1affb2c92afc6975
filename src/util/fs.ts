// Small filesystem helpers: atomic replace-by-rename with fsync, and "missing is not an error".

import { randomUUID } from "node:crypto";
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

export function isNotFoundError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** Flushes a directory's entries (a rename is only durable once its directory is synced). */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `target` so that readers see either the old file or the whole new one, never a part:
 * write a temp file in `tmpDir` (same filesystem as `target`), fsync it, rename it into place, fsync the
 * directory. `mode` (default 0644) is the temp file's from its creation, so a key is never readable by others.
 */
export async function writeFileAtomic(
  tmpDir: string,
  target: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const temp = join(tmpDir, `${randomUUID()}.part`);
  try {
    const handle = await open(temp, "wx", options.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temp, target);
    } catch (err) {
      // The directory is usually there: made only when the rename says it is not (one call less per write).
      if (!isNotFoundError(err)) throw err;
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
    }
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDirectory(dirname(target));
}

/** Reads a small text file, or undefined when it does not exist. */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    throw err;
  }
}

/** A directory's entry names, or [] when it does not exist. */
export async function listDirectory(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFoundError(err)) return [];
    throw err;
  }
}

/** Removes a file; false when it was not there. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await rm(path);
    return true;
  } catch (err) {
    if (isNotFoundError(err)) return false;
    throw err;
  }
}

/** Reads exactly `length` bytes at `position` into `buffer`; the file ending before is an error. */
export async function readFully(
  handle: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
  path: string,
): Promise<Buffer> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new Error(`${path} ended while being read`);
    filled += bytesRead;
  }
  return buffer.subarray(0, length);
}

/** Writes all of `data` at `position` (a positional write may write less than asked). */
export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
