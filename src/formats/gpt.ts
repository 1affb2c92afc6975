// GUID Partition Table (UEFI spec, chapter 5) with its protective MBR, as Talos's disk images carry it
// (siderolabs/go-blockdevice partitioning/gpt): 128 entries of 128 bytes right after the primary header
// (LBA 2), the first usable LBA and every partition start aligned to 1 MiB, partitions allocated one after
// the other, a backup copy (entries, then header) at the end of the disk.
//
// Pure: planning and encoding give byte buffers with their disk offsets; the caller writes them into a
// (sparse) file. Parsing works from buffers too. GUIDs are strings in canonical upper-case form
// ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"); on disk they are mixed-endian (first three fields
// little-endian, the last two as written).

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { badRequest, integrity } from "../errors.ts";

export const gptEntryCount = 128;
export const gptEntrySize = 128;
const headerSize = 92;
const headerSignature = "EFI PART";
const headerRevision = 0x00010000;
const nameBytes = 72; // 36 UTF-16LE code units
const mib = 1024 * 1024;
/** The logical sector sizes a GPT is laid out for here: powers of two up to a 4 KiB page. */
export const gptSectorSizes: readonly number[] = [512, 1024, 2048, 4096];

/** Partition type GUIDs Talos uses (internal/pkg/partition). */
export const GptType = {
  EfiSystem: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  BiosBoot: "21686148-6449-6E6F-744E-656564454649",
  LinuxFilesystem: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
} as const;

/** Partition attribute bits (UEFI spec table 5-8). */
export const GptAttribute = {
  RequiredPartition: 1n << 0n,
  NoBlockIoProtocol: 1n << 1n,
  /** Bit 2: what Talos sets on the BIOS boot partition. */
  LegacyBiosBootable: 1n << 2n,
} as const;

const guidPattern = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;

export function normalizeGuid(guid: string): string {
  const upper = guid.toUpperCase();
  if (!guidPattern.test(upper)) throw badRequest(`invalid GUID "${guid}"`, "GUID_INVALID");
  return upper;
}

/**
 * A deterministic GUID for a label, as upstream's makefs.GUIDFromLabel (uuid.NewHash with SHA-256, the nil
 * namespace and version 8): the first 16 bytes of SHA-256(16 zero bytes ‖ label), version nibble 8,
 * RFC 4122 variant.
 */
export function guidFromLabel(label: string): string {
  const digest = createHash("sha256").update(Buffer.alloc(16)).update(label, "utf8").digest();
  const bytes = Buffer.from(digest.subarray(0, 16));
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  return formatGuidBytes(bytes);
}

/** Canonical text of 16 bytes in RFC 4122 (big-endian) order. */
function formatGuidBytes(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString("hex").toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The 16 bytes GPT stores for a GUID: time_low, time_mid, time_hi little-endian; the rest as written. */
export function encodeGuid(guid: string): Buffer {
  const b = Buffer.from(normalizeGuid(guid).replaceAll("-", ""), "hex");
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8, 16),
  ]);
}

export function decodeGuid(stored: Uint8Array): string {
  const b = Buffer.from(stored.subarray(0, 16));
  return formatGuidBytes(
    Buffer.concat([
      Buffer.from(b.subarray(0, 4)).reverse(),
      Buffer.from(b.subarray(4, 6)).reverse(),
      Buffer.from(b.subarray(6, 8)).reverse(),
      b.subarray(8, 16),
    ]),
  );
}

export interface GptPartitionSpec {
  /** The partition name (GPT label), at most 36 UTF-16 code units. */
  name: string;
  typeGuid: string;
  /** Size in bytes (a whole number of sectors); undefined takes the rest of the disk, aligned down. */
  sizeBytes?: number;
  /** Unique partition GUID; default guidFromLabel(name), as upstream's image mode. */
  guid?: string;
  attributes?: bigint;
}

export interface GptPartition {
  /** 1-based partition number. */
  number: number;
  name: string;
  typeGuid: string;
  guid: string;
  firstLba: number;
  lastLba: number;
  attributes: bigint;
  offsetBytes: number;
  sizeBytes: number;
}

