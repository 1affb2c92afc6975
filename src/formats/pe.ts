// PE/COFF images (UEFI applications): parsing the headers, and appending sections to an image the way
// systemd's ukify does (keep the input's bytes, add section headers in the header slack, data at the end).
// Used to turn systemd-stub.efi into a UKI; `.linux`/`.initrd` are streamed from files, never held.
//
// Layout reference (Microsoft PE format): MZ header with e_lfanew at 0x3c → "PE\0\0" → COFF file header
// (20 bytes) → optional header (PE32+ magic 0x20b, PE32 0x10b) with its data directories → section table
// (40 bytes per section) → padding up to SizeOfHeaders → section data at PointerToRawData (multiples of
// FileAlignment), loaded at VirtualAddress (multiples of SectionAlignment).

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Writable } from "node:stream";
import { type AppError, badRequest, integrity } from "../errors.ts";

export const peMagic32 = 0x10b;
export const peMagic64 = 0x20b;
/** IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ: what every appended UKI section is. */
export const sectionDataReadOnly = 0x40000040;

export const sectionHeaderSize = 40;
export const coffHeaderSize = 20;
/** Index of the Certificate Table in the optional header's data directories. */
export const dataDirectorySecurity = 4;
const dataDirectoryDebug = 6;
/** Stubs are a few hundred KiB; refuse anything absurd before allocating. */
export const maxStubBytes = 64 * 1024 * 1024;
/** PE sizes and addresses are 32-bit. */
export const u32Limit = 2 ** 32;

export interface PeSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
  pointerToRelocations: number;
  pointerToLinenumbers: number;
  characteristics: number;
  /** Offset of this section's 40-byte header in the file. */
  headerOffset: number;
}

export interface PeImage {
  /** e_lfanew: where "PE\0\0" is. */
  peOffset: number;
  coff: {
    machine: number;
    numberOfSections: number;
    timeDateStamp: number;
    pointerToSymbolTable: number;
    numberOfSymbols: number;
    sizeOfOptionalHeader: number;
    characteristics: number;
  };
  optional: {
    /** File offset of the optional header. */
    offset: number;
    magic: number;
    sizeOfCode: number;
    sizeOfInitializedData: number;
    addressOfEntryPoint: number;
    sectionAlignment: number;
    fileAlignment: number;
    sizeOfImage: number;
    sizeOfHeaders: number;
    checkSum: number;
    subsystem: number;
    dataDirectories: { virtualAddress: number; size: number }[];
  };
  /** File offset of the section table. */
  sectionTableOffset: number;
  sections: PeSection[];
}

function malformed(message: string): AppError {
  return badRequest(`not a valid PE image: ${message}`, "PE_INVALID");
}

function need(buf: Buffer, end: number, what: string): void {
  if (end > buf.length) throw malformed(`${what} runs past the end of the file (${buf.length} bytes)`);
}

