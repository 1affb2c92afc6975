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

/** A certificate named by the SHA-256 of its DER encoding. */
export interface PinnedCertificate {
  readonly name: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly sha256: string;
}

/**
 * The well-known certificates Talos adds with `includeWellKnownCertificates`, in its order: the DER files
 * of internal/pkg/secureboot/database/certs/{kek,db}, read by embed.FS ReadDir (sorted by file name). The
 * certificates themselves are not part of this project; they are found by these fingerprints
 * (src/imager/well-known-certificates.ts).
 */
export const wellKnownCertificatePins: {
  readonly kek: readonly PinnedCertificate[];
  readonly db: readonly PinnedCertificate[];
} = {
  kek: [
    {
      name: "Microsoft Corporation KEK CA 2011",
      sha256: "a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503",
    },
    {
      name: "Microsoft Corporation KEK 2K CA 2023",
      sha256: "3cd3f0309edae228767a976dd40d9f4affc4fbd5218f2e8cc3c9dd97e8ac6f9d",
    },
  ],
  db: [
    {
      name: "Microsoft Corporation UEFI CA 2011",
      sha256: "48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507",
    },
    {
      name: "Microsoft Option ROM UEFI CA 2023",
      sha256: "e5be3e64c6e66a281457ecdece0d6d0787577aad2a3a0144262c10c14ba8d8f1",
    },
    {
      name: "Microsoft UEFI CA 2023",
      sha256: "f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901",
    },
  ],
};

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
