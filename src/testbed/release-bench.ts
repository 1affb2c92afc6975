// The bench's bulky extension input (release.ts benchExtensions): a large file of incompressible bytes.

import { createCipheriv } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { badRequest } from "../errors.ts";

const maxBulkyBytes = 4 * 1024 * 1024 * 1024;

/**
 * A file of `size` incompressible, deterministic bytes: the AES-256-CTR keystream of a fixed key, streamed
 * (never held in memory), made once and kept.
 */
export async function bulkyFile(cacheDir: string, size: number): Promise<{ path: string; size: number }> {
  if (!Number.isInteger(size) || size < 1 || size > maxBulkyBytes)
    throw badRequest(`bulkyBytes must be 1 byte to 4 GiB, not ${size}`);
  const dir = join(cacheDir, "testbed", "bench");
  const path = join(dir, `bulky-${size}.bin`);
  if (existsSync(path) && (await stat(path)).size === size) return { path, size };
  await mkdir(dir, { recursive: true });
  const cipher = createCipheriv("aes-256-ctr", Buffer.alloc(32, 7), Buffer.alloc(16));
  const zeros = Buffer.alloc(1024 * 1024);
  async function* keystream() {
    for (let left = size; left > 0; left -= zeros.length)
      yield cipher.update(zeros.subarray(0, Math.min(left, zeros.length)));
  }
  const partial = `${path}.part`;
  await pipeline(Readable.from(keystream()), createWriteStream(partial));
  await rename(partial, path);
  return { path, size };
}