/** Parses the headers and section table of a PE image (PE32 or PE32+). */
export function parsePe(data: Uint8Array): PeImage {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  need(buf, 0x40, "DOS header");
  if (buf.toString("latin1", 0, 2) !== "MZ") throw malformed('no "MZ" signature');
  const peOffset = buf.readUInt32LE(0x3c);
  need(buf, peOffset + 4 + coffHeaderSize, "PE header");
  if (buf.readUInt32LE(peOffset) !== 0x00004550) throw malformed('no "PE\\0\\0" signature at e_lfanew');
  const c = peOffset + 4;
  const coff = {
    machine: buf.readUInt16LE(c),
    numberOfSections: buf.readUInt16LE(c + 2),
    timeDateStamp: buf.readUInt32LE(c + 4),
    pointerToSymbolTable: buf.readUInt32LE(c + 8),
    numberOfSymbols: buf.readUInt32LE(c + 12),
    sizeOfOptionalHeader: buf.readUInt16LE(c + 16),
    characteristics: buf.readUInt16LE(c + 18),
  };
  const o = c + coffHeaderSize;
  need(buf, o + coff.sizeOfOptionalHeader, "optional header");
  const magic = coff.sizeOfOptionalHeader >= 2 ? buf.readUInt16LE(o) : 0;
  if (magic !== peMagic64 && magic !== peMagic32)
    throw malformed(`unknown optional header magic 0x${magic.toString(16)}`);
  // PE32+ has a 64-bit ImageBase and no BaseOfData: the data directories start 16 bytes later than PE32's.
  const directoriesAt = magic === peMagic64 ? 112 : 96;
  if (coff.sizeOfOptionalHeader < directoriesAt) throw malformed("optional header is too short");
  const directoryCount = buf.readUInt32LE(o + directoriesAt - 4);
  if (directoriesAt + directoryCount * 8 > coff.sizeOfOptionalHeader)
    throw malformed(`${directoryCount} data directories do not fit the optional header`);
  const dataDirectories = Array.from({ length: directoryCount }, (_, i) => ({
    virtualAddress: buf.readUInt32LE(o + directoriesAt + i * 8),
    size: buf.readUInt32LE(o + directoriesAt + i * 8 + 4),
  }));
  const optional = {
    offset: o,
    magic,
    sizeOfCode: buf.readUInt32LE(o + 4),
    sizeOfInitializedData: buf.readUInt32LE(o + 8),
    addressOfEntryPoint: buf.readUInt32LE(o + 16),
    sectionAlignment: buf.readUInt32LE(o + 32),
    fileAlignment: buf.readUInt32LE(o + 36),
    sizeOfImage: buf.readUInt32LE(o + 56),
    sizeOfHeaders: buf.readUInt32LE(o + 60),
    checkSum: buf.readUInt32LE(o + 64),
    subsystem: buf.readUInt16LE(o + 68),
    dataDirectories,
  };
  const sectionTableOffset = o + coff.sizeOfOptionalHeader;
  need(buf, sectionTableOffset + coff.numberOfSections * sectionHeaderSize, "section table");
  const sections: PeSection[] = [];
  for (let i = 0; i < coff.numberOfSections; i++) {
    const s = sectionTableOffset + i * sectionHeaderSize;
    const rawName = buf.subarray(s, s + 8);
    const nul = rawName.indexOf(0);
    sections.push({
      name: rawName.toString("latin1", 0, nul < 0 ? 8 : nul),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      sizeOfRawData: buf.readUInt32LE(s + 16),
      pointerToRawData: buf.readUInt32LE(s + 20),
      pointerToRelocations: buf.readUInt32LE(s + 24),
      pointerToLinenumbers: buf.readUInt32LE(s + 28),
      characteristics: buf.readUInt32LE(s + 36),
      headerOffset: s,
    });
  }
  return { peOffset, coff, optional, sectionTableOffset, sections };
}

/** The raw bytes of a section (its VirtualSize when smaller than the file-aligned raw size). */
export function readSection(data: Uint8Array, image: PeImage, name: string): Buffer | undefined {
  const section = image.sections.find((s) => s.name === name);
  if (section === undefined) return undefined;
  const length = section.virtualSize > 0 ? Math.min(section.virtualSize, section.sizeOfRawData) : section.sizeOfRawData;
  if (section.pointerToRawData + length > data.length) throw malformed(`section ${name} runs past the end of the file`);
  return Buffer.from(data.subarray(section.pointerToRawData, section.pointerToRawData + length));
}

export const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
export const alignUp = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;

export interface NewSection {
  /** At most 8 ASCII bytes, e.g. ".initrd". */
  name: string;
  /** Exact content length in bytes (> 0). */
  size: number;
}

export interface PlacedSection {
  name: string;
  virtualAddress: number;
  virtualSize: number;
  pointerToRawData: number;
  sizeOfRawData: number;
}

export interface AppendLayout {
  /** Everything before the first new section's data: the patched input image plus alignment padding. */
  head: Buffer;
  sections: PlacedSection[];
  /** Size of the whole output file. */
  totalSize: number;
}

function checkSectionName(name: string): void {
  if (!/^[\x21-\x7e]{1,8}$/.test(name))
    throw badRequest(
      `invalid PE section name ${JSON.stringify(name)}: 1–8 printable ASCII characters`,
      "PE_SECTION_NAME",
    );
}

/**
 * Lays out `sections` appended to `image` (pure: sizes only). The input's bytes stay in place; new section
 * headers go after the existing ones. When SizeOfHeaders has no room for them, the headers grow by whole
 * FileAlignment units and the input's section data moves down by that much (file offsets only: virtual
 * addresses never change), provided the headers still end below the first section's virtual address.
 * A signed input, or one whose debug directory or symbol table would need moving, is refused.
 * CheckSum is zeroed (as ukify does: it is only checked for drivers); TimeDateStamp is kept.
 */
