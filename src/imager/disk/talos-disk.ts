// A Talos disk image from local boot assets: the partitions of the version's layout (src/talos/disk-layout)
// filled as upstream's image mode fills them —
//   GRUB:      EFI = GRUB's BOOTX64.efi; BIOS = core.img; BOOT (XFS) = A/vmlinuz, A/initramfs.xz, grub/grub.cfg
//              (arm64: EFI = GRUB's BOOTAA64.efi, the BIOS partition kept but empty — upstream's generateGrubImage
//              makes core.img for amd64 only, and the layout is the same for both arches)
//   sd-boot:   EFI = systemd-boot as EFI/boot/BOOTX64.efi, the UKI as EFI/Linux/Talos-<ver>.efi, loader/loader.conf
//   dual-boot: EFI as sd-boot, BIOS and BOOT as GRUB (META records the choice: DiskImageBootloader)
//   all:       META = the schematic's meta values in the META format (zeros without values, before 1.13)
//   pre-1.8:   STATE and EPHEMERAL partitions without file systems
//   sector size (schematic diskImage.sectorSize): the GPT in that unit, FAT and XFS made for it
// then assembled by assembleDisk.

import { copyFile, link, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../../errors.ts";
import { diskGrubConfig, loaderConf } from "../../formats/boot-config.ts";
import type { GptLayout } from "../../formats/gpt.ts";
import { encodeMetaPartition, type MetaRecord, MetaTag } from "../../formats/meta-partition.ts";
import { diskLayoutFor } from "../../talos/disk-layout.ts";
import type { Bootloader } from "../../talos/schematic.ts";
import type { VersionRules } from "../../talos/version-rules.ts";
import { mapLimited } from "../../util/concurrency.ts";
import { assembleDisk, type DiskPartitionInput } from "./assemble.ts";
import { buildFatImage, type FileSource } from "./fat.ts";
import { buildGrubCoreImage, buildGrubEfiImage } from "./grub-bios.ts";
import { buildXfsImage } from "./xfs.ts";

export interface TalosDiskOptions {
  out: string;
  sizeBytes: number;
  rules: VersionRules;
  bootloader: Bootloader;
  arch: "amd64" | "arm64";
  /** The Talos version as named in file names and menus ("v1.8.2"). */
  version: string;
  /** GRUB: the kernel command line (sd-boot takes it from the UKI). */
  cmdline?: string;
  kernel?: string;
  initramfs?: string;
  /** GRUB on arm64: the arm64-efi platform directory (tools/grub.ts resolveGrubPlatformDir). */
  grubEfiDirectory?: string;
  /** sd-boot / dual-boot. */
  uki?: string;
  sdBoot?: string;
  meta?: readonly MetaRecord[];
  /**
   * The disk's logical sector size (schematic customization.diskImage.sectorSize): the GPT's unit and the
   * sector size EFI's FAT and BOOT's XFS are made for, as upstream's image mode (default 512).
   */
  sectorSize?: number;
  /** LBAs left free after the GPT header: an overlay's partition offset (install.go, gpt.WithSkipLBAs). */
  skipLbas?: number;
  /** Where intermediate images go (a temp dir under it, removed afterwards). */
  scratchDir: string;
  mtime?: number;
  signal?: AbortSignal;
}

export interface TalosDiskResult {
  layout: GptLayout;
  /** The XFS mkfs config used for BOOT (may be an older LTS one than the version's; see buildXfsImage). */
  xfsConfig: string | undefined;
}

async function linkOrCopy(source: string, dest: string): Promise<void> {
  try {
    await link(source, dest);
  } catch {
    await copyFile(source, dest);
  }
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw badRequest(`a disk image with this boot loader needs ${what}`);
  return value;
}

export async function buildTalosDisk(options: TalosDiskOptions): Promise<TalosDiskResult> {
  const { rules, bootloader } = options;
  // Upstream's dual-boot loader refuses arm64 (talos bootloader/dual/dual.go PrepareBootPartitions).
  if (options.arch === "arm64" && bootloader === "dual-boot")
    throw badRequest(
      "dual-boot bootloader is not supported on arm64 architecture, either GRUB or sd-boot must be used",
    );
  const work = await mkdtemp(join(options.scratchDir, "talos-disk-"));
  const common = { signal: options.signal, mtime: options.mtime };
  // Upstream passes -S / -s size= only for a sector size set in the profile (makefs.WithSectorSize).
  const sectorSize = options.sectorSize !== undefined && options.sectorSize !== 512 ? options.sectorSize : undefined;
  try {
    const withGrub = bootloader === "grub" || bootloader === "dual-boot";
    const withSdBoot = bootloader === "sd-boot" || bootloader === "dual-boot";
    const efiName = options.arch === "amd64" ? "BOOTX64.efi" : "BOOTAA64.efi";
    const layout = diskLayoutFor(rules, bootloader);
    let xfsConfig: string | undefined;
    const contents = new Map<string, DiskPartitionInput["content"]>();
    let coreImage: string | undefined;
    // BIOS and BOOT (GRUB's core.img, the XFS file system).
    const grubPartitions = async () => {
      // BIOS boot only on amd64 (talos bootloader/grub/install.go generateGrubImage).
      if (options.arch === "amd64") {
        coreImage = join(work, "core.img");
        await buildGrubCoreImage(coreImage, common);
      }
      const bootDir = join(work, "boot");
      await mkdir(join(bootDir, "A"), { recursive: true });
      await mkdir(join(bootDir, "grub"), { recursive: true });
      await linkOrCopy(need(options.kernel, "a kernel"), join(bootDir, "A", "vmlinuz"));
      await linkOrCopy(need(options.initramfs, "an initramfs"), join(bootDir, "A", "initramfs.xz"));
      const grubCfg = diskGrubConfig({
        cmdline: need(options.cmdline, "a kernel command line"),
        version: options.version,
        resetEntry: rules.grubResetOption,
      });
      await writeFile(join(bootDir, "grub", "grub.cfg"), grubCfg, { mode: 0o600 });
      const bootImage = join(work, "BOOT.img");
      const layoutBoot = layout.find((p) => p.label === "BOOT");
      const result = await buildXfsImage(bootImage, {
        ...common,
        sizeBytes: need(layoutBoot?.sizeBytes, "a BOOT size"),
        label: "BOOT",
        sourceDir: bootDir,
        configFile: rules.xfsMkfsConfig,
        sectorSize,
      });
      xfsConfig = result.configFile;
      contents.set("BOOT", { file: bootImage });
    };
    // EFI (FAT): GRUB's EFI image, or systemd-boot and the UKI.
    const efiPartition = async () => {
      const efiFiles = new Map<string, FileSource>();
      if (withGrub && !withSdBoot) {
        const grubEfi = join(work, "grub-efi.img");
        await buildGrubEfiImage(
          grubEfi,
          options.arch === "amd64"
            ? common
            : {
                ...common,
                platform: "arm64-efi",
                directory: need(options.grubEfiDirectory, "GRUB's arm64-efi platform directory"),
              },
        );
        efiFiles.set(`EFI/boot/${efiName}`, grubEfi);
      }
      if (withSdBoot) {
        efiFiles.set(`EFI/boot/${efiName}`, need(options.sdBoot, "systemd-boot"));
        efiFiles.set(`EFI/Linux/Talos-${options.version}.efi`, need(options.uki, "a UKI"));
        efiFiles.set("loader/loader.conf", Buffer.from(loaderConf({ medium: "disk" })));
      }
      const efiImage = join(work, "EFI.img");
      await buildFatImage(efiImage, {
        ...common,
        sizeBytes: need(layout[0]?.sizeBytes, "an EFI size"),
        label: "EFI",
        files: efiFiles,
        mtime: options.mtime,
        sectorSize,
      });
      contents.set("EFI", { file: efiImage });
    };
    // Independent of each other: made at once (each is mostly one tool), both settled before anything goes on.
    await mapLimited(withGrub ? [grubPartitions, efiPartition] : [efiPartition], 2, (make) => make());
    const meta = [...(options.meta ?? [])];
    if (bootloader === "dual-boot" && !meta.some((r) => r.tag === MetaTag.DiskImageBootloader))
      meta.push({ tag: MetaTag.DiskImageBootloader, value: Buffer.from("dual-boot") });
    // Upstream's installer writes META only when it has values (the dual-boot tag is one) before 1.13, and
    // always from 1.13 (cmd/installer/pkg/install/install.go); otherwise the partition stays zeroed.
    if (meta.length > 0 || rules.metaAlwaysWritten) contents.set("META", { data: encodeMetaPartition(meta) });
    const gpt = await assembleDisk({
      path: options.out,
      sizeBytes: options.sizeBytes,
      partitions: layout.map((p) => ({
        name: p.label,
        typeGuid: p.typeGuid,
        sizeBytes: p.sizeBytes,
        attributes: p.attributes,
        content: contents.get(p.label),
      })),
      grubBios: coreImage === undefined ? undefined : { coreImage },
      sectorSize,
      ...(options.skipLbas === undefined ? {} : { skipLbas: options.skipLbas }),
      signal: options.signal,
    });
    return { layout: gpt, xfsConfig };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