export interface GptLayout {
  sectorSize: number;
  /** Sectors on the disk (LBA 0 … totalSectors − 1). */
  totalSectors: number;
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  primaryEntriesLba: number;
  backupEntriesLba: number;
  backupHeaderLba: number;
  partitions: GptPartition[];
}

export interface GptPlanOptions {
  diskSizeBytes: number;
  partitions: readonly GptPartitionSpec[];
  diskGuid: string;
  /** Logical sector size: 512 (default), 1024, 2048 or 4096. */
  sectorSize?: number;
  /** Start alignment (default 1 MiB, as upstream: max(io size, 2048 × 512)). */
  alignmentBytes?: number;
  /**
   * LBAs left free between the primary header and its entries (go-blockdevice gpt.WithSkipLBAs; an overlay's
   * PartitionOptions.Offset): the entries start at LBA 2 + skip, the first partition after them, aligned.
   */
  skipLbas?: number;
}

function entrySectors(sectorSize: number): number {
  return Math.ceil((gptEntryCount * gptEntrySize) / sectorSize);
}

function checkName(name: string): void {
  if (Buffer.byteLength(name, "utf16le") > nameBytes)
    throw badRequest(`partition name "${name}" is longer than 36 UTF-16 code units`, "GPT_NAME_TOO_LONG");
}

/** Places the partitions one after the other from the first usable LBA, each start aligned. */
export function planGpt(options: GptPlanOptions): GptLayout {
  const sectorSize = options.sectorSize ?? 512;
  if (!gptSectorSizes.includes(sectorSize)) throw badRequest(`unsupported sector size ${sectorSize}`);
  const alignment = Math.ceil(Math.max(options.alignmentBytes ?? mib, sectorSize) / sectorSize);
  if (!Number.isSafeInteger(options.diskSizeBytes) || options.diskSizeBytes % sectorSize !== 0)
    throw badRequest(`disk size ${options.diskSizeBytes} is not a whole number of ${sectorSize}-byte sectors`);
  const totalSectors = options.diskSizeBytes / sectorSize;
  const entries = entrySectors(sectorSize);
  const backupHeaderLba = totalSectors - 1;
  const backupEntriesLba = backupHeaderLba - entries;
  const lastUsableLba = backupEntriesLba - 1;
  const skip = options.skipLbas ?? 0;
  if (!Number.isSafeInteger(skip) || skip < 0) throw badRequest(`invalid number of LBAs to skip: ${skip}`);
  const primaryEntriesLba = 2 + skip;
  const firstUsableLba = Math.ceil((primaryEntriesLba + entries) / alignment) * alignment;
  if (lastUsableLba <= firstUsableLba)
    throw badRequest(`disk of ${options.diskSizeBytes} bytes is too small for a GPT`);
  if (options.partitions.length > gptEntryCount) throw badRequest(`more than ${gptEntryCount} partitions`);
  const alignDown = (lba: number) => Math.floor(lba / alignment) * alignment;
  const partitions: GptPartition[] = [];
  let next = firstUsableLba;
  for (const [i, spec] of options.partitions.entries()) {
    checkName(spec.name);
    const start = Math.ceil(next / alignment) * alignment;
    // Room up to the last usable LBA, aligned down, as upstream's allocatable ranges.
    const room = (alignDown(lastUsableLba) - start) * sectorSize;
    const size = spec.sizeBytes ?? room;
    if (!Number.isSafeInteger(size) || size < sectorSize || size % sectorSize !== 0)
      throw badRequest(`partition ${spec.name}: size ${size} is not a positive whole number of sectors`);
    if (size > room)
      throw badRequest(`partition ${spec.name} (${size} bytes) does not fit: ${Math.max(room, 0)} bytes left`);
    const sectors = size / sectorSize;
    partitions.push({
      number: i + 1,
      name: spec.name,
      typeGuid: normalizeGuid(spec.typeGuid),
      guid: normalizeGuid(spec.guid ?? guidFromLabel(spec.name)),
      firstLba: start,
      lastLba: start + sectors - 1,
      attributes: spec.attributes ?? 0n,
      offsetBytes: start * sectorSize,
      sizeBytes: size,
    });
    next = start + sectors;
  }
  return {
    sectorSize,
    totalSectors,
    diskGuid: normalizeGuid(options.diskGuid),
    firstUsableLba,
    lastUsableLba,
    primaryEntriesLba,
    backupEntriesLba,
    backupHeaderLba,
    partitions,
  };
}

