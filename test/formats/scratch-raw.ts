// The raw image the VHD and VMDK fix-up tests convert with qemu-img: 16 MiB, its first 2 MiB random, the rest
// a hole, in a scratch directory made before the file's tests and removed after them.

import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

const mib = 1024 * 1024;

export interface ScratchRaw {
  /** The scratch directory (set once the `before` hook ran). */
  dir: string;
  /** The raw image in it. */
  raw: string;
}

/** Registers the hooks that make and remove the scratch raw image; read its paths inside tests. */
export function scratchRawImage(prefix: string): ScratchRaw {
  const scratch: ScratchRaw = { dir: "", raw: "" };
  before(async () => {
    scratch.dir = await mkdtemp(join(tmpdir(), prefix));
    scratch.raw = join(scratch.dir, "disk.raw");
    await writeFile(scratch.raw, randomBytes(2 * mib));
    execFileSync("truncate", ["-s", `${16 * mib}`, scratch.raw]);
  });
  after(async () => {
    if (scratch.dir !== "") await rm(scratch.dir, { recursive: true, force: true });
  });
  return scratch;
}

/** Whether two files hold the same bytes (cmp). */
export const sameBytes = (a: string, b: string): boolean => spawnSync("cmp", ["-s", a, b]).status === 0;
