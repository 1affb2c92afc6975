// The VHD footer (Microsoft "Virtual Hard Disk Image Format Specification", Hard Disk Footer Format) and
// the fix-up that makes qemu-img's VHDs reproducible.
//
// A VHD ends with a 512-byte footer; a dynamic VHD also starts with a copy of it (then its dynamic disk
// header at 512, which holds nothing time- or chance-dependent). Integers are big-endian:
//   0   8  cookie "conectix"             40  8  original size       64  4  checksum
//   8   4  features                      48  8  current size        68 16  unique id
//   12  4  file format version           56  4  disk geometry       84  1  saved state
//   16  8  data offset                   60  4  disk type (2 fixed, 3 dynamic, 4 differencing)
//   24  4  time stamp: seconds since 2000-01-01 00:00:00 UTC
//   28  4  creator application "qemu", 32 4 creator version, 36 4 creator host OS
// The checksum is the ones' complement of the sum of the footer's bytes with the checksum field zeroed.
//
// `qemu-img convert -O vpc` stamps the footer with the time of the conversion and a random unique id
// (two conversions of the same raw image differ only there: compared with `cmp -l`). setVhdIdentity
// rewrites both with values the caller derives from its inputs, fixes the checksum, and writes the
// footer back where it was found (at the end, and at the start of a dynamic VHD) with positional writes:
// the multi-GB data between is never read.

import { open } from "node:fs/promises";
import { AppError } from "../errors.ts";

export const vhdFooterSize = 512;
const cookie = "conectix";
/** 2000-01-01T00:00:00Z in Unix seconds: the VHD time stamp's origin. */
export const vhdEpochUnixSeconds = 946_684_800;

const offsets = { timestamp: 24, diskType: 60, checksum: 64, uniqueId: 68 } as const;
export const VhdDiskType = { fixed: 2, dynamic: 3, differencing: 4 } as const;

export interface VhdFooter {
  diskType: number;
  /** Unix seconds. */
  timestamp: number;
  uniqueId: Buffer;
  checksum: number;
  /** Whether the stored checksum is that of the footer's bytes. */
  checksumValid: boolean;
}

/** The footer checksum: ones' complement of the byte sum with the checksum field counted as zero. */
export function vhdChecksum(footer: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < vhdFooterSize; i++)
    if (i < offsets.checksum || i >= offsets.checksum + 4) sum = (sum + (footer[i] as number)) >>> 0;
  return ~sum >>> 0;
}

/** Reads a footer, or undefined when `bytes` does not start with a VHD cookie. */
export function parseVhdFooter(bytes: Uint8Array): VhdFooter | undefined {
  const footer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (footer.length < vhdFooterSize || footer.toString("latin1", 0, cookie.length) !== cookie) return undefined;
  const checksum = footer.readUInt32BE(offsets.checksum);
  return {
    diskType: footer.readUInt32BE(offsets.diskType),
    timestamp: footer.readUInt32BE(offsets.timestamp) + vhdEpochUnixSeconds,
    uniqueId: Buffer.from(footer.subarray(offsets.uniqueId, offsets.uniqueId + 16)),
    checksum,
    checksumValid: checksum === vhdChecksum(footer),
  };
}

export interface VhdIdentity {
  /** Unix seconds; times before 2000 (e.g. SOURCE_DATE_EPOCH=0) are recorded as 2000-01-01. */
  timestamp: number;
  /** 16 bytes. */
  uniqueId: Uint8Array;
}

/** A copy of `footer` with the time stamp and unique id replaced and the checksum recomputed. */
export function withVhdIdentity(footer: Uint8Array, identity: VhdIdentity): Buffer {
  if (identity.uniqueId.length !== 16) throw new RangeError("a VHD unique id has 16 bytes");
  const out = Buffer.from(footer.subarray(0, vhdFooterSize));
  const stamp = Math.min(Math.max(Math.floor(identity.timestamp) - vhdEpochUnixSeconds, 0), 0xffff_ffff);
  out.writeUInt32BE(stamp, offsets.timestamp);
  out.set(identity.uniqueId, offsets.uniqueId);
  out.writeUInt32BE(vhdChecksum(out), offsets.checksum);
  return out;
}

/**
 * Sets the time stamp and unique id of the VHD at `path` in place (both footer copies). Fails, changing
 * nothing, when the file does not end with a VHD footer whose checksum holds.
 */
export async function setVhdIdentity(path: string, identity: VhdIdentity): Promise<void> {
  const file = await open(path, "r+");
  try {
    const size = (await file.stat()).size;
    const notVhd = (why: string) =>
      new AppError("Internal", `${path} is not a VHD qemu-img could have written: ${why}`);
    if (size < vhdFooterSize) throw notVhd("shorter than a footer");
    const tail = Buffer.alloc(vhdFooterSize);
    await file.read(tail, 0, vhdFooterSize, size - vhdFooterSize);
    const footer = parseVhdFooter(tail);
    if (footer === undefined) throw notVhd("no footer cookie");
    if (!footer.checksumValid) throw notVhd("footer checksum mismatch");
    const rewritten = withVhdIdentity(tail, identity);
    // Dynamic and differencing disks keep a copy of the footer at offset 0 (the specification's "mirror").
    if (footer.diskType !== VhdDiskType.fixed && size >= 2 * vhdFooterSize) {
      const head = Buffer.alloc(vhdFooterSize);
      await file.read(head, 0, vhdFooterSize, 0);
      if (!head.equals(tail)) throw notVhd("the footer copy at the start differs from the footer");
      await file.write(rewritten, 0, vhdFooterSize, 0);
    }
    await file.write(rewritten, 0, vhdFooterSize, size - vhdFooterSize);
  } finally {
    await file.close();
  }
}
