// PE images assembled the way Talos's imager does it from 1.10 (siderolabs/talos
// internal/pkg/uki/internal/pe/native.go AssembleNative, called by internal/pkg/uki/assemble.go): the headers are
// written anew rather than patched (src/formats/pe.ts keeps the stub's bytes, as ukify does):
//
// - DOS header: the stub's first 64 bytes with e_lfanew = 0x80, then 64 zero bytes (the DOS program is dropped),
//   "PE\0\0" at 0x80;
// - COFF header: the stub's, with the section count grown and TimeDateStamp = SOURCE_DATE_EPOCH;
// - optional header (PE32+, 16 data directories): the stub's with linker version 0.0 and CheckSum 0;
//   SizeOfCode / SizeOfInitializedData recomputed as the raw sizes of the sections with and without
//   IMAGE_SCN_CNT_INITIALIZED_DATA; SizeOfHeaders = 0x80 + 20 + 240 + 40 × sections rounded up to FileAlignment
//   (upstream's formula; the 4 signature bytes always fit the rounding since that sum is 4 mod 8);
//   SizeOfImage up to the end of the last section rounded up to SectionAlignment;
// - section headers: name, virtual size and address, raw size and pointer, characteristics — relocation and
//   line-number fields zero; raw data packed one after another from SizeOfHeaders, the stub's sections first
//   (their raw bytes, SizeOfRawData of them), then the new ones (IMAGE_SCN_CNT_INITIALIZED_DATA |
//   IMAGE_SCN_MEM_READ) at virtual addresses from the end of the stub's last section, each rounded up to
//   SectionAlignment, raw sizes rounded up to FileAlignment and zero-filled.

import type { Writable } from "node:stream";
import { badRequest } from "../errors.ts";
import {
  alignUp,
  coffHeaderSize,
  copySectionSource,
  dataDirectorySecurity,
  isPowerOfTwo,
  maxStubBytes,
  type NewSection,
  type PlacedSection,
  parsePe,
  peMagic64,
  type SectionInput,
  sectionDataReadOnly,
  sectionHeaderSize,
  sectionSourceSize,
  u32Limit,
  writeChunk,
} from "./pe.ts";

const dosHeaderLength = 0x40;
const peOffset = 0x80;
const optionalHeader64Size = 240;
const imageScnCntInitializedData = 0x40;

interface OutputSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
  characteristics: number;
  /** Where its bytes come from: the stub (offset) or the appended section with this index. */
  from: { stubOffset: number } | { appended: number };
}

export interface NativeLayout {
  /** The headers, SizeOfHeaders bytes. */
  head: Buffer;
  sections: OutputSection[];
  /** The appended sections as placed. */
  appended: PlacedSection[];
  totalSize: number;
}

function unsupportedStub(message: string) {
  return badRequest(`PE image cannot be assembled as Talos does: ${message}`, "PE_UNSUPPORTED");
}