/** The partition entry array (128 × 128 bytes). */
export function encodeGptEntries(partitions: readonly GptPartition[]): Buffer {
  const array = Buffer.alloc(gptEntryCount * gptEntrySize);
  for (const [i, p] of partitions.entries()) {
    const e = array.subarray(i * gptEntrySize, (i + 1) * gptEntrySize);
    encodeGuid(p.typeGuid).copy(e, 0);
    encodeGuid(p.guid).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.firstLba), 32);
    e.writeBigUInt64LE(BigInt(p.lastLba), 40);
    e.writeBigUInt64LE(p.attributes, 48);
    Buffer.from(p.name, "utf16le").copy(e, 56, 0, nameBytes);
  }
  return array;
}

function encodeHeader(layout: GptLayout, which: "primary" | "backup", entriesCrc: number): Buffer {
  const h = Buffer.alloc(layout.sectorSize);
  const primary = which === "primary";
  h.write(headerSignature, 0, "latin1");
  h.writeUInt32LE(headerRevision, 8);
  h.writeUInt32LE(headerSize, 12);
  h.writeBigUInt64LE(BigInt(primary ? 1 : layout.backupHeaderLba), 24);
  h.writeBigUInt64LE(BigInt(primary ? layout.backupHeaderLba : 1), 32);
  h.writeBigUInt64LE(BigInt(layout.firstUsableLba), 40);
  h.writeBigUInt64LE(BigInt(layout.lastUsableLba), 48);
  encodeGuid(layout.diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(primary ? layout.primaryEntriesLba : layout.backupEntriesLba), 72);
  h.writeUInt32LE(gptEntryCount, 80);
  h.writeUInt32LE(gptEntrySize, 84);
  h.writeUInt32LE(entriesCrc, 88);
  // The header CRC covers the 92 header bytes with the CRC field itself zero (it still is here).
  h.writeUInt32LE(crc32(h.subarray(0, headerSize)), 16);
  return h;
}

/**
 * The protective MBR (one 0xEE entry from LBA 1 over the whole disk, capped at 2³²−1 sectors), written as
 * go-blockdevice does: CHS start 0/2/0, CHS end ff/ff/ff. `bootCode` (≤ 440 bytes) goes at offset 0.
 */