export function planAppendSections(input: Uint8Array, sections: readonly NewSection[]): AppendLayout {
  if (input.length > maxStubBytes) throw badRequest(`PE image is larger than ${maxStubBytes} bytes`, "PE_INVALID");
  const image = parsePe(input);
  const { optional, coff } = image;
  const fileAlignment = optional.fileAlignment;
  const sectionAlignment = optional.sectionAlignment;
  if (!isPowerOfTwo(fileAlignment) || !isPowerOfTwo(sectionAlignment) || sectionAlignment < fileAlignment)
    throw malformed(`bad alignment (file ${fileAlignment}, section ${sectionAlignment})`);
  if ((optional.dataDirectories[dataDirectorySecurity]?.size ?? 0) !== 0)
    throw badRequest("PE image is already signed (it has a certificate table): sign the result instead", "PE_SIGNED");
  if (sections.length === 0) throw badRequest("no sections to append", "PE_SECTION_NONE");
  for (const s of sections) {
    checkSectionName(s.name);
    if (!Number.isSafeInteger(s.size) || s.size <= 0)
      throw badRequest(`PE section ${s.name} must have content (size ${s.size})`, "PE_SECTION_EMPTY");
  }

  let body = Buffer.from(input);
  // Some stubs still carry a COFF symbol table at the end of the file; images must not (ukify strips it too).
  if (coff.pointerToSymbolTable !== 0) {
    const symbolsEnd = coff.pointerToSymbolTable + coff.numberOfSymbols * 18;
    const stringsSize = symbolsEnd + 4 <= body.length ? body.readUInt32LE(symbolsEnd) : 0;
    if (symbolsEnd + stringsSize !== body.length)
      throw badRequest("PE image has a COFF symbol table that is not at its end", "PE_UNSUPPORTED");
    body = body.subarray(0, coff.pointerToSymbolTable);
    body.writeUInt32LE(0, image.peOffset + 4 + 8);
    body.writeUInt32LE(0, image.peOffset + 4 + 12);
  }

  const oldTableEnd = image.sectionTableOffset + image.sections.length * sectionHeaderSize;
  const newTableEnd = oldTableEnd + sections.length * sectionHeaderSize;
  const lowestVirtualAddress = Math.min(...image.sections.map((s) => s.virtualAddress), optional.sizeOfImage);
  let sizeOfHeaders = optional.sizeOfHeaders;
  let shift = 0;
  const slackIsFree = (end: number) => body.subarray(oldTableEnd, end).every((b) => b === 0);
  if (newTableEnd > sizeOfHeaders || !slackIsFree(newTableEnd)) {
    if (!slackIsFree(Math.min(sizeOfHeaders, body.length)))
      throw badRequest("PE image has data after its section table, no room for more section headers", "PE_NO_ROOM");
    shift = alignUp(newTableEnd - sizeOfHeaders, fileAlignment);
    if (sizeOfHeaders + shift > lowestVirtualAddress)
      throw badRequest(
        `no room for ${sections.length} more section headers: headers would end at ${sizeOfHeaders + shift}, past the first section's address ${lowestVirtualAddress}`,
        "PE_NO_ROOM",
      );
    if ((optional.dataDirectories[dataDirectoryDebug]?.size ?? 0) !== 0)
      throw badRequest(
        "PE image has a debug directory: its file offsets cannot be moved to make header room",
        "PE_NO_ROOM",
      );
    body = Buffer.concat([
      body.subarray(0, sizeOfHeaders),
      Buffer.alloc(shift),
      body.subarray(Math.min(sizeOfHeaders, body.length)),
    ]);
    sizeOfHeaders += shift;
    for (const s of image.sections) {
      const h = s.headerOffset;
      if (s.pointerToRawData !== 0) body.writeUInt32LE(s.pointerToRawData + shift, h + 20);
      if (s.pointerToRelocations !== 0) body.writeUInt32LE(s.pointerToRelocations + shift, h + 24);
      if (s.pointerToLinenumbers !== 0) body.writeUInt32LE(s.pointerToLinenumbers + shift, h + 28);
    }
  }

  let nextVirtualAddress = Math.max(
    ...image.sections.map((s) => alignUp(s.virtualAddress + (s.virtualSize || s.sizeOfRawData), sectionAlignment)),
    alignUp(sizeOfHeaders, sectionAlignment),
  );
  let cursor = alignUp(body.length, fileAlignment);
  const placed: PlacedSection[] = [];
  let addedInitializedData = 0;
  for (const s of sections) {
    const sizeOfRawData = alignUp(s.size, fileAlignment);
    placed.push({
      name: s.name,
      virtualAddress: nextVirtualAddress,
      virtualSize: s.size,
      pointerToRawData: cursor,
      sizeOfRawData,
    });
    cursor += sizeOfRawData;
    addedInitializedData += sizeOfRawData;
    nextVirtualAddress = alignUp(nextVirtualAddress + s.size, sectionAlignment);
  }
  if (nextVirtualAddress >= u32Limit || cursor >= u32Limit)
    throw badRequest("the sections do not fit a PE image (4 GiB limit)", "PE_TOO_LARGE");

  const head = Buffer.concat([body, Buffer.alloc(alignUp(body.length, fileAlignment) - body.length)]);
  placed.forEach((s, i) => {
    const h = oldTableEnd + i * sectionHeaderSize;
    head.fill(0, h, h + sectionHeaderSize);
    head.write(s.name, h, 8, "latin1");
    head.writeUInt32LE(s.virtualSize, h + 8);
    head.writeUInt32LE(s.virtualAddress, h + 12);
    head.writeUInt32LE(s.sizeOfRawData, h + 16);
    head.writeUInt32LE(s.pointerToRawData, h + 20);
    head.writeUInt32LE(sectionDataReadOnly, h + 36);
  });
  const c = image.peOffset + 4;
  const o = optional.offset;
  head.writeUInt16LE(image.sections.length + sections.length, c + 2);
  head.writeUInt32LE((optional.sizeOfInitializedData + addedInitializedData) % u32Limit, o + 8);
  head.writeUInt32LE(nextVirtualAddress, o + 56);
  head.writeUInt32LE(sizeOfHeaders, o + 60);
  head.writeUInt32LE(0, o + 64);
  return { head, sections: placed, totalSize: cursor };
}