/** Lays out `stub` with `sections` appended, headers written anew (pure: sizes only). */
export function planNativeAssembly(stub: Uint8Array, sections: readonly NewSection[], timestamp: number): NativeLayout {
  if (stub.length > maxStubBytes) throw badRequest(`PE image is larger than ${maxStubBytes} bytes`, "PE_INVALID");
  if (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp >= u32Limit)
    throw badRequest(`PE time stamp ${timestamp} does not fit 32 bits`);
  const image = parsePe(stub);
  const { coff, optional } = image;
  // Upstream reads the stub with Go's debug/pe and writes an OptionalHeader64: PE32 stubs are refused there.
  if (optional.magic !== peMagic64 || coff.sizeOfOptionalHeader !== optionalHeader64Size)
    throw unsupportedStub("not a PE32+ image with a 240-byte optional header");
  if (optional.dataDirectories.length > 16) throw unsupportedStub("more than 16 data directories");
  if ((optional.dataDirectories[dataDirectorySecurity]?.size ?? 0) !== 0)
    throw badRequest("PE image is already signed (it has a certificate table): sign the result instead", "PE_SIGNED");
  if (image.sections.length === 0) throw unsupportedStub("it has no sections");
  const { fileAlignment, sectionAlignment } = optional;
  if (!isPowerOfTwo(fileAlignment) || !isPowerOfTwo(sectionAlignment))
    throw badRequest(`not a valid PE image: bad alignment (file ${fileAlignment}, section ${sectionAlignment})`);
  for (const s of sections) {
    if (!/^[\x21-\x7e]{1,8}$/.test(s.name))
      throw badRequest(`invalid PE section name ${JSON.stringify(s.name)}: 1–8 printable ASCII characters`);
    if (!Number.isSafeInteger(s.size) || s.size <= 0)
      throw badRequest(`PE section ${s.name} must have content (size ${s.size})`, "PE_SECTION_EMPTY");
  }
  if (sections.length === 0) throw badRequest("no sections to append", "PE_SECTION_NONE");

  const out: OutputSection[] = image.sections.map((s) => ({
    name: s.name,
    virtualSize: s.virtualSize,
    virtualAddress: s.virtualAddress,
    sizeOfRawData: s.sizeOfRawData,
    pointerToRawData: 0,
    characteristics: s.characteristics,
    from: { stubOffset: s.pointerToRawData },
  }));
  const last = image.sections[image.sections.length - 1] as (typeof image.sections)[number];
  let virtualAddress = alignUp(last.virtualAddress + last.virtualSize, sectionAlignment);
  const appended: PlacedSection[] = [];
  sections.forEach((s, i) => {
    const placed = {
      name: s.name,
      virtualAddress,
      virtualSize: s.size,
      pointerToRawData: 0,
      sizeOfRawData: alignUp(s.size, fileAlignment),
    };
    appended.push(placed);
    out.push({ ...placed, characteristics: sectionDataReadOnly, from: { appended: i } });
    virtualAddress = alignUp(virtualAddress + s.size, sectionAlignment);
  });

  const sizeOfHeaders = alignUp(
    peOffset + coffHeaderSize + optionalHeader64Size + sectionHeaderSize * out.length,
    fileAlignment,
  );
  let cursor = sizeOfHeaders;
  let sizeOfCode = 0;
  let sizeOfInitializedData = 0;
  for (const s of out) {
    s.pointerToRawData = cursor;
    const from = s.from;
    if ("appended" in from) (appended[from.appended] as PlacedSection).pointerToRawData = cursor;
    cursor += s.sizeOfRawData;
    if (s.characteristics & imageScnCntInitializedData) sizeOfInitializedData += s.sizeOfRawData;
    else sizeOfCode += s.sizeOfRawData;
  }
  const lastOut = out[out.length - 1] as OutputSection;
  // Upstream adds ImageBase before rounding and takes it off after; image bases are aligned, so this is the same.
  const sizeOfImage = alignUp(lastOut.virtualAddress + lastOut.virtualSize, sectionAlignment);
  if (cursor >= u32Limit || sizeOfImage >= u32Limit)
    throw badRequest("the sections do not fit a PE image (4 GiB limit)", "PE_TOO_LARGE");

  const src = Buffer.from(stub.buffer, stub.byteOffset, stub.length);
  const head = Buffer.alloc(sizeOfHeaders);
  src.copy(head, 0, 0, dosHeaderLength);
  head.writeUInt32LE(peOffset, 0x3c);
  head.writeUInt32LE(0x00004550, peOffset);
  const c = peOffset + 4;
  src.copy(head, c, image.peOffset + 4, image.peOffset + 4 + coffHeaderSize);
  head.writeUInt16LE(out.length, c + 2);
  head.writeUInt32LE(timestamp, c + 4);
  // A COFF symbol table (some stubs keep one at their end) is not carried over: nothing points to it any more.
  head.writeUInt32LE(0, c + 8);
  head.writeUInt32LE(0, c + 12);
  const o = c + coffHeaderSize;
  src.copy(head, o, optional.offset, optional.offset + optionalHeader64Size);
  head.writeUInt8(0, o + 2);
  head.writeUInt8(0, o + 3);
  head.writeUInt32LE(sizeOfCode % u32Limit, o + 4);
  head.writeUInt32LE(sizeOfInitializedData % u32Limit, o + 8);
  head.writeUInt32LE(sizeOfImage, o + 56);
  head.writeUInt32LE(sizeOfHeaders, o + 60);
  head.writeUInt32LE(0, o + 64);
  out.forEach((s, i) => {
    const h = o + optionalHeader64Size + i * sectionHeaderSize;
    head.write(s.name, h, 8, "latin1");
    head.writeUInt32LE(s.virtualSize, h + 8);
    head.writeUInt32LE(s.virtualAddress, h + 12);
    head.writeUInt32LE(s.sizeOfRawData, h + 16);
    head.writeUInt32LE(s.pointerToRawData, h + 20);
    head.writeUInt32LE(s.characteristics >>> 0, h + 36);
  });
  return { head, sections: out, appended, totalSize: cursor };
}

/**
 * Writes `stub` with `sections` appended to `out` (not ended here), headers written anew as Talos's imager does
 * from 1.10; `timestamp` is the COFF TimeDateStamp (upstream's SOURCE_DATE_EPOCH).
 */
export async function assembleNative(
  stub: Uint8Array,
  sections: readonly SectionInput[],
  timestamp: number,
  out: Writable,
): Promise<NativeLayout> {
  const sizes = await Promise.all(sections.map((s) => sectionSourceSize(s.source)));
  const layout = planNativeAssembly(
    stub,
    sections.map((s, i) => ({ name: s.name, size: sizes[i] as number })),
    timestamp,
  );
  await writeChunk(out, layout.head);
  for (const s of layout.sections) {
    let written: number;
    if ("stubOffset" in s.from) {
      // Go's Section.Open reads SizeOfRawData bytes from the stub; past its end the rest is zero-filled.
      const start = Math.min(s.from.stubOffset, stub.length);
      const bytes = stub.subarray(start, Math.min(start + s.sizeOfRawData, stub.length));
      if (bytes.length > 0) await writeChunk(out, bytes);
      written = bytes.length;
    } else {
      const input = sections[s.from.appended] as SectionInput;
      written = sizes[s.from.appended] as number;
      await copySectionSource(out, input.source, written, input.name);
    }
    if (s.sizeOfRawData > written) await writeChunk(out, Buffer.alloc(s.sizeOfRawData - written));
  }
  return layout;
}
