// A small raw disk with a GPT (protective MBR, primary and backup headers, 128 entries) for boot tests that
// need named partitions — e.g. META — before the imager's disk writer exists. Test fixture only.

import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { crc32 } from "node:zlib";

const sector = 512;
const entryCount = 128;
const entrySize = 128;
const entrySectors = (entryCount * entrySize) / sector; // 32

export const linuxDataType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
export const efiSystemType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

export interface TestPartition {
  name: string;
  typeGuid: string;
  sizeMiB: number;
  content?: Buffer;
}

/** GPT stores GUIDs mixed-endian: the first three fields little-endian, the rest as written. */
function guidBytes(guid: string): Buffer {
  const hex = guid.replaceAll("-", "");
  const b = Buffer.from(hex, "hex");
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
}

function header(
  current: bigint,
  backup: bigint,
  entriesLba: bigint,
  lastUsable: bigint,
  diskGuid: Buffer,
  entriesCrc: number,
): Buffer {
  const h = Buffer.alloc(sector);
  h.write("EFI PART", 0, "ascii");
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(current, 24);
  h.writeBigUInt64LE(backup, 32);
  h.writeBigUInt64LE(2048n, 40);
  h.writeBigUInt64LE(lastUsable, 48);
  diskGuid.copy(h, 56);
  h.writeBigUInt64LE(entriesLba, 72);
  h.writeUInt32LE(entryCount, 80);
  h.writeUInt32LE(entrySize, 84);
  h.writeUInt32LE(entriesCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  return h;
}

/** Writes the disk: partitions 1 MiB aligned from LBA 2048, in order, with their content at their start. */
export async function writeTestDisk(path: string, partitions: TestPartition[], sizeMiB = 8): Promise<void> {
  const totalSectors = BigInt((sizeMiB * 1024 * 1024) / sector);
  const lastLba = totalSectors - 1n;
  const lastUsable = totalSectors - 1n - BigInt(entrySectors) - 1n;
  const entries = Buffer.alloc(entryCount * entrySize);
  const placed: { lba: bigint; content?: Buffer }[] = [];
  let next = 2048n;
  for (const [i, p] of partitions.entries()) {
    const sectors = BigInt((p.sizeMiB * 1024 * 1024) / sector);
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    guidBytes(p.typeGuid).copy(e, 0);
    randomBytes(16).copy(e, 16);
    e.writeBigUInt64LE(next, 32);
    e.writeBigUInt64LE(next + sectors - 1n, 40);
    Buffer.from(p.name, "utf16le").copy(e, 56, 0, 72);
    placed.push({ lba: next, content: p.content });
    next += sectors;
  }
  if (next - 1n > lastUsable) throw new Error("test disk too small for its partitions");
  const entriesCrc = crc32(entries);
  const diskGuid = randomBytes(16);

  const mbr = Buffer.alloc(sector);
  mbr.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], 446);
  mbr.writeUInt32LE(1, 454);
  mbr.writeUInt32LE(Number(totalSectors - 1n > 0xffffffffn ? 0xffffffffn : totalSectors - 1n), 458);
  mbr.writeUInt16LE(0xaa55, 510);

  const file = await open(path, "w");
  try {
    await file.truncate(Number(totalSectors) * sector);
    await file.write(mbr, 0, sector, 0);
    await file.write(header(1n, lastLba, 2n, lastUsable, diskGuid, entriesCrc), 0, sector, sector);
    await file.write(entries, 0, entries.length, 2 * sector);
    const backupEntries = lastLba - BigInt(entrySectors);
    await file.write(entries, 0, entries.length, Number(backupEntries) * sector);
    await file.write(
      header(lastLba, 1n, backupEntries, lastUsable, diskGuid, entriesCrc),
      0,
      sector,
      Number(lastLba) * sector,
    );
    for (const p of placed)
      if (p.content !== undefined) await file.write(p.content, 0, p.content.length, Number(p.lba) * sector);
  } finally {
    await file.close();
  }
}

/** A META partition's content per siderolabs/go-adv adv/talos (docs/formats.md): two identical 256 KiB blocks holding the tags. */
export function metaPartitionContent(tags: [number, string][], checksum: (block: Buffer) => Buffer): Buffer {
  const block = Buffer.alloc(256 * 1024);
  block.writeUInt32BE(0x5a4b3c2d, 0);
  let at = 4;
  for (const [tag, value] of tags) {
    const bytes = Buffer.from(value);
    block.writeUInt32BE(tag, at);
    block.writeUInt32BE(bytes.length, at + 4);
    bytes.copy(block, at + 8);
    at += 8 + bytes.length;
  }
  block.writeUInt32BE(0xa5b4c3d2, block.length - 4);
  checksum(block).copy(block, block.length - 36);
  return Buffer.concat([block, block]);
}
