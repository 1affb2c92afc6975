// GRUB's image tools (Debian grub-common with grub-pc-bin for BIOS and grub-efi-amd64-bin for UEFI):
// grub-mkimage builds core.img / BOOTX64.EFI for disk images; grub-mkrescue builds GRUB ISOs (it drives
// xorriso and mtools itself).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { type RunOptions, runTool, type Tool } from "./run.ts";

export const grubMkimageTool: Tool = { command: "grub-mkimage", debianPackage: "grub-common" };
export const grubMkrescueTool: Tool = { command: "grub-mkrescue", debianPackage: "grub-common" };

/** Where the Debian packages put GRUB's platform directories. */
export const grubLibDir = "/usr/lib/grub";

export type GrubPlatform = "i386-pc" | "x86_64-efi" | "arm64-efi";

const platformPackages: Record<GrubPlatform, string> = {
  "i386-pc": "grub-pc-bin",
  "x86_64-efi": "grub-efi-amd64-bin",
  "arm64-efi": "grub-efi-arm64-bin",
};

type Options = Pick<RunOptions, "signal" | "timeoutMs" | "env">;

/** The platform directory (modules, boot.img…), or a clear error naming the package that provides it. */
export function grubPlatformDir(platform: GrubPlatform): string {
  const dir = join(grubLibDir, platform);
  if (!existsSync(join(dir, "moddep.lst")))
    throw new Error(`GRUB ${platform} files are missing: apt-get install ${platformPackages[platform]}`);
  return dir;
}

export interface GrubMkimageOptions extends Options {
  platform: GrubPlatform;
  output: string;
  /** Where GRUB finds its config, e.g. "(hd0,gpt3)/grub". */
  prefix: string;
  modules: readonly string[];
  compression?: "xz" | "none";
}

export function grubMkimageArgs(options: GrubMkimageOptions): string[] {
  const args = [
    "--directory",
    grubPlatformDir(options.platform),
    "--format",
    options.platform,
    "--output",
    options.output,
    "--prefix",
    options.prefix,
  ];
  if (options.compression !== undefined) args.push("--compression", options.compression);
  return [...args, ...options.modules];
}

export async function grubMkimage(options: GrubMkimageOptions): Promise<void> {
  await runTool(grubMkimageTool, grubMkimageArgs(options), options);
}

/** grub-mkrescue with upstream's arguments passed through (`--output`, the source dir, xorriso options…). */
export async function grubMkrescue(args: readonly string[], options: Options = {}): Promise<void> {
  grubPlatformDir("i386-pc");
  await runTool(grubMkrescueTool, args, options);
}
