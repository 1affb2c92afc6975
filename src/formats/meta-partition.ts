// The META partition's content: Talos's "extended ADV" (siderolabs/go-adv, adv/talos), where Talos keeps
// small key/value pairs across reboots. Disk images are born with the schematic's `meta` values in it.
//
// One block (256 KiB), all integers big-endian:
//   0x0000          u32 magic 0x5a4b3c2d
//   0x0004…         records {u32 tag, u32 length, length bytes}, ended by tag 0 (or by running out of room)
//   end − 36        32 bytes SHA-256 of the whole block computed with these 32 bytes zeroed
//   end − 4         u32 magic 0xa5b4c3d2
// The partition holds the block twice (offsets 0 and 256 KiB); readers fall back to the second copy.
// Upstream writes records in Go map order; we write them sorted by tag, so the bytes are reproducible.

import { createHash } from "node:crypto";
import { badRequest, integrity } from "../errors.ts";

export const metaBlockSize = 256 * 1024;
/** Both copies: what goes at the start of the META partition. */
export const metaContentSize = 2 * metaBlockSize;
export const metaMagicStart = 0x5a4b3c2d;
export const metaMagicEnd = 0xa5b4c3d2;

const headerSize = 4;
const trailerSize = 36; // checksum + end magic
const recordHeaderSize = 8;
/** Room for records in a block. */
export const metaDataCapacity = metaBlockSize - headerSize - trailerSize;

/** Tags Talos defines for META (pkg/machinery/meta); values 1–255 are valid keys. */
export const MetaTag = {
  Upgrade: 0x6,
  StagedUpgradeImageRef: 0x7,
  StagedUpgradeInstallOptions: 0x8,
  StateEncryptionConfig: 0x9,
  MetalNetworkPlatformConfig: 0xa,
  DownloadURLCode: 0xb,
  UserReserved1: 0xc,
  UserReserved2: 0xd,
  UserReserved3: 0xe,
  UUIDOverride: 0xf,
  UniqueMachineToken: 0x10,
  DiskImageBootloader: 0x11,
} as const;

export interface MetaRecord {
  tag: number;
  value: Uint8Array;
}

function checkTag(tag: number): void {
  // The format has room for a u32 tag, but Talos reads tags as a byte, and 0 ends the list.
  if (!Number.isInteger(tag) || tag < 1 || tag > 255)
    throw badRequest(`invalid META tag ${tag}: must be from 1 to 255`, "META_KEY_INVALID");
}

/** One 256 KiB block holding the records (sorted by tag; a tag may appear once). */
export function encodeMetaBlock(records: readonly MetaRecord[]): Buffer {
  const sorted = [...records].sort((a, b) => a.tag - b.tag);
  const block = Buffer.alloc(metaBlockSize);
  block.writeUInt32BE(metaMagicStart, 0);
  let offset = headerSize;
  let previous = -1;
  for (const { tag, value } of sorted) {
    checkTag(tag);
    if (tag === previous) throw badRequest(`META tag 0x${tag.toString(16)} is given twice`, "META_KEY_DUPLICATE");
    previous = tag;
    const end = offset + recordHeaderSize + value.length;
    if (end > headerSize + metaDataCapacity)
      throw badRequest(
        `META values do not fit: ${end - headerSize - metaDataCapacity} bytes over the ${metaDataCapacity}-byte capacity`,
        "META_TOO_LARGE",
      );
    block.writeUInt32BE(tag, offset);
    block.writeUInt32BE(value.length, offset + 4);
    block.set(value, offset + recordHeaderSize);
    offset = end;
  }
  // The end tag (0) is already there: the block starts zeroed.
  block.writeUInt32BE(metaMagicEnd, metaBlockSize - 4);
  createHash("sha256")
    .update(block)
    .digest()
    .copy(block, metaBlockSize - trailerSize);
  return block;
}

/** Both copies of the block: the first 512 KiB of a META partition. */
export function encodeMetaPartition(records: readonly MetaRecord[]): Buffer {
  const block = encodeMetaBlock(records);
  return Buffer.concat([block, block]);
}

/** Records of text values (the schematic's `meta`: key → string). */
export function metaRecordsFromValues(values: readonly { key: number; value: string }[]): MetaRecord[] {
  return values.map(({ key, value }) => ({ tag: key, value: Buffer.from(value, "utf8") }));
}

/** Reads one block; Integrity error on a wrong length, magic, checksum or a record running off the end. */
export function decodeMetaBlock(block: Uint8Array): MetaRecord[] {
  if (block.length !== metaBlockSize)
    throw integrity(`META block is ${block.length} bytes, expected ${metaBlockSize}`, "META_INVALID");
  const buf = Buffer.from(block.buffer, block.byteOffset, block.length);
  const start = buf.readUInt32BE(0);
  if (start !== metaMagicStart) throw integrity(`META block magic is 0x${start.toString(16)}`, "META_INVALID");
  const end = buf.readUInt32BE(metaBlockSize - 4);
  if (end !== metaMagicEnd) throw integrity(`META block end magic is 0x${end.toString(16)}`, "META_INVALID");
  const stored = Buffer.from(buf.subarray(metaBlockSize - trailerSize, metaBlockSize - 4));
  const zeroed = Buffer.from(buf);
  zeroed.fill(0, metaBlockSize - trailerSize, metaBlockSize - 4);
  const actual = createHash("sha256").update(zeroed).digest();
  if (!actual.equals(stored)) throw integrity("META block checksum does not match", "META_INVALID");

  const records: MetaRecord[] = [];
  let offset = headerSize;
  const limit = metaBlockSize - trailerSize;
  while (limit - offset >= recordHeaderSize) {
    const tag = buf.readUInt32BE(offset);
    if (tag === 0) break;
    const length = buf.readUInt32BE(offset + 4);
    if (length > limit - offset - recordHeaderSize)
      throw integrity(`META tag 0x${tag.toString(16)} (${length} bytes) runs past the block`, "META_INVALID");
    records.push({ tag, value: Buffer.from(buf.subarray(offset + 8, offset + 8 + length)) });
    offset += recordHeaderSize + length;
  }
  return records;
}

/** Reads the META content (both copies): the first block if valid, else the second. */
export function decodeMetaPartition(content: Uint8Array): MetaRecord[] {
  if (content.length < metaContentSize)
    throw integrity(`META content is ${content.length} bytes, expected at least ${metaContentSize}`, "META_INVALID");
  try {
    return decodeMetaBlock(content.subarray(0, metaBlockSize));
  } catch (first) {
    try {
      return decodeMetaBlock(content.subarray(metaBlockSize, metaContentSize));
    } catch {
      throw first;
    }
  }
}
