// Digests of a file, read once as a stream (never buffered whole: assets run to gigabytes).

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

export type FileHashAlgorithm = "sha256" | "sha512";

export interface FileDigests {
  size: number;
  /** `<algorithm>:<hex>` for each algorithm asked for. */
  digests: Partial<Record<FileHashAlgorithm, string>>;
}

/** Reads `path` once and hashes it with every algorithm given (default sha256). */
export async function fileDigests(
  path: string,
  algorithms: readonly FileHashAlgorithm[] = ["sha256"],
  signal?: AbortSignal,
): Promise<FileDigests> {
  const hashes = algorithms.map((algorithm) => [algorithm, createHash(algorithm)] as const);
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (const [, hash] of hashes) hash.update(chunk);
    size += chunk.length;
  }
  const digests: FileDigests["digests"] = {};
  for (const [algorithm, hash] of hashes) digests[algorithm] = `${algorithm}:${hash.digest("hex")}`;
  return { size, digests };
}

/** The file's `sha256:<hex>`. */
export async function sha256OfFile(path: string, signal?: AbortSignal): Promise<string> {
  return (await fileDigests(path, ["sha256"], signal)).digests.sha256 as string;
}

/** The file's SHA-256 as bare hex. */
export async function sha256HexOfFile(path: string, signal?: AbortSignal): Promise<string> {
  return (await sha256OfFile(path, signal)).slice("sha256:".length);
}