export function encodeProtectiveMbr(layout: GptLayout, options: { bootable?: boolean } = {}): Buffer {
  const mbr = Buffer.alloc(512);
  const entry = mbr.subarray(446, 462);
  entry[0] = options.bootable ? 0x80 : 0x00;
  entry.set([0x00, 0x02, 0x00], 1);
  entry[4] = 0xee;
  entry.set([0xff, 0xff, 0xff], 5);
  entry.writeUInt32LE(1, 8);
  entry.writeUInt32LE(Math.min(layout.totalSectors - 1, 0xffffffff), 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

export interface GptWrite {
  offset: number;
  data: Buffer;
}

/** Everything a GPT disk needs written, in disk order: protective MBR, primary header + entries, backup. */
export function encodeGpt(layout: GptLayout, options: { bootableProtectiveMbr?: boolean } = {}): GptWrite[] {
  const entries = encodeGptEntries(layout.partitions);
  const entriesCrc = crc32(entries);
  const s = layout.sectorSize;
  const mbr = encodeProtectiveMbr(layout, { bootable: options.bootableProtectiveMbr });
  return [
    // With 4096-byte sectors the MBR still is the first 512 bytes of LBA 0.
    { offset: 0, data: mbr },
    { offset: s, data: encodeHeader(layout, "primary", entriesCrc) },
    { offset: layout.primaryEntriesLba * s, data: entries },
    { offset: layout.backupEntriesLba * s, data: entries },
    { offset: layout.backupHeaderLba * s, data: encodeHeader(layout, "backup", entriesCrc) },
  ];
}

export interface GptHeader {
  currentLba: number;
  backupLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

/** Parses and checks a GPT header sector (signature, revision, size, CRC). */
export function parseGptHeader(sector: Uint8Array): GptHeader {
  const h = Buffer.from(sector.buffer, sector.byteOffset, sector.byteLength);
  if (h.length < headerSize || h.toString("latin1", 0, 8) !== headerSignature)
    throw integrity('not a GPT header: signature "EFI PART" missing', "GPT_INVALID");
  const size = h.readUInt32LE(12);
  if (size < headerSize || size > h.length) throw integrity(`GPT header size ${size} is invalid`, "GPT_INVALID");
  const copy = Buffer.from(h.subarray(0, size));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) throw integrity("GPT header CRC mismatch", "GPT_INVALID");
  const entrySize = h.readUInt32LE(84);
  const entryCount = h.readUInt32LE(80);
  if (entrySize < 128 || entrySize % 8 !== 0 || entryCount > 1024)
    throw integrity(`GPT entry array ${entryCount} × ${entrySize} is not supported`, "GPT_INVALID");
  const lba = (offset: number) => Number(h.readBigUInt64LE(offset));
  return {
    currentLba: lba(24),
    backupLba: lba(32),
    firstUsableLba: lba(40),
    lastUsableLba: lba(48),
    diskGuid: decodeGuid(h.subarray(56, 72)),
    entriesLba: lba(72),
    entryCount,
    entrySize,
    entriesCrc: h.readUInt32LE(88),
  };
}

/** The used entries of an entry array (checked against the header's CRC), numbered from 1. */
export function parseGptEntries(array: Uint8Array, header: GptHeader, sectorSize = 512): GptPartition[] {
  const bytes = header.entryCount * header.entrySize;
  const data = Buffer.from(array.buffer, array.byteOffset, array.byteLength).subarray(0, bytes);
  if (data.length < bytes) throw integrity("GPT entry array is truncated", "GPT_INVALID");
  if (crc32(data) !== header.entriesCrc) throw integrity("GPT entry array CRC mismatch", "GPT_INVALID");
  const partitions: GptPartition[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const e = data.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const firstLba = Number(e.readBigUInt64LE(32));
    const lastLba = Number(e.readBigUInt64LE(40));
    const raw = e.toString("utf16le", 56, 56 + nameBytes);
    const end = raw.indexOf("\u0000");
    partitions.push({
      number: i + 1,
      name: end === -1 ? raw : raw.slice(0, end),
      typeGuid: decodeGuid(e.subarray(0, 16)),
      guid: decodeGuid(e.subarray(16, 32)),
      firstLba,
      lastLba,
      attributes: e.readBigUInt64LE(48),
      offsetBytes: firstLba * sectorSize,
      sizeBytes: (lastLba - firstLba + 1) * sectorSize,
    });
  }
  return partitions;
}

/** Reads bytes of the disk: (offset, length) → exactly length bytes. */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

export interface GptTable {
  header: GptHeader;
  partitions: GptPartition[];
  /** The backup header and entries agree with the primary ones. */
  backupValid: boolean;
  /** The protective MBR has its 0xEE entry. */
  protectiveMbr: boolean;
}

/** Reads and checks a GPT (primary, with the backup compared) from a disk of `diskSizeBytes`. */
export async function readGpt(readAt: ReadAt, diskSizeBytes: number, sectorSize = 512): Promise<GptTable> {
  const mbr = Buffer.from(await readAt(0, 512));
  const protectiveMbr = mbr[510] === 0x55 && mbr[511] === 0xaa && mbr[446 + 4] === 0xee;
  const header = parseGptHeader(await readAt(sectorSize, sectorSize));
  const arrayBytes = header.entryCount * header.entrySize;
  const partitions = parseGptEntries(await readAt(header.entriesLba * sectorSize, arrayBytes), header, sectorSize);
  let backupValid = false;
  const lastLba = diskSizeBytes / sectorSize - 1;
  if (header.backupLba === lastLba)
    try {
      const backup = parseGptHeader(await readAt(header.backupLba * sectorSize, sectorSize));
      const backupEntries = parseGptEntries(
        await readAt(backup.entriesLba * sectorSize, arrayBytes),
        backup,
        sectorSize,
      );
      backupValid =
        backup.currentLba === header.backupLba &&
        backup.backupLba === 1 &&
        backup.diskGuid === header.diskGuid &&
        backup.entriesCrc === header.entriesCrc &&
        backupEntries.length === partitions.length;
    } catch {
      backupValid = false;
    }
  return { header, partitions, backupValid, protectiveMbr };
}
