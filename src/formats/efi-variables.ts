// UEFI Secure Boot key databases (UEFI 2.10 §32.4.1 "Signature Database", §8.2 "Variable Services"):
//
// - EFI GUIDs are 16 bytes: the first three fields little-endian, the last eight bytes as written.
// - EFI_SIGNATURE_LIST: SignatureType GUID, SignatureListSize u32, SignatureHeaderSize u32 (0 here),
//   SignatureSize u32, then entries EFI_SIGNATURE_DATA { SignatureOwner GUID, SignatureData } of that size.
//   An entry joins the first list of its type and size (go-uefi's SignatureDatabase.Append, which Talos uses),
//   so X.509 certificates of different sizes get a list each.
// - A time-based authenticated variable write (what `PK.auth`, `KEK.auth`, `db.auth` hold):
//   EFI_VARIABLE_AUTHENTICATION_2 = EFI_TIME (16 bytes) + WIN_CERTIFICATE_UEFI_GUID { dwLength u32,
//   wRevision 0x0200, wCertificateType 0x0EF1, CertType = EFI_CERT_TYPE_PKCS7_GUID, CertData = DER PKCS#7
//   SignedData }, followed by the variable's new data. The signature covers VariableName (UTF-16LE, no NUL) ‖
//   VendorGuid ‖ Attributes (u32) ‖ TimeStamp ‖ Data.

import { badRequest } from "../errors.ts";

export const efiCertX509Guid = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
export const efiCertSha256Guid = "c1c41626-504c-4092-aca9-41f936934328";
export const efiCertTypePkcs7Guid = "4aafd29d-68df-49ee-8aa9-347d375665a7";
export const efiGlobalVariableGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
export const efiImageSecurityDatabaseGuid = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

export const efiVariableNonVolatile = 0x01;
export const efiVariableBootserviceAccess = 0x02;
export const efiVariableRuntimeAccess = 0x04;
export const efiVariableTimeBasedAuthenticatedWriteAccess = 0x20;
/** What PK, KEK, db and dbx are written with. */
export const secureBootVariableAttributes =
  efiVariableNonVolatile |
  efiVariableBootserviceAccess |
  efiVariableRuntimeAccess |
  efiVariableTimeBasedAuthenticatedWriteAccess;

const winCertTypeEfiGuid = 0x0ef1;
const winCertRevision2 = 0x0200;

const guidPattern = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

/** The 16 bytes of an EFI GUID written "aabbccdd-eeff-…". */
export function efiGuid(text: string): Buffer {
  const m = guidPattern.exec(text);
  if (m === null) throw badRequest(`invalid GUID ${JSON.stringify(text)}`);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(Number.parseInt(m[1] as string, 16), 0);
  out.writeUInt16LE(Number.parseInt(m[2] as string, 16), 4);
  out.writeUInt16LE(Number.parseInt(m[3] as string, 16), 6);
  Buffer.from(`${m[4]}${m[5]}`, "hex").copy(out, 8);
  return out;
}

