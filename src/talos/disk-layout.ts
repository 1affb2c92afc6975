// What a Talos disk image looks like for a version and boot loader: its partitions in order with sizes,
// types and file systems (upstream internal/pkg/partition + quirks.PartitionSizes + the bootloaders'
// PrepareBootPartitions), the image size (profile FillDefaults), and each platform's default disk image
// (pkg/imager/profile/default.go). Sizes that change between versions come from the version rules.

import { badRequest } from "../errors.ts";
import { GptAttribute, GptType, gptSectorSizes } from "../formats/gpt.ts";
import type { Bootloader } from "./schematic.ts";
import type { VersionRules } from "./version-rules.ts";

const mib = 1024 * 1024;

export type PartitionLabel = "EFI" | "BIOS" | "BOOT" | "META" | "STATE" | "EPHEMERAL";
/** What goes into the partition: a FAT ESP, XFS, GRUB's core image, the META blocks, or nothing (zeros). */
export type PartitionContent = "vfat" | "xfs" | "grub-core" | "meta" | "none";

export interface DiskPartitionLayout {
  label: PartitionLabel;
  typeGuid: string;
  /** Bytes; undefined takes the rest of the disk. */
  sizeBytes: number | undefined;
  content: PartitionContent;
  attributes: bigint;
}

/** Upstream's fixed sizes (quirks.PartitionSizes); BOOT's comes from the version rules. */
export const partitionSizes = {
  grubEfiBytes: 100 * mib,
  biosBytes: 1 * mib,
  metaBytes: 1 * mib,
  stateBytes: 100 * mib,
  ephemeralMinBytes: 2048 * mib,
} as const;

export function bootPartitionBytes(rules: VersionRules): number {
  return rules.bootPartitionMiB * mib;
}

/** With a UKI every boot asset lives in EFI, so it takes the room GRUB's EFI + BIOS + BOOT would. */
export function ukiEfiPartitionBytes(rules: VersionRules): number {
  return partitionSizes.grubEfiBytes + partitionSizes.biosBytes + bootPartitionBytes(rules);
}

/** The partitions of a disk image, in order. */
export function diskLayoutFor(rules: VersionRules, bootloader: Bootloader): DiskPartitionLayout[] {
  const efi = (sizeBytes: number): DiskPartitionLayout => ({
    label: "EFI",
    typeGuid: GptType.EfiSystem,
    sizeBytes,
    content: "vfat",
    attributes: 0n,
  });
  const bios: DiskPartitionLayout = {
    label: "BIOS",
    typeGuid: GptType.BiosBoot,
    sizeBytes: partitionSizes.biosBytes,
    content: "grub-core",
    attributes: GptAttribute.LegacyBiosBootable,
  };
  const boot: DiskPartitionLayout = {
    label: "BOOT",
    typeGuid: GptType.LinuxFilesystem,
    sizeBytes: bootPartitionBytes(rules),
    content: "xfs",
    attributes: 0n,
  };
  const meta: DiskPartitionLayout = {
    label: "META",
    typeGuid: GptType.LinuxFilesystem,
    sizeBytes: partitionSizes.metaBytes,
    content: "meta",
    attributes: 0n,
  };
  let layout: DiskPartitionLayout[];
  switch (bootloader) {
    case "grub":
      layout = [efi(partitionSizes.grubEfiBytes), bios, boot, meta];
      break;
    case "dual-boot":
      layout = [efi(ukiEfiPartitionBytes(rules)), bios, boot, meta];
      break;
    case "sd-boot":
      layout = [efi(ukiEfiPartitionBytes(rules)), meta];
      break;
  }
  // Before 1.8 images carried STATE and EPHEMERAL (the rest of the disk), both without a file system (talos
  // v1.7 cmd/installer/pkg/install/manifest.go: FilesystemTypeNone, NoFilesystem); since, Talos makes them at
  // boot.
  if (!rules.skipDataPartitions)
    layout.push(
      {
        label: "STATE",
        typeGuid: GptType.LinuxFilesystem,
        sizeBytes: partitionSizes.stateBytes,
        content: "none",
        attributes: 0n,
      },
      {
        label: "EPHEMERAL",
        typeGuid: GptType.LinuxFilesystem,
        sizeBytes: undefined,
        content: "none",
        attributes: 0n,
      },
    );
  return layout;
}

/**
 * The disk image size for a platform's base size (upstream Output.FillDefaults): BOOT's growth beyond
 * 1000 MiB is added, and dual-boot adds room for BIOS + BOOT next to the large EFI.
 */
export function diskImageBytes(baseBytes: number, rules: VersionRules, bootloader: Bootloader): number {
  let size = baseBytes + bootPartitionBytes(rules) - 1000 * mib;
  if (bootloader === "dual-boot") size += partitionSizes.biosBytes + bootPartitionBytes(rules);
  return size;
}

