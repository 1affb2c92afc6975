// mkfs.vfat / fsck.vfat (Debian dosfstools). The EFI partition and the ISO's efiboot.img are FAT32 file
// systems made in an image file: `--invariant` fixes the volume id and the boot sector's timestamps, so
// the same inputs give the same bytes (upstream's makefs.VFAT with Reproducible).

import { truncate, writeFile } from "node:fs/promises";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const mkfsVfatTool: Tool = { command: "mkfs.vfat", debianPackage: "dosfstools" };
export const fsckVfatTool: Tool = { command: "fsck.vfat", debianPackage: "dosfstools" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

export interface MkfsVfatOptions extends Options {
  /** Size of the image file in bytes (a multiple of 512). */
  sizeBytes: number;
  /** Volume label (≤ 11 characters), e.g. "EFI". */
  label: string;
  /** FAT width (default 32, as upstream formats its ESPs). */
  fatSize?: 12 | 16 | 32;
  /** Sectors per cluster (a power of two); mkfs.vfat picks when undefined. */
  sectorsPerCluster?: number;
  /** Logical sector size (default 512). */
  sectorSize?: number;
  /** Fixed volume id and timestamps (default true). */
  invariant?: boolean;
}

export function mkfsVfatArgs(image: string, options: MkfsVfatOptions): string[] {
  if (!/^[^\s]{1,11}$/.test(options.label)) throw new RangeError(`FAT label "${options.label}" is not 1–11 characters`);
  const args = ["-F", String(options.fatSize ?? 32), "-n", options.label];
  if (options.invariant ?? true) args.push("--invariant");
  if (options.sectorSize !== undefined) args.push("-S", String(options.sectorSize));
  if (options.sectorsPerCluster !== undefined) args.push("-s", String(options.sectorsPerCluster));
  args.push(image);
  return args;
}

/** Creates `image` (replacing it) as a sparse file of the size, then a FAT file system in it. */
export async function mkfsVfat(image: string, options: MkfsVfatOptions): Promise<void> {
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0 || options.sizeBytes % 512 !== 0)
    throw new RangeError(`FAT image size ${options.sizeBytes} is not a positive multiple of 512`);
  await writeFile(image, "");
  await truncate(image, options.sizeBytes);
  await runTool(mkfsVfatTool, mkfsVfatArgs(image, options), options);
}

/** `fsck.vfat -n`: checks without changing anything; rejects when the file system has errors. */
export async function fsckVfat(image: string, options: Options = {}): Promise<string> {
  return await runToolText(fsckVfatTool, ["-n", image], options);
}
