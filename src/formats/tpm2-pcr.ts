// TPM 2.0 PCR arithmetic for predicting a measured boot (TPM 2.0 Library Part 1 §17 "PCR"; Part 3 §23.7
// TPM2_PolicyPCR): a PCR starts at zeros and each measurement extends it as PCR = H(PCR ‖ H(data)); a policy
// session (SHA-256) that checks PCRs moves its digest to
// SHA-256(old ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ SHA-256(PCR values)). systemd-stub measures a UKI's
// sections into PCR 11 this way and systemd-measure predicts it; Talos's imager does the same
// (siderolabs/talos internal/pkg/measure/internal/pcr/extend.go, internal/pkg/secureboot/tpm2/policy.go).

import { createHash } from "node:crypto";

export type PcrBank = "sha1" | "sha256" | "sha384" | "sha512";

/** TPM_ALG_ID of each bank's hash (TCG Algorithm Registry). */
export const tpmAlgorithmId: Record<PcrBank, number> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
export const bankDigestLength: Record<PcrBank, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
const tpmCcPolicyPcr = 0x0000017f;
/** PCR select bitmaps are 3 bytes: PCRs 0–23 (the PC Client platform's). */
const pcrSelectBytes = 3;

/** A PCR value in one bank, extended step by step. */
export class PcrValue {
  readonly bank: PcrBank;
  #value: Buffer;

  constructor(bank: PcrBank) {
    this.bank = bank;
    this.#value = Buffer.alloc(bankDigestLength[bank]);
  }

  get value(): Buffer {
    return Buffer.from(this.#value);
  }

  /** Extends with the digest of a measurement (already hashed with this bank's hash). */
  extendDigest(digest: Uint8Array): void {
    if (digest.length !== bankDigestLength[this.bank])
      throw new RangeError(`a ${this.bank} digest is ${bankDigestLength[this.bank]} bytes, not ${digest.length}`);
    this.#value = createHash(this.bank).update(this.#value).update(digest).digest();
  }

  /** Extends with a measurement of `data`. */
  extend(data: Uint8Array | string): void {
    this.extendDigest(createHash(this.bank).update(data).digest());
  }
}

/** TPML_PCR_SELECTION with one selection: `bank` and the given PCR indexes. */
export function pcrSelection(bank: PcrBank, pcrs: readonly number[]): Buffer {
  const out = Buffer.alloc(4 + 2 + 1 + pcrSelectBytes);
  out.writeUInt32BE(1, 0);
  out.writeUInt16BE(tpmAlgorithmId[bank], 4);
  out.writeUInt8(pcrSelectBytes, 6);
  for (const pcr of pcrs) {
    if (!Number.isInteger(pcr) || pcr < 0 || pcr >= 8 * pcrSelectBytes)
      throw new RangeError(`PCR index ${pcr} is out of range (0–${8 * pcrSelectBytes - 1})`);
    out[7 + (pcr >> 3)] = (out[7 + (pcr >> 3)] as number) | (1 << (pcr & 7));
  }
  return out;
}

/**
 * The SHA-256 policy digest of a fresh session after TPM2_PolicyPCR over `pcrs` of `bank` holding `pcrValues`
 * (concatenated in index order).
 */
export function policyPcrDigest(bank: PcrBank, pcrs: readonly number[], pcrValues: readonly Uint8Array[]): Buffer {
  const pcrDigest = createHash("sha256");
  for (const value of pcrValues) pcrDigest.update(value);
  const command = Buffer.alloc(4);
  command.writeUInt32BE(tpmCcPolicyPcr, 0);
  return createHash("sha256")
    .update(Buffer.alloc(32))
    .update(command)
    .update(pcrSelection(bank, pcrs))
    .update(pcrDigest.digest())
    .digest();
}
