// Signed UEFI Secure Boot variable writes (`PK.auth`, `KEK.auth`, `db.auth`): the EFI signature list data behind
// an EFI_VARIABLE_AUTHENTICATION_2 whose PKCS#7 is a detached signature (content type id-data, no signed
// attributes) over name ‖ vendor GUID ‖ attributes ‖ time stamp ‖ data, SHA-256 — the form sbsigntool's
// sbvarsign writes (a bare SignedData) and firmware (EDK2's AuthVariableLib) and systemd-boot's key enrollment
// take. src/formats/efi-variables.ts has the byte layouts.

import {
  authenticatedVariable,
  authenticatedVariablePayload,
  efiGlobalVariableGuid,
  efiImageSecurityDatabaseGuid,
  efiTime,
  secureBootVariableAttributes,
} from "../formats/efi-variables.ts";
import type { CertifiedSigner } from "./digest-signer.ts";
import { oidData, pkcs7SignedData } from "./pkcs7.ts";

export type SecureBootVariable = "PK" | "KEK" | "db" | "dbx";

/** The vendor GUID a Secure Boot variable lives under. */
export function secureBootVariableGuid(name: SecureBootVariable): string {
  return name === "PK" || name === "KEK" ? efiGlobalVariableGuid : efiImageSecurityDatabaseGuid;
}

/**
 * The `.auth` file that writes `data` (EFI signature lists) to Secure Boot variable `name`, signed by `signer`
 * at `time` (a moment, or the 16 EFI_TIME bytes; firmware in setup mode takes any, later updates need a later one).
 */
export async function signSecureBootVariable(
  name: SecureBootVariable,
  data: Uint8Array,
  signer: CertifiedSigner,
  time: Date | Uint8Array,
  signal?: AbortSignal,
): Promise<Buffer> {
  const timestamp = time instanceof Date ? efiTime(time) : Buffer.from(time);
  if (timestamp.length !== 16) throw new RangeError(`an EFI_TIME is 16 bytes, not ${timestamp.length}`);
  const message = authenticatedVariablePayload(
    name,
    secureBootVariableGuid(name),
    secureBootVariableAttributes,
    timestamp,
    data,
  );
  const pkcs7 = await pkcs7SignedData({
    contentType: oidData,
    message,
    signer,
    hash: "sha256",
    wrap: false,
    ...(signal ? { signal } : {}),
  });
  return authenticatedVariable(timestamp, pkcs7, data);
}
