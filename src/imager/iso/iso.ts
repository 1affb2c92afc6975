// Talos ISOs, as upstream's pkg/imager/iso builds them:
// - GRUB (BIOS + UEFI through GRUB; Talos < 1.10): boot/vmlinuz, boot/initramfs.xz, boot/grub/grub.cfg,
//   made by grub-mkrescue. grub-mkrescue takes every platform directory under /usr/lib/grub, and upstream's
//   imager carries i386-pc, x86_64-efi and arm64-efi (talos Dockerfile: pkg-grub of both arches; siderolabs/pkgs
//   grub/pkg.yaml builds pc only on x86_64), so its ISOs hold all three whatever the arch. Here the amd64 ISO
//   has the machine's i386-pc + x86_64-efi; the arm64 ISO is made from the arm64-efi directory alone
//   (`--directory`): BOOTAA64.EFI in efi.img, the UEFI El Torito image, which is all that boots an arm64
//   kernel (the x86 loaders upstream's also carries could only fail to load it).
// - UEFI (sd-boot; secure boot and arm64): a FAT efiboot.img with systemd-boot, the UKI and
//   loader/loader.conf (+ loader/random-seed, read-only), appended to the ISO as partition 2 (type 0xEF)
//   by xorriso; the same files are in the ISO 9660 tree.
// grub-mkrescue's work is split in two (grub-parts.ts): the GRUB files it stages, recorded once per GRUB version
// and kept in the intermediate cache, and its xorriso run, made here for each ISO.
// - Hybrid (dual-boot, Talos ≥ 1.10): grub-mkrescue for BIOS only, with the sd-boot efiboot.img
//   as the UEFI El Torito image and appended partition. The same for arm64 (upstream's default ISO for
//   1.10/1.11 whatever the arch, pkg/imager/out.go outISO): i386-pc GRUB for BIOS, BOOTAA64.EFI sd-boot for UEFI.
// Reproducible given the same inputs and time: xorriso's file and volume dates and its GPT GUIDs are set
// from `mtime`, and so are the dates in GRUB's FAT image (upstream does this when SOURCE_DATE_EPOCH is set).
// The GRUB ISO's own efi.img gets a random FAT serial number from Debian's grub-mkrescue, which ignores
// GRUB_FAT_SERIAL_NUMBER (grub 2.06): the serial is set afterwards (formats/el-torito.ts).

import { copyFile, link, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isoGrubConfig, isoLabel, isoVolumeId, loaderConf, type SecureBootEnroll } from "../../formats/boot-config.ts";
import { setEfiBootImageSerial } from "../../formats/el-torito.ts";
import { xorrisofs } from "../../tools/xorriso.ts";
import { buildFatImage, type FileSource, fatSectorsPerCluster } from "../disk/fat.ts";
import type { IntermediateCache } from "../intermediate-cache.ts";
import { buildIsoWithGrub } from "./grub-parts.ts";

const mib = 1024 * 1024;

export interface IsoCommonOptions {
  out: string;
  /** Talos version ("v1.8.2"): names the UKI and the volume label. */
  version: string;
  /** Label the volume (rules.isoVolumeLabel): `-volid TALOS_V1_8_2 -volset-id Talos-v1.8.2`. */
  volumeLabel: boolean;
  /** Timestamp for reproducible output (seconds); default SOURCE_DATE_EPOCH when set. */
  mtime?: number;
  scratchDir: string;
  signal?: AbortSignal;
  /** Where the GRUB part of GRUB and hybrid ISOs is kept across builds (grub-parts.ts); default: made each time. */
  intermediateCache?: IntermediateCache | undefined;
}

export interface GrubIsoInputs {
  kernel: string;
  initramfs: string;
  cmdline: string;
  /** rules.grubResetOption. */
  resetEntry: boolean;
  /** GRUB ISO only: the one platform directory to make it from (arm64: arm64-efi); default every installed one. */
  grubDirectory?: string;
}

export interface UefiIsoInputs {
  uki: string;
  sdBoot: string;
  arch: "amd64" | "arm64";
  /** loader.conf secure-boot-enroll (default "off"). */
  secureBootEnroll?: SecureBootEnroll;
  /** Secure boot: PK.auth, KEK.auth, db.auth for loader/keys/auto, and the UKI signing cert (DER). */
  enrollKeys?: { pk: string; kek: string; db: string };
  ukiSigningCertDer?: string;
}

