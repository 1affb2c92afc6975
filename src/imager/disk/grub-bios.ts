// GRUB for BIOS on a GPT disk image, embedded by our code: `grub-bios-setup` wants a block device, and
// upstream does the same for disk images (grub.PatchBlocklistsForDiskImage + handleGrubBlocklist):
//   1. core.img (grub-mkimage -O i386-pc) is written at the start of the BIOS boot partition;
//   2. core.img's first sector (diskboot) carries the blocklist of the rest: u64 at 0x1F4 = start + 1,
//      u16 at 0x1FC = its remaining sectors;
//   3. boot.img becomes the MBR's boot code: bytes 0–0x1B7, keeping the MBR's own BPB area (0x03–0x59,
//      as grub-setup does) and the partition table; in it u64 at 0x5C = core.img's start LBA, 0x64 = 0xFF
//      (use the drive the BIOS booted from) and 0x66–0x67 = NOP NOP (skip the floppy drive check).
// The same GRUB modules and prefix as upstream's image mode (bootloader/grub install.go).

import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../../errors.ts";
import { grubMkimage, grubPlatformDir } from "../../tools/grub.ts";
import type { RunOptions } from "../../tools/run.ts";

/** Modules both GRUB images carry (upstream's grubModules). */
export const grubModules = [
  "part_gpt",
  "ext2",
  "fat",
  "xfs",
  "normal",
  "configfile",
  "linux",
  "boot",
  "search",
  "search_fs_uuid",
  "search_fs_file",
  "ls",
  "cat",
  "echo",
  "test",
  "help",
  "reboot",
  "halt",
  "all_video",
] as const;

/** Extra modules of the BIOS image. */
export const grubBiosModules = ["biosdisk", "part_msdos"] as const;

/** GRUB reads its config from BOOT, the third partition (EFI, BIOS, BOOT). */
export const grubDiskPrefix = "(hd0,gpt3)/grub";

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

/** Builds GRUB's BIOS core image. */
export async function buildGrubCoreImage(output: string, options: Options & { prefix?: string } = {}): Promise<void> {
  await grubMkimage({
    ...options,
    platform: "i386-pc",
    output,
    prefix: options.prefix ?? grubDiskPrefix,
    modules: [...grubModules, ...grubBiosModules],
  });
}

/**
 * Builds GRUB's UEFI image (EFI/boot/BOOTX64.efi, or BOOTAA64.efi from arm64-efi, of the GRUB layout): the
 * same modules and prefix for both (talos bootloader/grub/install.go generateGrubImage, --format per arch).
 */
export async function buildGrubEfiImage(
  output: string,
  options: Options & { prefix?: string; platform?: "x86_64-efi" | "arm64-efi"; directory?: string } = {},
): Promise<void> {
  await grubMkimage({
    ...options,
    platform: options.platform ?? "x86_64-efi",
    output,
    prefix: options.prefix ?? grubDiskPrefix,
    modules: grubModules,
    compression: "xz",
  });
}

/** boot.img of the installed GRUB. */
export function grubBootImagePath(): string {
  return join(grubPlatformDir("i386-pc"), "boot.img");
}

const sector = 512;
const coreBlocklistStart = 0x1f4;
const coreBlocklistLength = 0x1fc;
const bootKernelSector = 0x5c;
const bootDrive = 0x64;
const bootDriveCheck = 0x66;
const bpbStart = 0x03;
const bpbEnd = 0x5a;
const bootCodeEnd = 0x1b8; // the disk signature and partition table follow

/** core.img with the blocklist of its remaining sectors pointing at `startLba + 1`. */
export function patchCoreImage(core: Uint8Array, startLba: number): Buffer {
  if (core.length < sector) throw badRequest("core.img is smaller than one sector");
  const patched = Buffer.from(core);
  const rest = Math.ceil(core.length / sector) - 1;
  if (rest > 0xffff) throw badRequest("core.img is too large for its blocklist");
  patched.writeBigUInt64LE(BigInt(startLba + 1), coreBlocklistStart);
  patched.writeUInt16LE(rest, coreBlocklistLength);
  return patched;
}

/** The MBR with boot.img's code loading core.img from `coreStartLba`; the partition table is kept. */
export function patchMbrBootCode(mbr: Uint8Array, bootImage: Uint8Array, coreStartLba: number): Buffer {
  if (mbr.length !== sector || bootImage.length !== sector) throw badRequest("MBR and boot.img must be 512 bytes");
  const out = Buffer.from(mbr);
  const boot = Buffer.from(bootImage);
  boot.copy(out, 0, 0, bpbStart);
  boot.copy(out, bpbEnd, bpbEnd, bootCodeEnd);
  out.writeBigUInt64LE(BigInt(coreStartLba), bootKernelSector);
  out[bootDrive] = 0xff;
  out[bootDriveCheck] = 0x90;
  out[bootDriveCheck + 1] = 0x90;
  return out;
}

export interface EmbedGrubOptions {
  /** The BIOS boot partition (its LBAs in the disk's sector size, which need not be 512). */
  partition: { firstLba: number; offsetBytes: number; sizeBytes: number };
  coreImage: string;
  /** Default: the installed i386-pc boot.img. */
  bootImage?: string;
}

/** Writes core.img into the BIOS boot partition and boot.img's code into the MBR of `disk`. */
export async function embedGrubBios(disk: string, options: EmbedGrubOptions): Promise<void> {
  const core = await readFile(options.coreImage);
  if (core.length > options.partition.sizeBytes)
    throw badRequest(
      `core.img (${core.length} bytes) does not fit the BIOS partition (${options.partition.sizeBytes})`,
    );
  const bootImage = await readFile(options.bootImage ?? grubBootImagePath());
  const handle = await open(disk, "r+");
  try {
    const start = options.partition.firstLba;
    // The LBAs patched in are in the disk's own sectors, as upstream's PatchBlocklistsForDiskImage writes the
    // partition's FirstLBA whatever the sector size (cmd/installer/pkg/install handleGrubBlocklist).
    await handle.write(patchCoreImage(core, start), 0, core.length, options.partition.offsetBytes);
    const mbr = Buffer.alloc(sector);
    await handle.read(mbr, 0, sector, 0);
    await handle.write(patchMbrBootCode(mbr, bootImage.subarray(0, sector), start), 0, sector, 0);
  } finally {
    await handle.close();
  }
}
