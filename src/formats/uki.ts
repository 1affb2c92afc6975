// Unified kernel images: systemd-stub.efi with the boot payload appended as PE sections, in the order
// the caller gives (the version rules' ukiSectionOrder): Talos's imager from 1.10 (siderolabs/talos
// internal/pkg/uki/uki.go Build/BuildSigned and generate.go) appends .osrel, .cmdline, .uname, .splash,
// .pcrpkey, .linux, .initrd; before 1.10 (internal/pkg/secureboot/uki/uki.go Build) .osrel, .cmdline,
// .initrd, .splash, .uname, .pcrpkey, .linux. Then per profile — "main" first — .profile [+ .cmdline],
// then .pcrsig; the profile text is "ID=<id>" plus "\nTITLE=<title>".
// The stub's own sections (.sbat, .sdmagic, …) are kept as they are. Multi-profile UKIs (`.profile`
// sections) need systemd-stub ≥ 257; older stubs would boot the first profile's sections wrongly, so
// profiles are added only when the stub says it can.

import type { Writable } from "node:stream";
import { badRequest } from "../errors.ts";
import {
  appendSections,
  type PlacedSection,
  parsePe,
  readSection,
  type SectionInput,
  type SectionSource,
} from "./pe.ts";
import { assembleNative } from "./pe-native.ts";

/** systemd-stub learnt multi-profile UKIs (.profile sections) in v257. */
export const firstStubVersionWithProfiles = 257;

export interface StubInfo {
  /** From the `.sdmagic` section, e.g. "systemd-stub 252.39-1~deb12u2"; undefined when it has none. */
  loaderInfo: string | undefined;
  /** systemd's major version, e.g. 252. */
  systemdVersion: number | undefined;
  supportsProfiles: boolean;
}

/**
 * What a systemd EFI program is, read from its `.sdmagic` section ("#### LoaderInfo: systemd-stub 257.1 ####",
 * "… systemd-boot 257.1 …"): both learnt multi-profile UKIs in 257 (systemd-boot 252 takes such a UKI for one
 * entry with the last `.cmdline` section's command line).
 */