function epochOf(options: IsoCommonOptions): number | undefined {
  if (options.mtime !== undefined) return options.mtime;
  const env = process.env.SOURCE_DATE_EPOCH;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : undefined;
}

/** xorriso native commands upstream appends after the mkisofs arguments (after "--"). */
export function isoTrailingCommands(options: IsoCommonOptions): string[] {
  const args: string[] = [];
  const given = epochOf(options);
  if (given !== undefined) {
    // libisofs reads a time of 0 as "not set" and then stamps every file with the clock: the Unix epoch
    // itself (the default mtime) is written as one second later.
    const epoch = Math.max(given, 1);
    const d = new Date(epoch * 1000);
    const p = (n: number, w = 2) => String(n).padStart(w, "0");
    const uuid = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}00`;
    args.push("-volume_date", "all_file_dates", `=${epoch}`, "-volume_date", "uuid", uuid);
    // The GPT GUIDs (GPT of hybrid ISOs) from that uuid instead of random ones.
    args.push("-boot_image", "any", "gpt_disk_guid=volume_date_uuid");
  }
  if (options.volumeLabel) {
    const label = isoLabel(options.version);
    args.push("-volid", isoVolumeId(label), "-volset-id", label);
  }
  return args;
}

function toolEnv(options: IsoCommonOptions): Record<string, string> {
  const epoch = epochOf(options);
  // grub-mkrescue's own FAT image: a serial number from this (newer grub-mkrescue), and mtools' file dates.
  return epoch === undefined
    ? {}
    : { GRUB_FAT_SERIAL_NUMBER: (epoch >>> 0).toString(16), SOURCE_DATE_EPOCH: String(Math.max(epoch, 1)) };
}

function grubCommon(options: IsoCommonOptions) {
  return {
    out: options.out,
    env: toolEnv(options),
    scratchDir: options.scratchDir,
    intermediateCache: options.intermediateCache,
    signal: options.signal,
  };
}

async function linkOrCopy(source: string, dest: string): Promise<void> {
  try {
    await link(source, dest);
  } catch {
    await copyFile(source, dest);
  }
}

async function stageGrub(tree: string, inputs: GrubIsoInputs): Promise<void> {
  await mkdir(join(tree, "boot", "grub"), { recursive: true });
  await linkOrCopy(inputs.kernel, join(tree, "boot", "vmlinuz"));
  await linkOrCopy(inputs.initramfs, join(tree, "boot", "initramfs.xz"));
  await writeFile(
    join(tree, "boot", "grub", "grub.cfg"),
    isoGrubConfig({ cmdline: inputs.cmdline, resetEntry: inputs.resetEntry }),
  );
}

/**
 * The efiboot.img size: 10 MiB plus systemd-boot and the UKI rounded up to MiB (upstream), but at least
 * enough for FAT32's minimum cluster count — firmware (EDK2) decides FAT12/16/32 by cluster count, and
 * upstream never hits this only because real UKIs are ~100 MB.
 */
export async function efiBootImageBytes(files: readonly string[]): Promise<number> {
  let size = 10 * mib;
  for (const file of files) size += Math.ceil((await stat(file)).size / mib) * mib;
  return Math.max(size, 40 * mib);
}

/** Stages the UEFI files in the ISO tree and makes efiboot.img from the same list. Returns its path. */
async function stageUefi(tree: string, inputs: UefiIsoInputs, options: IsoCommonOptions): Promise<string> {
  const bootName = inputs.arch === "arm64" ? "BOOTAA64.EFI" : "BOOTX64.EFI";
  const files = new Map<string, FileSource>([
    [`EFI/BOOT/${bootName}`, inputs.sdBoot],
    [`EFI/Linux/Talos-${options.version}.efi`, inputs.uki],
    ["loader/loader.conf", Buffer.from(loaderConf({ medium: "iso", secureBootEnroll: inputs.secureBootEnroll }))],
    // A placeholder seed, read-only: systemd-boot ≥ 261 would otherwise try to create one on read-only media.
    ["loader/random-seed", Buffer.alloc(32)],
  ]);
  if (inputs.ukiSigningCertDer !== undefined) files.set("EFI/keys/uki-signing-cert.der", inputs.ukiSigningCertDer);
  if (inputs.enrollKeys !== undefined) {
    files.set("loader/keys/auto/PK.auth", inputs.enrollKeys.pk);
    files.set("loader/keys/auto/KEK.auth", inputs.enrollKeys.kek);
    files.set("loader/keys/auto/db.auth", inputs.enrollKeys.db);
  }
  for (const [path, source] of files) {
    const dest = join(tree, ...path.split("/"));
    await mkdir(join(dest, ".."), { recursive: true });
    if (typeof source === "string") await linkOrCopy(source, dest);
    else await writeFile(dest, source);
  }
  const image = join(tree, "efiboot.img");
  const sizeBytes = await efiBootImageBytes([inputs.sdBoot, inputs.uki]);
  await buildFatImage(image, {
    sizeBytes,
    label: "EFI",
    files,
    sectorsPerCluster: fatSectorsPerCluster(sizeBytes),
    readOnly: ["loader/random-seed"],
    mtime: epochOf(options),
    signal: options.signal,
  });
  return image;
}

async function withTree<T>(options: IsoCommonOptions, fn: (tree: string) => Promise<T>): Promise<T> {
  const tree = await mkdtemp(join(options.scratchDir, "iso-"));
  try {
    return await fn(tree);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

/** A GRUB ISO (BIOS and UEFI through GRUB). */
export async function buildGrubIso(options: IsoCommonOptions & GrubIsoInputs): Promise<void> {
  await withTree(options, async (tree) => {
    await stageGrub(tree, options);
    const directory = options.grubDirectory === undefined ? [] : [`--directory=${options.grubDirectory}`];
    await buildIsoWithGrub({
      ...grubCommon(options),
      mkrescueArgs: ["--compress=xz", ...directory],
      xorrisoArgs: [tree, "-iso-level", "3", "--", ...isoTrailingCommands(options)],
    });
    // Debian's grub-mkrescue gives its efi.img a random FAT serial (it ignores GRUB_FAT_SERIAL_NUMBER): the
    // serial it was asked for is written in afterwards, so the ISO is reproducible.
    const epoch = epochOf(options);
    if (epoch !== undefined) await setEfiBootImageSerial(options.out, epoch >>> 0);
  });
}

/** The xorriso options that append efiboot.img as partition 2 (0xEF) and boot UEFI from it. */
function appendedEfiArgs(efiBootImage: string): string[] {
  return ["-e", "--interval:appended_partition_2:all::", "-append_partition", "2", "0xef", efiBootImage];
}

/** A UEFI-only ISO booting systemd-boot and the UKI. */
export async function buildUefiIso(options: IsoCommonOptions & UefiIsoInputs): Promise<void> {
  await withTree(options, async (tree) => {
    const efiBoot = await stageUefi(tree, options, options);
    await xorrisofs(
      [
        ...appendedEfiArgs(efiBoot),
        "-partition_cyl_align",
        "all",
        "-partition_offset",
        "16",
        "-iso_mbr_part_type",
        "0x83",
        "-no-emul-boot",
        "-m",
        "efiboot.img",
        "-iso-level",
        "3",
        "-o",
        options.out,
        tree,
        "--",
        ...isoTrailingCommands(options),
      ],
      { signal: options.signal },
    );
  });
}

/** A hybrid ISO: GRUB for BIOS, systemd-boot + UKI for UEFI. */
export async function buildHybridIso(options: IsoCommonOptions & GrubIsoInputs & UefiIsoInputs): Promise<void> {
  await withTree(options, async (tree) => {
    await stageGrub(tree, options);
    const efiBoot = await stageUefi(tree, options, options);
    await buildIsoWithGrub({
      ...grubCommon(options),
      // Only the BIOS platform: UEFI boots from the appended efiboot.img instead of GRUB's own.
      mkrescueArgs: ["--compress=xz", "--directory=/usr/lib/grub/i386-pc"],
      xorrisoArgs: [
        "-m",
        "efiboot.img",
        "-iso-level",
        "3",
        tree,
        "-eltorito-alt-boot",
        ...appendedEfiArgs(efiBoot),
        "-appended_part_as_gpt",
        "-partition_cyl_align",
        "all",
        "-partition_offset",
        "16",
        "-iso_mbr_part_type",
        "0x83",
        "-no-emul-boot",
        "--",
        ...isoTrailingCommands(options),
      ],
    });
  });
}
