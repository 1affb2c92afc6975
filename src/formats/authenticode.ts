// The Authenticode image hash of a PE file, and the certificate table a signature is stored in (Microsoft's
// "Windows Authenticode Portable Executable Signature Format"; the PE format's "The Attribute Certificate Table";
// UEFI 2.10 §32.2.3). UEFI firmware with Secure Boot hashes a PE image this way and compares the result with
// the one the signature's SpcIndirectDataContent names:
//
// - the headers up to SizeOfHeaders, leaving out the optional header's CheckSum (4 bytes) and the Certificate
//   Table data directory entry (8 bytes);
// - each section's raw data (SizeOfRawData bytes at PointerToRawData), in file order;
// - whatever follows the last section, up to the certificate table (or the end of the file).
//
// The certificate table itself is never hashed: it is appended at the end of the file, 8-byte aligned, as one
// WIN_CERTIFICATE (dwLength, wRevision 0x0200, wCertificateType 0x0002 = PKCS#7 SignedData, the DER bytes,
// zero padding to 8 bytes), and the data directory entry holds its file offset and size.
//
// Files are read in ranges and hashed as a stream: a UKI carries the whole initramfs.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { badRequest } from "../errors.ts";
import { dataDirectorySecurity, type PeImage, parsePe } from "./pe.ts";

const winCertRevision2 = 0x0200;
const winCertTypePkcsSignedData = 0x0002;
/** Headers are read whole to find the ranges; real ones are a few KiB. */
const maxHeaderBytes = 1024 * 1024;

export type AuthenticodeHash = "sha256" | "sha384" | "sha512";

export interface AuthenticodeLayout {
  image: PeImage;
  /** File ranges hashed, in order: [start, end). */
  ranges: Array<[number, number]>;
  /** Offset of the Certificate Table data directory entry (8 bytes). */
  certificateEntryOffset: number;
  /** The existing certificate table, if the file is signed. */
  certificateTable: { offset: number; size: number } | undefined;
  fileSize: number;
}

/** The hashed ranges of a PE file, from its first bytes (at least SizeOfHeaders of them) and its size. */
export function authenticodeLayout(headers: Uint8Array, fileSize: number): AuthenticodeLayout {
  const image = parsePe(headers);
  const { optional } = image;
  if (optional.dataDirectories.length <= dataDirectorySecurity)
    throw badRequest("PE image has no Certificate Table data directory", "PE_UNSUPPORTED");
  if (optional.sizeOfHeaders > headers.length) throw badRequest("PE headers run past the bytes read", "PE_INVALID");
  const checksumOffset = optional.offset + 64;
  const directoriesAt = optional.offset + (optional.magic === 0x20b ? 112 : 96);
  const certificateEntryOffset = directoriesAt + dataDirectorySecurity * 8;
  const entry = optional.dataDirectories[dataDirectorySecurity] as { virtualAddress: number; size: number };
  // For this directory "virtualAddress" is a file offset.
  const certificateTable = entry.size === 0 ? undefined : { offset: entry.virtualAddress, size: entry.size };
  if (certificateTable !== undefined && certificateTable.offset + certificateTable.size > fileSize)
    throw badRequest("PE certificate table runs past the end of the file", "PE_INVALID");
  const ranges: Array<[number, number]> = [
    [0, checksumOffset],
    [checksumOffset + 4, certificateEntryOffset],
    [certificateEntryOffset + 8, optional.sizeOfHeaders],
  ];
  const sections = image.sections
    .filter((s) => s.sizeOfRawData > 0)
    .sort((a, b) => a.pointerToRawData - b.pointerToRawData);
  let end = optional.sizeOfHeaders;
  for (const s of sections) {
    if (s.pointerToRawData < end)
      throw badRequest(`PE section ${s.name} overlaps the headers or the section before it`, "PE_INVALID");
    if (s.pointerToRawData + s.sizeOfRawData > fileSize)
      throw badRequest(`PE section ${s.name} runs past the end of the file`, "PE_INVALID");
    // Bytes between sections are not part of any section; the hash leaves them out as the format does.
    ranges.push([s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData]);
    end = s.pointerToRawData + s.sizeOfRawData;
  }
  const trailerEnd = certificateTable?.offset ?? fileSize;
  if (trailerEnd < end) throw badRequest("PE certificate table overlaps a section", "PE_INVALID");
  if (trailerEnd > end) ranges.push([end, trailerEnd]);
  return { image, ranges, certificateEntryOffset, certificateTable, fileSize };
}

/** Reads the first bytes of a file: enough for the PE headers (SizeOfHeaders). */
export async function readPeHeaders(path: string): Promise<{ headers: Buffer; fileSize: number }> {
  const fileSize = (await stat(path)).size;
  const handle = await open(path, "r");
  try {
    const first = Buffer.alloc(Math.min(4096, fileSize));
    await handle.read(first, 0, first.length, 0);
    const sizeOfHeaders = parsePe(first).optional.sizeOfHeaders;
    if (sizeOfHeaders <= first.length) return { headers: first, fileSize };
    if (sizeOfHeaders > maxHeaderBytes || sizeOfHeaders > fileSize)
      throw badRequest(`PE SizeOfHeaders ${sizeOfHeaders} is implausible`, "PE_INVALID");
    const all = Buffer.alloc(sizeOfHeaders);
    await handle.read(all, 0, sizeOfHeaders, 0);
    return { headers: all, fileSize };
  } finally {
    await handle.close();
  }
}

/** The Authenticode hash of a PE file, streamed from disk. */
export async function authenticodeDigest(
  path: string,
  hash: AuthenticodeHash = "sha256",
  signal?: AbortSignal,
): Promise<{ digest: Buffer; layout: AuthenticodeLayout }> {
  const { headers, fileSize } = await readPeHeaders(path);
  const layout = authenticodeLayout(headers, fileSize);
  const hasher = createHash(hash);
  for (const [start, end] of layout.ranges) {
    if (end <= start) continue;
    for await (const chunk of createReadStream(path, { start, end: end - 1, highWaterMark: 1024 * 1024, signal }))
      hasher.update(chunk as Buffer);
  }
  return { digest: hasher.digest(), layout };
}

/** Zero bytes to append so that `size` becomes a multiple of 8 (the certificate table's alignment). */
export function paddingTo8(size: number): number {
  return (8 - (size % 8)) % 8;
}

/**
 * The WIN_CERTIFICATE entry for a PKCS#7 SignedData (DER), padded to 8 bytes: dwLength counts the 8-byte
 * header and the DER bytes (not the padding), as sbsigntool and the PE format's own example do.
 */
export function winCertificate(signedData: Uint8Array): Buffer {
  const length = 8 + signedData.length;
  const out = Buffer.alloc(length + paddingTo8(length));
  out.writeUInt32LE(length, 0);
  out.writeUInt16LE(winCertRevision2, 4);
  out.writeUInt16LE(winCertTypePkcsSignedData, 6);
  Buffer.from(signedData).copy(out, 8);
  return out;
}

/** The PKCS#7 SignedData of each WIN_CERTIFICATE in a certificate table. */
export function parseCertificateTable(table: Uint8Array): Buffer[] {
  const buf = Buffer.from(table.buffer, table.byteOffset, table.length);
  const out: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const length = buf.readUInt32LE(at);
    if (length < 8 || at + length > buf.length) throw badRequest("malformed WIN_CERTIFICATE in the certificate table");
    if (buf.readUInt16LE(at + 6) === winCertTypePkcsSignedData)
      out.push(Buffer.from(buf.subarray(at + 8, at + length)));
    at += length + paddingTo8(length);
  }
  return out;
}