/** The sector size of a disk image unless the schematic sets one (schematic.DiskImageCustomization). */
export const defaultDiskSectorSize = 512;

/**
 * The logical sector size a disk image is made for, from the schematic's `customization.diskImage.sectorSize`
 * (undefined or 0: 512). Upstream hands any value to its imager (image-factory internal/profile/profile.go
 * EnhanceFromSchematic sets ImageOptions.DiskSectorSize for disk images, every Talos version; talos
 * pkg/imager/out.go passes it to the installer's image mode, which lays out the GPT in that unit and runs
 * mkfs.vfat -S / mkfs.xfs -s size= with it). A size the tools or Linux cannot use (not a power of two, or
 * above the 4 KiB page Linux caps logical blocks at) makes upstream's build fail with a 500; here it is a 400
 * naming the sizes that work.
 */
export function diskSectorSize(requested: number | undefined, layout: readonly DiskPartitionLayout[]): number {
  if (requested === undefined || requested === 0) return defaultDiskSectorSize;
  if (!gptSectorSizes.includes(requested))
    throw badRequest(
      `customization.diskImage.sectorSize ${requested} is not supported: disk images are made with ${gptSectorSizes.join(", ")}-byte sectors`,
      "SECTOR_SIZE_UNSUPPORTED",
    );
  // EFI is FAT32 (mkfs.vfat -F 32, one sector per cluster at most): FAT32 needs 65525 clusters (Microsoft's
  // FAT specification decides the FAT type by the cluster count alone), plus room for the reserved sectors
  // and the FATs. GRUB's 100 MiB EFI has 25600 sectors of 4096 bytes: mtools then cannot read it ("Error
  // reading FAT") and firmware may take it for FAT16, so such an image is refused rather than made broken.
  const efi = layout.find((p) => p.label === "EFI")?.sizeBytes;
  if (efi !== undefined && efi / requested < fat32MinClusters + 2048)
    throw badRequest(
      `customization.diskImage.sectorSize ${requested} is not supported for this boot loader: its ${efi / mib} MiB EFI partition ` +
        `would hold ${Math.floor(efi / requested)} sectors, too few for FAT32 (${fat32MinClusters} clusters); use sd-boot or dual-boot, or a smaller sector size`,
      "SECTOR_SIZE_UNSUPPORTED",
    );
  return requested;
}

const fat32MinClusters = 65525;

export type DiskFormat = "raw" | "qcow2" | "vpc" | "ova";

export interface DiskImageDefaults {
  baseBytes: number;
  format: DiskFormat;
  /** qemu-img `-o` options for the format. */
  formatOptions?: string;
}

const minRaw = 1246 * mib;
const defaultRaw = 8192 * mib;
const qcow2 = "cluster_size=8k";
const vhd = "subformat=fixed,force_size";

/** Upstream's per-platform disk image defaults (pkg/imager/profile/default.go). */
const platformDiskDefaults: Record<string, DiskImageDefaults> = {
  metal: { baseBytes: minRaw, format: "raw" },
  akamai: { baseBytes: minRaw, format: "raw" },
  alibabacloud: { baseBytes: minRaw, format: "qcow2", formatOptions: qcow2 },
  aws: { baseBytes: defaultRaw, format: "raw" },
  azure: { baseBytes: defaultRaw, format: "vpc", formatOptions: vhd },
  cloudstack: { baseBytes: defaultRaw, format: "raw" },
  "digital-ocean": { baseBytes: defaultRaw, format: "raw" },
  exoscale: { baseBytes: 10 * 1024 * mib, format: "qcow2", formatOptions: qcow2 },
  gcp: { baseBytes: defaultRaw, format: "raw" },
  hcloud: { baseBytes: minRaw, format: "raw" },
  nocloud: { baseBytes: minRaw, format: "raw" },
  opennebula: { baseBytes: minRaw, format: "raw" },
  openstack: { baseBytes: minRaw, format: "raw" },
  oracle: { baseBytes: defaultRaw, format: "qcow2", formatOptions: qcow2 },
  scaleway: { baseBytes: minRaw, format: "raw" },
  upcloud: { baseBytes: defaultRaw, format: "raw" },
  vmware: { baseBytes: defaultRaw, format: "ova" },
  vultr: { baseBytes: defaultRaw, format: "raw" },
};

export function diskImageDefaults(platform: string): DiskImageDefaults {
  const defaults = platformDiskDefaults[platform];
  if (defaults === undefined) throw badRequest(`no disk image defaults for platform "${platform}"`, "PLATFORM_INVALID");
  return defaults;
}