export function systemdEfiInfo(efi: Uint8Array): StubInfo {
  const magic = readSection(efi, parsePe(efi), ".sdmagic")?.toString("latin1");
  const match = magic === undefined ? null : /LoaderInfo: (systemd-(?:stub|boot) (\d+)[^\s#]*)/.exec(magic);
  const systemdVersion = match === null ? undefined : Number(match[2]);
  return {
    loaderInfo: match?.[1],
    systemdVersion,
    supportsProfiles: systemdVersion !== undefined && systemdVersion >= firstStubVersionWithProfiles,
  };
}

/** What the stub is (systemdEfiInfo of systemd-stub.efi). */
export const systemdStubInfo = systemdEfiInfo;

/** `/etc/os-release` text Talos puts in `.osrel` (pkg/machinery/constants OSReleaseTemplate). */
export function osReleaseFor(name: string, version: string): string {
  const id = name.replaceAll(" ", "_").toLowerCase();
  return [
    `NAME="${name}"`,
    `ID=${id}`,
    `VERSION_ID=${version}`,
    `PRETTY_NAME="${name} (${version})"`,
    'HOME_URL="https://www.talos.dev/"',
    'BUG_REPORT_URL="https://github.com/siderolabs/talos/issues"',
    'VENDOR_NAME="Sidero Labs"',
    'VENDOR_URL="https://www.siderolabs.com/"',
    "",
  ].join("\n");
}

export interface UkiProfile {
  /** "main" is the default profile; Talos adds "reset". */
  id: string;
  title?: string;
  /** A cmdline replacing the main one for this profile. */
  cmdline?: string;
}

export interface UkiContents {
  osRelease: string;
  cmdline: string;
  /** Kernel release (`uname -r`); left out when unknown, as upstream does. */
  uname?: string;
  splash?: SectionSource;
  /** PEM public key for PCR policy signatures (secure boot). */
  pcrPublicKey?: SectionSource;
  linux: SectionSource;
  initrd: SectionSource;
  /** Profiles after "main" (which is implicit); used only when the stub supports them. */
  profiles?: readonly UkiProfile[];
  /**
   * The `.pcrsig` JSON sections (secure boot): one, after everything, for a UKI without profiles; with
   * profiles one per profile ("main" first), each right after that profile's sections (talos
   * internal/pkg/uki/generate.go generatePCRSig).
   */
  pcrSignatures?: readonly SectionSource[];
}

/** The payload sections whose order changed between Talos versions. */
export type UkiPayloadSection = ".osrel" | ".cmdline" | ".uname" | ".splash" | ".pcrpkey" | ".linux" | ".initrd";

/** Talos ≥ 1.10's order (internal/pkg/uki/uki.go). */
export const ukiSectionOrderTalos110: readonly UkiPayloadSection[] = [
  ".osrel",
  ".cmdline",
  ".uname",
  ".splash",
  ".pcrpkey",
  ".linux",
  ".initrd",
];

/** Talos 1.5–1.9's order (internal/pkg/secureboot/uki/uki.go: "append kernel last to account for decompression"). */
export const ukiSectionOrderTalos15: readonly UkiPayloadSection[] = [
  ".osrel",
  ".cmdline",
  ".initrd",
  ".splash",
  ".uname",
  ".pcrpkey",
  ".linux",
];

function checkOrder(order: readonly UkiPayloadSection[]): void {
  const sorted = [...order].sort().join(" ");
  if (order.length !== ukiSectionOrderTalos110.length || sorted !== [...ukiSectionOrderTalos110].sort().join(" "))
    throw badRequest(`UKI section order must name each payload section once, not ${order.join(" ")}`);
}

const text = (s: string): SectionSource => ({ content: Buffer.from(s, "utf8") });

/** A `.profile` section's text: "ID=<id>", then "TITLE=<title>" when it has one. */
export function profileText(profile: UkiProfile): string {
  return profile.title === undefined ? `ID=${profile.id}` : `ID=${profile.id}\nTITLE=${profile.title}`;
}

/**
 * The sections of a UKI: the payload in `order` (absent optional ones left out), profile sections only when
 * `withProfiles`, `.pcrsig` last.
 */
export function ukiSections(
  contents: UkiContents,
  withProfiles: boolean,
  order: readonly UkiPayloadSection[] = ukiSectionOrderTalos110,
): SectionInput[] {
  checkOrder(order);
  const payload: Record<UkiPayloadSection, SectionSource | undefined> = {
    ".osrel": text(contents.osRelease),
    ".cmdline": text(contents.cmdline),
    ".uname": contents.uname === undefined ? undefined : text(contents.uname),
    ".splash": contents.splash,
    ".pcrpkey": contents.pcrPublicKey,
    ".linux": contents.linux,
    ".initrd": contents.initrd,
  };
  const sections: SectionInput[] = [];
  for (const name of order) {
    const source = payload[name];
    if (source !== undefined) sections.push({ name, source });
  }
  const signatures = contents.pcrSignatures ?? [];
  if (withProfiles) {
    if (contents.profiles?.some((p) => p.id === "main"))
      throw badRequest('UKI profile ID "main" is reserved for the default profile');
    const profiles = [{ id: "main" }, ...(contents.profiles ?? [])];
    if (signatures.length !== 0 && signatures.length !== profiles.length)
      throw badRequest(
        `a UKI with ${profiles.length} profiles needs as many .pcrsig sections, not ${signatures.length}`,
      );
    profiles.forEach((profile, i) => {
      sections.push({ name: ".profile", source: text(profileText(profile)) });
      if (profile.cmdline !== undefined && profile.cmdline !== "")
        sections.push({ name: ".cmdline", source: text(profile.cmdline) });
      const signature = signatures[i];
      if (signature !== undefined) sections.push({ name: ".pcrsig", source: signature });
    });
  } else {
    if (signatures.length > 1) throw badRequest("a UKI without profiles has one .pcrsig section");
    if (signatures[0] !== undefined) sections.push({ name: ".pcrsig", source: signatures[0] });
  }
  return sections;
}

export interface AssembledUki {
  /** The appended sections as placed. */
  sections: PlacedSection[];
  /** Size of the whole file. */
  totalSize: number;
  stub: StubInfo;
  /** Whether `.profile` sections went in (profiles wanted and the stub supports them). */
  profiles: boolean;
}

/**
 * Writes the UKI to `out` (not ended here). `wantProfiles` and `sectionOrder` come from the version rules
 * (ukiProfiles, ukiSectionOrder; the order defaults to Talos ≥ 1.10's); profiles are added only if the stub
 * supports them as well.
 */
export async function assembleUki(
  stub: Uint8Array,
  contents: UkiContents,
  options: {
    wantProfiles: boolean;
    sectionOrder?: readonly UkiPayloadSection[];
    /** Write the PE headers anew with this COFF time stamp (Talos ≥ 1.10's assembler); default: keep the stub's. */
    rewriteHeaders?: { timestamp: number };
  },
  out: Writable,
): Promise<AssembledUki> {
  const info = systemdStubInfo(stub);
  const profiles = options.wantProfiles && info.supportsProfiles;
  const sections = ukiSections(contents, profiles, options.sectionOrder);
  if (options.rewriteHeaders !== undefined) {
    const native = await assembleNative(stub, sections, options.rewriteHeaders.timestamp, out);
    return { sections: native.appended, totalSize: native.totalSize, stub: info, profiles };
  }
  const layout = await appendSections(stub, sections, out);
  return { sections: layout.sections, totalSize: layout.totalSize, stub: info, profiles };
}
