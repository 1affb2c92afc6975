// The kernel release of an x86 bzImage, for the UKI's `.uname`: the boot protocol header ("HdrS" at 0x202)
// holds at 0x20E a pointer to the version string, relative to 0x200 (Documentation/arch/x86/boot.rst,
// kernel_version). Only the first 64 KiB are read.

import { open } from "node:fs/promises";

const headerMagicOffset = 0x202;
const versionPointerOffset = 0x20e;
const maxRead = 64 * 1024;

/** `uname -r` of the kernel image (e.g. "6.1.0-28-amd64"), or undefined when it is not a bzImage that says. */
export async function bzImageKernelRelease(path: string): Promise<string | undefined> {
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(maxRead);
    const { bytesRead } = await file.read(head, 0, maxRead, 0);
    if (bytesRead < 0x210 || head.toString("latin1", headerMagicOffset, headerMagicOffset + 4) !== "HdrS")
      return undefined;
    const pointer = head.readUInt16LE(versionPointerOffset);
    if (pointer === 0) return undefined;
    const start = pointer + 0x200;
    if (start >= bytesRead) return undefined;
    const end = head.indexOf(0, start);
    const text = head.toString("latin1", start, end < 0 ? bytesRead : end);
    const release = text.split(" ")[0] ?? "";
    return /^[\w.+~-]{1,64}$/.test(release) ? release : undefined;
  } finally {
    await file.close();
  }
}
