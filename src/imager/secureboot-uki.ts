// What Secure Boot adds to a UKI, as Talos's imager does it (siderolabs/talos internal/pkg/uki/generate.go
// generatePCRPublicKey, generatePCRSig; uki.go BuildSigned): the PCR signing key's public half as `.pcrpkey`,
// one `.pcrsig` per boot profile over the sections that profile measures — every measured payload section, the
// stub's own `.sbat`, then the profile's `.profile` and its `.cmdline` in place of the main one — and an
// Authenticode signature by the UKI signing key over the whole file.

import type { SectionSource } from "../formats/pe.ts";
import { parsePe, readSection } from "../formats/pe.ts";
import { profileText, type UkiContents } from "../formats/uki.ts";
import { signPeFile } from "../signing/authenticode.ts";
import type { CertifiedSigner, DigestSigner } from "../signing/digest-signer.ts";
import {
  pcrPublicKeyPem,
  pcrSignatureBanks,
  pcrSignatureJson,
  sectionDigests,
  signPcrPolicyOfDigests,
} from "../talos/uki-measure.ts";

export interface SecureBootSigners {
  /** Signs UKIs and systemd-boot (Authenticode) and the enrollment databases; its certificate goes in db. */
  uki: CertifiedSigner;
  /** Signs the PCR 11 policies in `.pcrsig`. */
  pcr: DigestSigner;
}

const text = (s: string): SectionSource => ({ content: Buffer.from(s, "utf8") });

/**
 * `contents` with `.pcrpkey` and the `.pcrsig` sections added: one per profile ("main" first) when
 * `withProfiles`, else one.
 */
export async function withPcrSignatures(
  stub: Uint8Array,
  contents: UkiContents,
  withProfiles: boolean,
  pcrSigner: DigestSigner,
  signal?: AbortSignal,
): Promise<UkiContents> {
  const pcrPublicKey = text(pcrPublicKeyPem(pcrSigner.publicKey));
  const base = new Map<string, SectionSource>([
    [".linux", contents.linux],
    [".osrel", text(contents.osRelease)],
    [".cmdline", text(contents.cmdline)],
    [".initrd", contents.initrd],
    [".pcrpkey", pcrPublicKey],
  ]);
  if (contents.splash !== undefined) base.set(".splash", contents.splash);
  if (contents.uname !== undefined) base.set(".uname", text(contents.uname));
  const sbat = readSection(stub, parsePe(stub), ".sbat");
  if (sbat !== undefined) base.set(".sbat", { content: sbat });
  // The shared sections (the kernel and initramfs above all) are read once; a profile only adds its own
  // `.profile` and, when it has one, its `.cmdline` in place of the main one.
  const baseDigests = await sectionDigests(base, pcrSignatureBanks, signal);
  const measured: Map<string, SectionSource>[] = [];
  if (withProfiles)
    for (const profile of [{ id: "main" }, ...(contents.profiles ?? [])]) {
      const own = new Map<string, SectionSource>([[".profile", text(profileText(profile))]]);
      if ("cmdline" in profile && profile.cmdline !== undefined && profile.cmdline !== "")
        own.set(".cmdline", text(profile.cmdline));
      measured.push(own);
    }
  else measured.push(new Map());
  const pcrSignatures: SectionSource[] = [];
  for (const own of measured) {
    const digests = new Map([...baseDigests, ...(await sectionDigests(own, pcrSignatureBanks, signal))]);
    pcrSignatures.push(text(pcrSignatureJson(await signPcrPolicyOfDigests(digests, pcrSigner, signal))));
  }
  return { ...contents, pcrPublicKey, pcrSignatures };
}

/** Signs an assembled UKI (or systemd-boot) into `out` with the UKI signing key. */
export async function signEfiBinary(
  unsigned: string,
  out: string,
  signers: SecureBootSigners,
  signal?: AbortSignal,
): Promise<void> {
  await signPeFile(unsigned, out, signers.uki, signal === undefined ? {} : { signal });
}
