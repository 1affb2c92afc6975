// PKCS#7 SignedData (RFC 2315) with one RSA signer, as UEFI reads it: Authenticode signatures on PE files
// (content = SpcIndirectDataContent, signed attributes) and authenticated variable writes (detached `data`
// content, no signed attributes — the signature is over the payload's digest itself). The signature comes from
// a DigestSigner, so the key may live elsewhere; the structure is built with @peculiar/asn1-cms.

import { createHash } from "node:crypto";
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  ContentInfo,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  id_signedData,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
} from "@peculiar/asn1-cms";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier, Certificate } from "@peculiar/asn1-x509";
import type { CertifiedSigner, DigestAlgorithm } from "./digest-signer.ts";

export const oidData = "1.2.840.113549.1.7.1";
export const oidContentType = "1.2.840.113549.1.9.3";
export const oidMessageDigest = "1.2.840.113549.1.9.4";
const oidRsaEncryption = "1.2.840.113549.1.1.1";
export const hashAlgorithmOid: Record<DigestAlgorithm, string> = {
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
};

/** A signed attribute with one value (DER). */
export function attribute(type: string, value: Uint8Array): Attribute {
  return new Attribute({ attrType: type, attrValues: [new Uint8Array(value).buffer] });
}

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** DER SET OF: elements sorted by their encodings (X.690 §11.6), under tag 0x31. */
function derSetOf(elements: Buffer[]): Buffer {
  const body = Buffer.concat([...elements].sort(Buffer.compare));
  return Buffer.concat([Buffer.from([0x31]), derLength(body.length), body]);
}

export interface SignedDataRequest {
  /** The content type the signer info names (SPC_INDIRECT_DATA, or id-data for detached data). */
  contentType: string;
  /** DER content to embed ([0] EXPLICIT, not wrapped in an OCTET STRING); absent for detached signatures. */
  content?: Uint8Array;
  /** Signed attributes; the signature then covers their DER SET OF. */
  signedAttributes?: Attribute[];
  /** Without signed attributes: the signed message itself (the signature covers its digest). */
  message?: Uint8Array;
  signer: CertifiedSigner;
  hash: DigestAlgorithm;
  /** Wrap the SignedData in a ContentInfo (Authenticode) or give it bare (UEFI authenticated variables). */
  wrap: boolean;
  signal?: AbortSignal;
}

/** A DER PKCS#7 SignedData with one signer (issuer and serial number of the signer's certificate). */
export async function pkcs7SignedData(request: SignedDataRequest): Promise<Buffer> {
  const { signer, hash } = request;
  const certificate = AsnConvert.parse(signer.certificate, Certificate);
  let toSign: Buffer;
  let signedAttrs: Attribute[] | undefined;
  if (request.signedAttributes !== undefined) {
    const encoded = request.signedAttributes.map((a) => Buffer.from(AsnConvert.serialize(a)));
    // Stored in DER order, so that the [0] IMPLICIT form carries exactly the SET OF that is signed.
    signedAttrs = encoded
      .map((e, i) => [e, request.signedAttributes?.[i] as Attribute] as const)
      .sort((a, b) => Buffer.compare(a[0], b[0]))
      .map(([, a]) => a);
    toSign = derSetOf(encoded);
  } else if (request.message !== undefined) toSign = Buffer.from(request.message);
  else throw new TypeError("pkcs7SignedData needs signed attributes or the message");
  const signature = await signer.signDigest(createHash(hash).update(toSign).digest(), hash, request.signal);
  const digestAlgorithm = new AlgorithmIdentifier({ algorithm: hashAlgorithmOid[hash], parameters: null });
  const signerInfo = new SignerInfo({
    version: 1,
    sid: new SignerIdentifier({
      issuerAndSerialNumber: new IssuerAndSerialNumber({
        issuer: certificate.tbsCertificate.issuer,
        serialNumber: certificate.tbsCertificate.serialNumber,
      }),
    }),
    digestAlgorithm,
    ...(signedAttrs === undefined ? {} : { signedAttrs }),
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: oidRsaEncryption, parameters: null }),
    signature: new OctetString(signature),
  });
  const signedData = new SignedData({
    version: 1,
    encapContentInfo: new EncapsulatedContentInfo({
      eContentType: request.contentType,
      ...(request.content === undefined
        ? {}
        : { eContent: new EncapsulatedContent({ any: new Uint8Array(request.content).buffer }) }),
    }),
    certificates: new CertificateSet([new CertificateChoices({ certificate })]),
    signerInfos: new SignerInfos([signerInfo]),
  });
  signedData.digestAlgorithms.push(digestAlgorithm);
  if (!request.wrap) return Buffer.from(AsnConvert.serialize(signedData));
  const info = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) });
  return Buffer.from(AsnConvert.serialize(info));
}