/** The text form of 16 EFI GUID bytes. */
export function efiGuidText(bytes: Uint8Array): string {
  const b = Buffer.from(bytes);
  if (b.length !== 16) throw badRequest(`a GUID is 16 bytes, not ${b.length}`);
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  const tail = b.subarray(8).toString("hex");
  return `${hex(b.readUInt32LE(0), 8)}-${hex(b.readUInt16LE(4), 4)}-${hex(b.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

export interface SignatureEntry {
  /** EFI_CERT_X509_GUID or EFI_CERT_SHA256_GUID, as text. */
  type: string;
  /** Owner GUID, as text. */
  owner: string;
  data: Uint8Array;
}

/** EFI_SIGNATURE_LISTs: each entry in the first list of its type and size, else in a new list. */
export function signatureLists(entries: readonly SignatureEntry[]): Buffer {
  const lists: { type: string; size: number; items: SignatureEntry[] }[] = [];
  for (const entry of entries) {
    const size = 16 + entry.data.length;
    const shared = lists.find((l) => l.type === entry.type.toLowerCase() && l.size === size);
    if (shared !== undefined) shared.items.push(entry);
    else lists.push({ type: entry.type.toLowerCase(), size, items: [entry] });
  }
  return Buffer.concat(
    lists.map((list) => {
      const header = Buffer.alloc(28);
      efiGuid(list.type).copy(header, 0);
      header.writeUInt32LE(28 + list.size * list.items.length, 16);
      header.writeUInt32LE(0, 20);
      header.writeUInt32LE(list.size, 24);
      return Buffer.concat([header, ...list.items.flatMap((item) => [efiGuid(item.owner), Buffer.from(item.data)])]);
    }),
  );
}

/** Reads EFI_SIGNATURE_LISTs back into their entries. */
export function parseSignatureLists(data: Uint8Array): SignatureEntry[] {
  const buf = Buffer.from(data);
  const out: SignatureEntry[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 28 > buf.length) throw badRequest("truncated EFI_SIGNATURE_LIST header");
    const type = efiGuidText(buf.subarray(at, at + 16));
    const listSize = buf.readUInt32LE(at + 16);
    const headerSize = buf.readUInt32LE(at + 20);
    const size = buf.readUInt32LE(at + 24);
    if (listSize < 28 + headerSize || at + listSize > buf.length || size < 16)
      throw badRequest("malformed EFI_SIGNATURE_LIST sizes");
    const body = listSize - 28 - headerSize;
    if (body % size !== 0) throw badRequest("EFI_SIGNATURE_LIST size is not a whole number of entries");
    for (let e = at + 28 + headerSize; e < at + listSize; e += size)
      out.push({ type, owner: efiGuidText(buf.subarray(e, e + 16)), data: buf.subarray(e + 16, e + size) });
    at += listSize;
  }
  return out;
}

/** EFI_TIME (16 bytes) of a moment, to the second (nanoseconds, time zone and daylight left zero). */
export function efiTime(date: Date): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt16LE(date.getUTCFullYear(), 0);
  out.writeUInt8(date.getUTCMonth() + 1, 2);
  out.writeUInt8(date.getUTCDate(), 3);
  out.writeUInt8(date.getUTCHours(), 4);
  out.writeUInt8(date.getUTCMinutes(), 5);
  out.writeUInt8(date.getUTCSeconds(), 6);
  return out;
}

/** The bytes an authenticated variable write signs. */
export function authenticatedVariablePayload(
  name: string,
  vendorGuid: string,
  attributes: number,
  timestamp: Uint8Array,
  data: Uint8Array,
): Buffer {
  const attrs = Buffer.alloc(4);
  attrs.writeUInt32LE(attributes >>> 0, 0);
  return Buffer.concat([
    Buffer.from(name, "utf16le"),
    efiGuid(vendorGuid),
    attrs,
    Buffer.from(timestamp),
    Buffer.from(data),
  ]);
}

/** EFI_VARIABLE_AUTHENTICATION_2 followed by the data: a `.auth` file as `sbvarsign` and systemd-boot use them. */
export function authenticatedVariable(timestamp: Uint8Array, pkcs7SignedData: Uint8Array, data: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(8 + 16 + pkcs7SignedData.length, 0);
  header.writeUInt16LE(winCertRevision2, 4);
  header.writeUInt16LE(winCertTypeEfiGuid, 6);
  return Buffer.concat([
    Buffer.from(timestamp),
    header,
    efiGuid(efiCertTypePkcs7Guid),
    Buffer.from(pkcs7SignedData),
    Buffer.from(data),
  ]);
}

/** Splits a `.auth` file into its time stamp, PKCS#7 SignedData and data. */
export function parseAuthenticatedVariable(file: Uint8Array): { timestamp: Buffer; pkcs7: Buffer; data: Buffer } {
  const buf = Buffer.from(file);
  if (buf.length < 16 + 24) throw badRequest("truncated EFI_VARIABLE_AUTHENTICATION_2");
  const length = buf.readUInt32LE(16);
  if (buf.readUInt16LE(20) !== winCertRevision2 || buf.readUInt16LE(22) !== winCertTypeEfiGuid)
    throw badRequest("not a WIN_CERTIFICATE_UEFI_GUID");
  if (efiGuidText(buf.subarray(24, 40)) !== efiCertTypePkcs7Guid) throw badRequest("not a PKCS#7 certificate");
  if (length < 24 || 16 + length > buf.length) throw badRequest("malformed WIN_CERTIFICATE length");
  return { timestamp: buf.subarray(0, 16), pkcs7: buf.subarray(40, 16 + length), data: buf.subarray(16 + length) };
}
