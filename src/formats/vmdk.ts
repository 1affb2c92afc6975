// The embedded descriptor of a sparse VMDK (VMware "Virtual Disk Format 1.1", hosted sparse extents) and
// the fix-up that makes qemu-img's streamOptimized VMDKs reproducible.
//
// A hosted sparse extent starts with a 512-byte SparseExtentHeader, little-endian:
//   0  4  magic "KDMV"        12 8  capacity (sectors)           28 8  descriptorOffset (sectors)
//   4  4  version             20 8  grainSize (sectors)          36 8  descriptorSize (sectors)
//   8  4  flags
// A monolithic extent (streamOptimized included) embeds its text descriptor there, NUL-padded to the
// region's end. The descriptor's `CID=` line is the content id: 32 bits, in hex. qemu-img picks it at
// random when it creates the disk and prints it as lowercase hex without leading zeros; two conversions
// of the same raw image differ only there (compared with `cmp -l`). setVmdkCid replaces it with a value
// the caller derives from its inputs, rewriting only the descriptor region: the grains are never read.

import { open } from "node:fs/promises";
import { AppError } from "../errors.ts";

const sector = 512;
const magic = "KDMV";
/** A descriptor region larger than this is not one qemu-img writes (it reserves 20 sectors). */
const maxDescriptorSectors = 2048;

/** The `CID=` value of a descriptor, or undefined when it has none. */
export function descriptorCid(descriptor: string): number | undefined {
  const match = /^CID=([0-9a-fA-F]{1,8})\r?$/m.exec(descriptor);
  return match === null ? undefined : Number.parseInt(match[1] as string, 16);
}

/** The descriptor with its one `CID=` line set to `cid`, written as qemu-img writes it. */
export function withDescriptorCid(descriptor: string, cid: number): string {
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffff_ffff) throw new RangeError(`CID ${cid} is not 32 bits`);
  const lines = descriptor.match(/^CID=[0-9a-fA-F]{1,8}\r?$/gm) ?? [];
  if (lines.length !== 1) throw new RangeError(`the descriptor has ${lines.length} CID lines, not 1`);
  return descriptor.replace(/^CID=[0-9a-fA-F]{1,8}(\r?)$/m, `CID=${cid.toString(16)}$1`);
}

/** Where a sparse extent's embedded descriptor lives, or undefined when the file has no KDMV header. */
export function embeddedDescriptorRegion(header: Uint8Array): { offset: number; size: number } | undefined {
  const h = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (h.length < sector || h.toString("latin1", 0, 4) !== magic) return undefined;
  const offset = h.readBigUInt64LE(28);
  const size = h.readBigUInt64LE(36);
  if (offset === 0n || size === 0n || size > BigInt(maxDescriptorSectors) || offset > 1n << 40n) return undefined;
  return { offset: Number(offset) * sector, size: Number(size) * sector };
}

/** Reads the embedded descriptor text of the VMDK at `path` (up to its first NUL). */
export async function readEmbeddedDescriptor(path: string): Promise<string> {
  const file = await open(path, "r");
  try {
    return (await descriptorOf(path, file)).text;
  } finally {
    await file.close();
  }
}

/** Sets the `CID=` of the VMDK at `path` in place; fails, changing nothing, when it has no embedded descriptor. */
export async function setVmdkCid(path: string, cid: number): Promise<void> {
  const file = await open(path, "r+");
  try {
    const { region, text } = await descriptorOf(path, file);
    const updated = Buffer.from(withDescriptorCid(text, cid), "latin1");
    if (updated.length >= region.size) throw notVmdk(path, "the descriptor outgrows its region");
    // The new text, then NULs over whatever the old text covered beyond it.
    const bytes = Buffer.alloc(Math.max(updated.length, Buffer.byteLength(text, "latin1")));
    updated.copy(bytes);
    await file.write(bytes, 0, bytes.length, region.offset);
  } finally {
    await file.close();
  }
}

function notVmdk(path: string, why: string): AppError {
  return new AppError("Internal", `${path} is not a sparse VMDK qemu-img could have written: ${why}`);
}

async function descriptorOf(path: string, file: Awaited<ReturnType<typeof open>>) {
  const header = Buffer.alloc(sector);
  await file.read(header, 0, sector, 0);
  const region = embeddedDescriptorRegion(header);
  if (region === undefined) throw notVmdk(path, "no KDMV header with an embedded descriptor");
  const bytes = Buffer.alloc(region.size);
  const { bytesRead } = await file.read(bytes, 0, region.size, region.offset);
  if (bytesRead !== region.size) throw notVmdk(path, "the descriptor region is cut short");
  const end = bytes.indexOf(0);
  const text = bytes.toString("latin1", 0, end === -1 ? bytes.length : end);
  if (!text.startsWith("# Disk DescriptorFile")) throw notVmdk(path, "no descriptor in its region");
  return { region, text };
}
