// GRUB's image tools (Debian grub-common with grub-pc-bin for BIOS and grub-efi-amd64-bin for UEFI):
// grub-mkimage builds core.img / BOOTX64.EFI / BOOTAA64.EFI for disk images; grub-mkrescue builds GRUB ISOs
// (it drives xorriso and mtools itself). GRUB's image tools are architecture-neutral: arm64 images are made
// on any machine from the arm64-efi platform directory of Debian's grub-efi-arm64-bin, the machine's when
// installed, else taken from the package (never installed) into the package store.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { upstream } from "../errors.ts";
import { bootAssetsCacheDir, fetchForeignPackage } from "./debian-packages.ts";
import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

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

/**
 * The platform directory for `platform`: the machine's (/usr/lib/grub/<platform>) when installed, else, for
 * arm64-efi, the one in Debian's grub-efi-arm64-bin for arm64, fetched into the package store under `cacheDir`
 * (default: the toolkit's, bootAssetsCacheDir). The other platforms must be installed (host-packages.sh).
 */
export async function resolveGrubPlatformDir(
  platform: GrubPlatform,
  options: { cacheDir?: string; log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<string> {
  const installed = join(grubLibDir, platform);
  if (existsSync(join(installed, "moddep.lst")) || platform !== "arm64-efi") return grubPlatformDir(platform);
  options.log?.(`GRUB ${platform}: taking ${platformPackages[platform]} (arm64) from Debian into the package store`);
  const pkg = await fetchForeignPackage(platformPackages[platform], "arm64", {
    cacheDir: options.cacheDir ?? bootAssetsCacheDir(),
    ...(options.log === undefined ? {} : { log: options.log }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const dir = join(pkg.root, "usr", "lib", "grub", platform);
  if (!existsSync(join(dir, "moddep.lst")))
    throw upstream(`Debian's ${platformPackages[platform]} ${pkg.version} has no ${platform} platform directory`);
  return dir;
}

export interface GrubMkimageOptions extends Options {
  platform: GrubPlatform;
  /** The platform directory; default the machine's (grubPlatformDir). */
  directory?: string;
  output: string;
  /** Where GRUB finds its config, e.g. "(hd0,gpt3)/grub". */
  prefix: string;
  modules: readonly string[];
  compression?: "xz" | "none";
}

export function grubMkimageArgs(options: GrubMkimageOptions): string[] {
  const args = [
    "--directory",
    options.directory ?? grubPlatformDir(options.platform),
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

let mkrescueVersion: Promise<string> | undefined;

/** `grub-mkrescue --version` ("grub-mkrescue (GRUB) 2.06-13+deb12u2"), asked once per process. */
export function grubMkrescueVersion(): Promise<string> {
  mkrescueVersion ??= runToolText(grubMkrescueTool, ["--version"]).then((text) => text.trim());
  mkrescueVersion.catch(() => {
    mkrescueVersion = undefined;
  });
  return mkrescueVersion;
}

/** grub-mkrescue with upstream's arguments passed through (`--output`, the source dir, xorriso options…). */
export async function grubMkrescue(args: readonly string[], options: Options = {}): Promise<void> {
  grubPlatformDir("i386-pc");
  await runTool(grubMkrescueTool, args, options);
}
