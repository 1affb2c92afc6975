// Reading the extended initramfs's appended part with GNU cpio: that part is a row of cpio archives (one per
// member, src/imager/initramfs-members.ts), and GNU cpio stops at the first trailer. These helpers cut the
// decompressed bytes at each "TRAILER!!!" record (newc layout from cpio(5): a 110-byte header of hex fields,
// namesize at byte 94, filesize at byte 54, name and data each padded to 4 bytes) and hand every archive to
// `cpio`, in order, as the kernel unpacks them.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const field = (buf: Buffer, at: number, offset: number) =>
  Number.parseInt(buf.toString("latin1", at + offset, at + offset + 8), 16);
const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** The archives of a decompressed stream of concatenated newc archives (zero padding between them skipped). */
export function cpioArchives(stream: Buffer): Buffer[] {
  const archives: Buffer[] = [];
  let start = 0;
  let at = 0;
  while (at < stream.length) {
    if (at === start) {
      while (start < stream.length && stream[start] === 0) start++;
      at = start;
      if (at >= stream.length) break;
    }
    assert.equal(stream.toString("latin1", at, at + 6), "070701", `a newc header at byte ${at}`);
    const nameSize = field(stream, at, 94);
    const fileSize = field(stream, at, 54);
    const name = stream.toString("latin1", at + 110, at + 110 + nameSize - 1);
    const nameEnd = at + 110 + nameSize;
    at = nameEnd + pad4(110 + nameSize) + fileSize + pad4(fileSize);
    if (name === "TRAILER!!!") {
      archives.push(stream.subarray(start, at));
      start = at;
    }
  }
  assert.equal(start, at, "the stream ends after a trailer");
  return archives;
}

function cpio(args: string[], input: Buffer, cwd?: string): Buffer {
  const result = spawnSync("cpio", args, { input, cwd, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`cpio ${args.join(" ")} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

/** `cpio -t` of every archive, in order. */
export function cpioNames(stream: Buffer): string[] {
  return cpioArchives(stream).flatMap((archive) =>
    cpio(["-t", "--quiet"], archive)
      .toString()
      .trim()
      .split("\n")
      .filter((n) => n !== ""),
  );
}

/** `cpio -id` of every archive, in order, into `dir` (a later file replaces an earlier one, as in the kernel). */
export function cpioExtract(stream: Buffer, dir: string): void {
  for (const archive of cpioArchives(stream)) cpio(["-id", "--quiet", "--unconditional"], archive, dir);
}
