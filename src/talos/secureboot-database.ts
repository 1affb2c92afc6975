// The Secure Boot key databases Talos media carry for systemd-boot to enroll (`loader/keys/auto/{PK,KEK,db}.auth`),
// as siderolabs/talos internal/pkg/secureboot/database/database.go Generate makes them from the UKI signing
// certificate (pkg/imager/out.go prepareEnrollmentDBs):
//
// - the owner GUID is a name-based UUID: SHA-256 over the X.500 name space UUID and the certificate as PEM
//   text, the first 16 bytes with version 4 and the RFC 4122 variant set (google/uuid NewHash(sha256.New(),
//   NameSpaceX500, pem, 4));
// - PK = [the certificate]; KEK = [the certificate, then the well-known KEK certificates]; db = [the
//   certificate, then the well-known db certificates] — the well-known ones owned by Microsoft's GUID
//   77fa9abd-0359-4d32-bd60-28f4e78f784b, added only when the schematic asks (includeWellKnownCertificates);
// - each signed by the same key as a time-based authenticated write (src/signing/efi-auth.ts).
//
// One deliberate difference: upstream hands the PEM text itself to the signature list as the X.509 entry;
// firmware reads X.509 entries as DER (UEFI 2.10 §32.4.1: EFI_CERT_X509_GUID "contains a DER-encoded X.509
// certificate"), so the entry here is the DER certificate. The owner GUID still comes from the PEM text.

import { createHash } from "node:crypto";
import { efiCertX509Guid, type SignatureEntry, signatureLists } from "../formats/efi-variables.ts";
import type { CertifiedSigner } from "../signing/digest-signer.ts";
import { signSecureBootVariable } from "../signing/efi-auth.ts";
import { toPem } from "../signing/keys.ts";

export const microsoftSignatureOwnerGuid = "77fa9abd-0359-4d32-bd60-28f4e78f784b";
/** RFC 4122 name space for X.500 distinguished names, 6ba7b814-9dad-11d1-80b4-00c04fd430c8. */
const nameSpaceX500 = Buffer.from("6ba7b8149dad11d180b400c04fd430c8", "hex");

/** The certificate as Go's pem.EncodeToMemory writes a CERTIFICATE block (64-character lines). */
export function certificatePem(der: Uint8Array): string {
  return toPem("CERTIFICATE", der);
}

/** The owner GUID Talos derives from the enrolled certificate (database.go Generate). */
export function enrollmentOwnerGuid(certificateDer: Uint8Array): string {
  const uuid = createHash("sha256")
    .update(nameSpaceX500)
    .update(certificatePem(certificateDer))
    .digest()
    .subarray(0, 16);
  uuid[6] = ((uuid[6] as number) & 0x0f) | 0x40;
  uuid[8] = ((uuid[8] as number) & 0x3f) | 0x80;
  const hex = uuid.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface WellKnownCertificates {
  /** DER certificates added to KEK. */
  kek: readonly Uint8Array[];
  /** DER certificates added to db. */
  db: readonly Uint8Array[];
}

export interface EnrollmentFile {
  /** "db.auth", "KEK.auth" or "PK.auth" (talos constants SignatureKeyAsset, KeyExchangeKeyAsset, PlatformKeyAsset). */
  name: "db.auth" | "KEK.auth" | "PK.auth";
  contents: Buffer;
}

/** The three `.auth` files, in upstream's order (db, KEK, PK). */
export async function enrollmentDatabase(
  signer: CertifiedSigner,
  options: { time: Date; wellKnown?: WellKnownCertificates; signal?: AbortSignal },
): Promise<EnrollmentFile[]> {
  const owner = enrollmentOwnerGuid(signer.certificate);
  const own: SignatureEntry = { type: efiCertX509Guid, owner, data: signer.certificate };
  const microsoft = (certs: readonly Uint8Array[] | undefined): SignatureEntry[] =>
    (certs ?? []).map((data) => ({ type: efiCertX509Guid, owner: microsoftSignatureOwnerGuid, data }));
  const sign = (name: "PK" | "KEK" | "db", entries: SignatureEntry[]) =>
    signSecureBootVariable(name, signatureLists(entries), signer, options.time, options.signal);
  return [
    { name: "db.auth", contents: await sign("db", [own, ...microsoft(options.wellKnown?.db)]) },
    { name: "KEK.auth", contents: await sign("KEK", [own, ...microsoft(options.wellKnown?.kek)]) },
    { name: "PK.auth", contents: await sign("PK", [own]) },
  ];
}
