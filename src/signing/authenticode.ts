// Authenticode signatures on PE files (systemd-boot, UKIs) for UEFI Secure Boot, made here rather than by an
// external signer (upstream Talos signs in Go: internal/pkg/secureboot/pesign/pesign.go over go-uefi's
// authenticode package). The signature is a PKCS#7 SignedData (RFC 2315 — Authenticode's content is not wrapped
// in an OCTET STRING as CMS would) over an SpcIndirectDataContent naming the PE image hash
// (src/formats/authenticode.ts):
//
//   SpcIndirectDataContent ::= SEQUENCE {
//     data SEQUENCE { type 1.3.6.1.4.1.311.2.1.15 (SPC_PE_IMAGE_DATA),
//                     value SpcPeImageData ::= SEQUENCE { flags BIT STRING (empty),
//                                                         file [0] SpcLink: file [2] SpcString: unicode [0] "<<<Obsolete>>>" } },
//     messageDigest DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING } }
//
// One signer (issuer and serial number of the certificate), with signed attributes contentType =
// SPC_INDIRECT_DATA (1.3.6.1.4.1.311.2.1.4), SpcSpOpusInfo (empty) and messageDigest = the hash of the
// SpcIndirectDataContent's DER without its outer tag and length (PKCS#7's rule for content that is not `data`).
// No signing time: signing the same file with the same key gives the same bytes.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import * as asn1js from "asn1js";
import { badRequest } from "../errors.ts";
import {
  type AuthenticodeHash,
  authenticodeDigest,
  authenticodeLayout,
  paddingTo8,
  readPeHeaders,
  winCertificate,
} from "../formats/authenticode.ts";
import type { CertifiedSigner } from "./digest-signer.ts";
import { attribute, hashAlgorithmOid, oidContentType, oidMessageDigest, pkcs7SignedData } from "./pkcs7.ts";

export const oidSpcIndirectData = "1.3.6.1.4.1.311.2.1.4";
export const oidSpcPeImageData = "1.3.6.1.4.1.311.2.1.15";
export const oidSpcSpOpusInfo = "1.3.6.1.4.1.311.2.1.12";

const der = (node: asn1js.BaseBlock): Buffer => Buffer.from(node.toBER(false));

/** The DER SpcIndirectDataContent naming a PE image hash. */
export function spcIndirectDataContent(digest: Uint8Array, hash: AuthenticodeHash): Buffer {
  const obsolete = Buffer.from("<<<Obsolete>>>", "utf16le").swap16();
  const spcString = new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: obsolete });
  const spcLinkFile = new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 2 }, value: [spcString] });
  const peImageData = new asn1js.Sequence({
    value: [
      new asn1js.BitString({ valueHex: new ArrayBuffer(0), unusedBits: 0 }),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [spcLinkFile] }),
    ],
  });
  return der(
    new asn1js.Sequence({
      value: [
        new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oidSpcPeImageData }), peImageData] }),
        new asn1js.Sequence({
          value: [
            new asn1js.Sequence({
              value: [new asn1js.ObjectIdentifier({ value: hashAlgorithmOid[hash] }), new asn1js.Null()],
            }),
            new asn1js.OctetString({ valueHex: Buffer.from(digest) }),
          ],
        }),
      ],
    }),
  );
}

/** The content octets of a DER value (its bytes without the outer tag and length). */
export function derContentOctets(value: Uint8Array): Buffer {
  const buf = Buffer.from(value);
  const first = buf[1] as number;
  const headerLength = first < 0x80 ? 2 : 2 + (first & 0x7f);
  return buf.subarray(headerLength);
}

/** The PKCS#7 SignedData (DER, in its ContentInfo) of an Authenticode signature over a PE image hash. */
export async function authenticodeSignedData(
  digest: Uint8Array,
  signer: CertifiedSigner,
  hash: AuthenticodeHash = "sha256",
  signal?: AbortSignal,
): Promise<Buffer> {
  const content = spcIndirectDataContent(digest, hash);
  const attributes = [
    attribute(oidContentType, der(new asn1js.ObjectIdentifier({ value: oidSpcIndirectData }))),
    attribute(oidSpcSpOpusInfo, der(new asn1js.Sequence({ value: [] }))),
    attribute(
      oidMessageDigest,
      der(new asn1js.OctetString({ valueHex: createHash(hash).update(derContentOctets(content)).digest() })),
    ),
  ];
  return pkcs7SignedData({
    contentType: oidSpcIndirectData,
    content,
    signedAttributes: attributes,
    signer,
    hash,
    wrap: true,
    ...(signal ? { signal } : {}),
  });
}

export interface SignPeOptions {
  hash?: AuthenticodeHash;
  signal?: AbortSignal;
}

/**
 * Signs the PE file `input` into `output` (written through a temporary file and renamed): the file padded to
 * 8 bytes, hashed, and the signature appended as its certificate table. A signed input is refused (the
 * project signs what it builds; a second signature would need nesting).
 */
export async function signPeFile(
  input: string,
  output: string,
  signer: CertifiedSigner,
  options: SignPeOptions = {},
): Promise<{ digest: Buffer }> {
  const hash = options.hash ?? "sha256";
  const { headers, fileSize } = await readPeHeaders(input);
  const before = authenticodeLayout(headers, fileSize);
  if (before.certificateTable !== undefined)
    throw badRequest(`${input} is already signed (it has a certificate table)`, "PE_SIGNED");
  const temp = join(dirname(output), `.${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2)}.efi`);
  try {
    await pipeline(createReadStream(input, { signal: options.signal }), createWriteStream(temp));
    const padding = paddingTo8(fileSize);
    const handle = await open(temp, "r+");
    try {
      if (padding > 0) await handle.write(Buffer.alloc(padding), 0, padding, fileSize);
    } finally {
      await handle.close();
    }
    const { digest } = await authenticodeDigest(temp, hash, options.signal);
    const table = winCertificate(await authenticodeSignedData(digest, signer, hash, options.signal));
    const tableOffset = fileSize + padding;
    const entry = Buffer.alloc(8);
    entry.writeUInt32LE(tableOffset, 0);
    entry.writeUInt32LE(table.length, 4);
    const out = await open(temp, "r+");
    try {
      await out.write(table, 0, table.length, tableOffset);
      await out.write(entry, 0, 8, before.certificateEntryOffset);
      await out.sync();
    } finally {
      await out.close();
    }
    if ((await stat(temp)).size !== tableOffset + table.length) throw new Error(`${temp} changed while signing`);
    await rename(temp, output);
    return { digest };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