/** Content for an appended section: bytes, or a file streamed at write time. */
export type SectionSource = { content: Uint8Array } | { path: string };

export interface SectionInput {
  name: string;
  source: SectionSource;
}

/** The byte size of a section's content. */
export async function sectionSourceSize(source: SectionSource): Promise<number> {
  return "content" in source ? source.content.length : (await stat(source.path)).size;
}

/** Writes one chunk, waiting for drain; rejects on the stream's error. */
export function writeChunk(out: Writable, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) {
      reject(out.errored ?? new Error("output closed"));
      return;
    }
    const onError = (err: Error) => reject(err);
    out.once("error", onError);
    const ok = out.write(chunk);
    const done = () => {
      out.off("error", onError);
      resolve();
    };
    if (ok) done();
    else out.once("drain", done);
  });
}

/** Streams a section's content to `out`, checking a file still has the size it was laid out with. */
export async function copySectionSource(
  out: Writable,
  source: SectionSource,
  size: number,
  name: string,
): Promise<void> {
  if ("content" in source) {
    await writeChunk(out, source.content);
    return;
  }
  let seen = 0;
  for await (const chunk of createReadStream(source.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > size) break;
    await writeChunk(out, chunk);
  }
  if (seen !== size)
    throw integrity(`section ${name}: ${source.path} changed size while being written (${size} → ${seen}+)`);
}

/**
 * Writes `input` with `sections` appended to `out` (not ended here): the layout is computed from sizes
 * first, then the headers, then each section streamed from its source and zero-padded to FileAlignment.
 */
export async function appendSections(
  input: Uint8Array,
  sections: readonly SectionInput[],
  out: Writable,
): Promise<AppendLayout> {
  const sizes = await Promise.all(sections.map((s) => sectionSourceSize(s.source)));
  const layout = planAppendSections(
    input,
    sections.map((s, i) => ({ name: s.name, size: sizes[i] as number })),
  );
  await writeChunk(out, layout.head);
  for (const [i, s] of sections.entries()) {
    const size = sizes[i] as number;
    const placed = layout.sections[i] as PlacedSection;
    await copySectionSource(out, s.source, size, s.name);
    if (placed.sizeOfRawData > size) await writeChunk(out, Buffer.alloc(placed.sizeOfRawData - size));
  }
  return layout;
}
