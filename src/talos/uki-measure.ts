// A UKI's `.pcrsig`: the PCR 11 value systemd-stub and Talos's boot phases will leave behind, turned into a
// TPM2 PolicyPCR digest and signed with the PCR signing key, per bank — as siderolabs/talos does it
// (internal/pkg/measure/measure.go GenerateSignedPCR, internal/pkg/measure/internal/pcr/bank_data.go,
// sections.go, sign.go; internal/pkg/secureboot/secureboot.go OrderedPhases; internal/pkg/uki/generate.go
// generatePCRPublicKey and generatePCRSig):
//
// - for each section present, in systemd's measurement order: extend with its name and a NUL, then its content;
// - then the phases "enter-initrd", "leave-initrd", "enter-machined" (no NUL), signing only at
//   "enter-machined": policy = PolicyPCR(PCR 11 of that bank), signature = RSASSA-PKCS1-v1_5 with the bank's
//   hash over H_bank(policy);
// - JSON `{"sha256":[{"pcrs":[11],"pkfp":…,"pol":…,"sig":…}],"sha384":[…],"sha512":[…]}` with pkfp the SHA-256
//   of the key's PKCS#1 RSAPublicKey DER, pol hex and sig base64 — systemd-measure's format.
// `.pcrpkey` is the PCR key's public half as a PEM "PUBLIC KEY" (SPKI).

import { createHash, type Hash, type KeyObject } from "node:crypto";
import { createReadStream } from "node:fs";
import type { SectionSource } from "../formats/pe.ts";
import { type PcrBank, PcrValue, policyPcrDigest } from "../formats/tpm2-pcr.ts";
import type { DigestAlgorithm, DigestSigner } from "../signing/digest-signer.ts";

/** The PCR systemd-stub measures UKI sections into (talos constants.UKIPCR). */
export const ukiPcr = 11;

/** systemd's order of measured UKI sections (talos internal/pkg/measure/internal/pcr/sections.go). */
export const measuredSectionOrder: readonly string[] = [
  ".linux",
  ".osrel",
  ".cmdline",
  ".initrd",
  ".ucode",
  ".splash",
  ".dtb",
  ".uname",
  ".sbat",
  ".pcrpkey",
  ".profile",
  ".dtbauto",
  ".hwids",
];

/** Talos's boot phases extended into PCR 11 after the stub; only the last is signed. */
export const talosBootPhases: readonly { phase: string; signed: boolean }[] = [
  { phase: "enter-initrd", signed: false },
  { phase: "leave-initrd", signed: false },
  { phase: "enter-machined", signed: true },
];

/** The banks Talos signs for (measure.go GenerateSignedPCR). */
export const pcrSignatureBanks: readonly DigestAlgorithm[] = ["sha256", "sha384", "sha512"];

export interface BankSignature {
  pcrs: number[];
  pkfp: string;
  pol: string;
  sig: string;
}

export type PcrSignatureData = Partial<Record<PcrBank, BankSignature[]>>;

/** The `.pcrpkey` content: the key's SPKI as PEM "PUBLIC KEY". */
export function pcrPublicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** Each measured section's digest in every bank (name → bank → digest). */
export type SectionDigests = ReadonlyMap<string, Readonly<Record<PcrBank, Buffer>>>;

/**
 * Each section's digest in each of `banks`, reading every section once for all banks. A caller measuring
 * several section sets that share large sections (a UKI's boot profiles share its kernel and initramfs)
 * computes the shared ones once and merges in the rest.
 */
