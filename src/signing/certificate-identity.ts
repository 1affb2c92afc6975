// What a Fulcio-style leaf certificate says about its signer, and the checks sigstore-js leaves to us:
// the codeSigning extended key usage, the OIDC issuer (OID 1.3.6.1.4.1.57264.1.8 as a DER UTF8String, or the
// older 1.3.6.1.4.1.57264.1.1 as raw bytes; both present and different is refused), and the subject (the one
// SAN URI or email). The chain, validity and SCTs are checked by sigstore-js against the trusted root.

import { ASN1Obj, type X509Certificate } from "@sigstore/core";
import { integrity } from "../errors.ts";
import type { CertificateIdentity } from "./policy.ts";

export const OidIssuerV1 = "1.3.6.1.4.1.57264.1.1";
export const OidIssuerV2 = "1.3.6.1.4.1.57264.1.8";
const OidExtKeyUsage = "2.5.29.37";
const OidSubjectAltName = "2.5.29.17";
export const OidCodeSigning = "1.3.6.1.5.5.7.3.3";

/** The extension's value parsed as DER (the OCTET STRING's content). */
function extensionValue(cert: X509Certificate, oid: string): ASN1Obj | undefined {
  const ext = cert.extension(oid);
  if (!ext) return undefined;
  try {
    return ASN1Obj.parseBuffer(Buffer.from(ext.value));
  } catch {
    throw integrity(`certificate extension ${oid} is not valid DER`);
  }
}

function refuseDuplicates(cert: X509Certificate, oids: readonly string[]): void {
  const seen = new Set<string>();
  for (const ext of cert.extensions) {
    const oid = ext.subs[0]?.toOID();
    if (oid === undefined || !oids.includes(oid)) continue;
    if (seen.has(oid)) throw integrity(`certificate has extension ${oid} twice`);
    seen.add(oid);
  }
}

export function hasCodeSigningUsage(cert: X509Certificate): boolean {
  const eku = extensionValue(cert, OidExtKeyUsage);
  if (!eku) return false;
  return eku.subs.some((sub) => sub.tag.isOID() && sub.toOID() === OidCodeSigning);
}

/** Reads a DER UTF8String (tag 0x0c). */
function utf8StringOf(obj: ASN1Obj, what: string): string {
  if (obj.tag.toDER() !== 0x0c) throw integrity(`${what} is not a UTF8String`);
  return Buffer.from(obj.value).toString("utf8");
}

/** The OIDC issuer, or undefined when the certificate carries none. */
export function certificateIssuer(cert: X509Certificate): string | undefined {
  const v2 = extensionValue(cert, OidIssuerV2);
  const v1 = cert.extension(OidIssuerV1);
  const fromV2 = v2 === undefined ? undefined : utf8StringOf(v2, `certificate extension ${OidIssuerV2}`);
  const fromV1 = v1 === undefined ? undefined : Buffer.from(v1.value).toString("utf8");
  if (fromV1 !== undefined && fromV2 !== undefined && fromV1 !== fromV2)
    throw integrity(
      `certificate issuer extensions disagree: ${OidIssuerV2} says ${fromV2}, ${OidIssuerV1} says ${fromV1}`,
    );
  return fromV2 ?? fromV1;
}

/** The one SAN URI or email. Several would make "the" identity ambiguous; Fulcio never issues that. */
export function certificateSubject(cert: X509Certificate): string {
  const san = extensionValue(cert, OidSubjectAltName);
  const names: string[] = [];
  for (const name of san?.subs ?? []) {
    // GeneralName [1] rfc822Name and [6] uniformResourceIdentifier are IA5Strings.
    if (name.tag.isContextSpecific(1) || name.tag.isContextSpecific(6))
      names.push(Buffer.from(name.value).toString("latin1"));
  }
  if (names.length === 0) throw integrity("certificate has no SAN URI or email");
  if (names.length > 1) throw integrity(`certificate has ${names.length} SAN URIs/emails; expected one`);
  return names[0] as string;
}

/** The leaf's signer identity, after the checks that sigstore-js does not do. */
export function leafIdentity(cert: X509Certificate): CertificateIdentity {
  refuseDuplicates(cert, [OidIssuerV1, OidIssuerV2, OidExtKeyUsage, OidSubjectAltName]);
  if (!hasCodeSigningUsage(cert)) throw integrity("certificate lacks the codeSigning extended key usage");
  return { issuer: certificateIssuer(cert), subject: certificateSubject(cert) };
}