export async function sectionDigests(
  sections: ReadonlyMap<string, SectionSource>,
  banks: readonly PcrBank[] = pcrSignatureBanks,
  signal?: AbortSignal,
): Promise<Map<string, Record<PcrBank, Buffer>>> {
  checkSections(sections);
  const out = new Map<string, Record<PcrBank, Buffer>>();
  for (const [name, source] of sections) {
    const hashes = banks.map((bank) => [bank, createHash(bank)] as [PcrBank, Hash]);
    if ("content" in source) for (const [, h] of hashes) h.update(source.content);
    else
      for await (const chunk of createReadStream(source.path, { highWaterMark: 1024 * 1024, signal }))
        for (const [, h] of hashes) h.update(chunk as Buffer);
    out.set(name, Object.fromEntries(hashes.map(([bank, h]) => [bank, h.digest()])) as Record<PcrBank, Buffer>);
  }
  return out;
}

/** Refuses sections systemd-stub would not measure (their order is unknown, so the prediction would be wrong). */
function checkSections(sections: ReadonlyMap<string, unknown>): void {
  for (const name of sections.keys())
    if (!measuredSectionOrder.includes(name)) throw new RangeError(`UKI section ${name} is not a measured section`);
}

type PcrPrediction = Map<PcrBank, { phase: string; value: Buffer; signed: boolean }[]>;

/** PCR 11 of `bank` after each section and phase, as the boot leaves it at each signed phase. */
export async function predictUkiPcr(
  sections: ReadonlyMap<string, SectionSource>,
  banks: readonly PcrBank[] = pcrSignatureBanks,
  signal?: AbortSignal,
): Promise<PcrPrediction> {
  return predictFromDigests(await sectionDigests(sections, banks, signal), banks);
}

function predictFromDigests(digests: SectionDigests, banks: readonly PcrBank[]): PcrPrediction {
  checkSections(digests);
  const out: PcrPrediction = new Map();
  for (const bank of banks) {
    const pcr = new PcrValue(bank);
    for (const name of measuredSectionOrder) {
      const digest = digests.get(name);
      if (digest === undefined) continue;
      pcr.extend(Buffer.from(`${name}\0`, "latin1"));
      pcr.extendDigest(digest[bank]);
    }
    const phases: { phase: string; value: Buffer; signed: boolean }[] = [];
    for (const { phase, signed } of talosBootPhases) {
      pcr.extend(phase);
      phases.push({ phase, value: pcr.value, signed });
    }
    out.set(bank, phases);
  }
  return out;
}

/** The `.pcrsig` data for a UKI whose measured sections are `sections` (name → content; later names win). */
export async function signPcrPolicy(
  sections: ReadonlyMap<string, SectionSource>,
  signer: DigestSigner,
  signal?: AbortSignal,
): Promise<PcrSignatureData> {
  return await signPcrPolicyOfDigests(await sectionDigests(sections, pcrSignatureBanks, signal), signer, signal);
}

/** signPcrPolicy from the sections' digests (sectionDigests in every bank of pcrSignatureBanks). */
export async function signPcrPolicyOfDigests(
  digests: SectionDigests,
  signer: DigestSigner,
  signal?: AbortSignal,
): Promise<PcrSignatureData> {
  const pkfp = createHash("sha256")
    .update(signer.publicKey.export({ type: "pkcs1", format: "der" }))
    .digest("hex");
  const predicted = predictFromDigests(digests, pcrSignatureBanks);
  const data: PcrSignatureData = {};
  for (const bank of pcrSignatureBanks) {
    const entries: BankSignature[] = [];
    for (const step of predicted.get(bank) ?? []) {
      if (!step.signed) continue;
      const policy = policyPcrDigest(bank, [ukiPcr], [step.value]);
      const signature = await signer.signDigest(createHash(bank).update(policy).digest(), bank, signal);
      entries.push({ pcrs: [ukiPcr], pkfp, pol: policy.toString("hex"), sig: signature.toString("base64") });
    }
    data[bank] = entries;
  }
  return data;
}

/** The `.pcrsig` section text: the data as compact JSON (Go's json.Marshal of talos tpm2.PCRData). */
export function pcrSignatureJson(data: PcrSignatureData): string {
  return JSON.stringify(data);
}
