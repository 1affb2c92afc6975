// The steps asset builders share (src/imager/builders.ts): the build options and context, the overlay's setup,
// the kernel command line, the extended initramfs and the UKI (signed for Secure Boot), each made once per build.

import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { badRequest, integrity } from "../errors.ts";
import { assembleUki, osReleaseFor, systemdEfiInfo, systemdStubInfo, type UkiContents } from "../formats/uki.ts";
import { buildCmdline, type OutputKind } from "../talos/cmdline.ts";
import type { OverlayOptions } from "../talos/overlay.ts";
import type { WellKnownCertificates } from "../talos/secureboot-database.ts";
import { talosUkiProfiles } from "../talos/uki-profiles.ts";
import { rulesFor } from "../talos/version-rules.ts";
import { buildExtendedInitramfs } from "./extensions.ts";
import { type ImagerInputs, imagerAsset, type LocalOverlay } from "./inputs.ts";
import type { IntermediateCache } from "./intermediate-cache.ts";
import { bzImageKernelRelease } from "./kernel.ts";
import { overlayGetOptions, overlayProfileKernelArgs, prepareOverlayRoot } from "./overlay.ts";
import type { BuildKind, BuildProfile } from "./profile.ts";
import { type SecureBootSigners, signEfiBinary, withPcrSignatures } from "./secureboot-uki.ts";
import { bootSplash } from "./splash.ts";

export interface BuildOptions {
  signal?: AbortSignal;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Timestamp of every file in the output; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  /** The name an installer tarball loads as; default upstream's `siderolabs/installer-base:<version>` (1.10+) or `siderolabs/installer:<version>`. */
  installerRepoTag?: string;
  /** An mksquashfs ≥ 4.6 for SELinux-labelled extension images (extensions.ts); default the one on PATH if recent enough. */
  labellingMksquashfs?: (signal?: AbortSignal) => Promise<string | undefined>;
  /** Extension images kept across builds (intermediate-cache.ts); default none: every image is made. */
  intermediateCache?: IntermediateCache;
  /** GRUB's arm64-efi platform directory for arm64 GRUB images; default resolveGrubPlatformDir's (tools/grub.ts). */
  grubArm64EfiDir?: (signal?: AbortSignal) => Promise<string>;
  /** The keys Secure Boot assets are signed with; without them such assets are refused. */
  secureBoot?: SecureBootSigners;
  /**
   * The well-known UEFI CA certificates for `secureboot.includeWellKnownCertificates` (well-known-certificates.ts);
   * default: Debian's, into the package store under bootAssetsCacheDir().
   */
  wellKnownCertificates?: (signal?: AbortSignal) => Promise<WellKnownCertificates>;
  /** Time limit of each run of an overlay's installer (default 5 minutes). */
  overlayTimeoutMs?: number;
}

/** What a builder gets besides the profile: the inputs, scratch space and shared intermediate results. */
export interface BuildContext {
  profile: BuildProfile;
  inputs: ImagerInputs;
  /** Scratch directory, removed after the build. */
  workDir: string;
  mtime: number;
  signal?: AbortSignal;
  log: (line: string) => void;
  installerRepoTag?: string;
  labellingMksquashfs?: (signal?: AbortSignal) => Promise<string | undefined>;
  intermediateCache?: IntermediateCache;
  grubArm64EfiDir?: (signal?: AbortSignal) => Promise<string>;
  secureBoot?: SecureBootSigners;
  wellKnownCertificates?: (signal?: AbortSignal) => Promise<WellKnownCertificates>;
  /** Intermediate results shared between steps (e.g. the extended initramfs the UKI embeds). */
  stepResults: Map<string, Promise<string>>;
  overlayTimeoutMs: number;
  /** The overlay's sandbox root, options and profile args, made once (overlaySetup). */
  overlay?: Promise<OverlaySetup>;
}

/** What the overlay contributes to a build. */
export interface OverlaySetup {
  local: LocalOverlay;
  root: string;
  options: OverlayOptions;
  /** Its profile's extra kernel args (before the schematic's). */
  profileArgs: string[];
}

export interface AssetBuilder {
  readonly kind: BuildKind;
  /** Writes the asset to `outPath` (a temporary file the caller renames). */
  build(context: BuildContext, outPath: string): Promise<void>;
}

export interface BuildResult {
  path: string;
  size: number;
  seconds: number;
}

/** A step's result, computed once per build. */
export function once(context: BuildContext, key: string, make: () => Promise<string>): Promise<string> {
  let result = context.stepResults.get(key);
  if (result === undefined) {
    result = make();
    context.stepResults.set(key, result);
  }
  return result;
}

/** The Secure Boot keys, or a refusal naming what is missing. */
export function secureBootSigners(context: BuildContext): SecureBootSigners {
  if (context.secureBoot === undefined)
    throw badRequest(`${context.profile.filename}: secure boot is disabled (no signing keys)`, "SECUREBOOT_DISABLED");
  return context.secureBoot;
}

/**
 * The command line for an output kind, from the profile's (already normalized) customization, and the
 * overlay's kernel args (`get-options`) and profile args (before the schematic's, as MergeOverlayProfile).
 */
export function cmdlineFor(
  profile: BuildProfile,
  outputKind: OutputKind,
  overlay?: { kernelArgs: readonly string[]; profileArgs: readonly string[] },
): string {
  return buildCmdline({
    talosVersion: profile.talosVersion,
    platform: profile.platform,
    arch: profile.arch,
    secureBoot: profile.secureBoot,
    outputKind,
    ...(overlay === undefined ? {} : { overlayKernelArgs: overlay.kernelArgs }),
    schematic: {
      extraKernelArgs: [...(overlay?.profileArgs ?? []), ...profile.schematic.extraKernelArgs],
      meta: profile.schematic.meta,
    },
  });
}

/** The overlay's part of the build, once: its sandbox root prepared, `get-options` run, its profile read. */
export function overlaySetup(context: BuildContext): Promise<OverlaySetup> | undefined {
  const local = context.inputs.overlay;
  if (context.profile.overlay === undefined || local === undefined) return undefined;
  context.overlay ??= (async () => {
    const root = await prepareOverlayRoot(local, join(context.workDir, "overlay-root"));
    const options = await overlayGetOptions(local, root, {
      timeoutMs: context.overlayTimeoutMs,
      signal: context.signal,
    });
    const profileArgs = await overlayProfileKernelArgs(local);
    context.log(
      `overlay ${local.name}: kernel args [${options.kernelArgs.join(" ")}], profile args [${profileArgs.join(" ")}], partition offset ${options.partitionOffset}`,
    );
    return { local, root, options, profileArgs };
  })();
  return context.overlay;
}

/** The command line of an output kind, with the overlay's args when the profile has an overlay. */
export async function kernelCmdline(context: BuildContext, outputKind: OutputKind): Promise<string> {
  const setup = await overlaySetup(context);
  return cmdlineFor(
    context.profile,
    outputKind,
    setup === undefined ? undefined : { kernelArgs: setup.options.kernelArgs, profileArgs: setup.profileArgs },
  );
}

/** The extended initramfs, in the work directory. */
export function extendedInitramfs(context: BuildContext): Promise<string> {
  return once(context, "initramfs", async () => {
    const { profile } = context;
    if (profile.schematic.id === undefined) throw badRequest(`${profile.filename}: the profile has no schematic`);
    const out = join(context.workDir, "initramfs.xz");
    const work = join(context.workDir, "initramfs-work");
    await mkdir(work);
    const result = await buildExtendedInitramfs({
      talosVersion: profile.talosVersion,
      baseInitramfs: await imagerAsset(context.inputs, profile.arch, "initramfs.xz"),
      extensions: context.inputs.extensions,
      schematic: { id: profile.schematic.id, yaml: profile.schematic.yaml, author: profile.schematic.author ?? "" },
      ...(profile.schematic.embeddedConfig !== undefined ? { embeddedConfig: profile.schematic.embeddedConfig } : {}),
      outPath: out,
      workDir: work,
      mtime: context.mtime,
      signal: context.signal,
      log: context.log,
      ...(context.labellingMksquashfs !== undefined ? { labellingMksquashfs: context.labellingMksquashfs } : {}),
      ...(context.intermediateCache !== undefined
        ? { intermediateCache: context.intermediateCache, arch: profile.arch }
        : {}),
    });
    context.log(`initramfs layers: ${result.layers.map((l) => `${l.image}=${l.metadata.name}`).join(" ")}`);
    await rm(work, { recursive: true, force: true });
    return out;
  });
}

/** The UKI for `outputKind`'s command line, in the work directory. */
export function unifiedKernelImage(context: BuildContext, outputKind: OutputKind): Promise<string> {
  return once(context, `uki-${outputKind}`, async () => {
    const { profile, inputs } = context;
    const rules = rulesFor(profile.talosVersion);
    if (!rules.uki) throw badRequest(`UKIs cannot be built for Talos ${profile.talosVersion}`);
    const kernel = await imagerAsset(inputs, profile.arch, "vmlinuz");
    const stubPath = await imagerAsset(inputs, profile.arch, "systemd-stub.efi");
    if ((await stat(stubPath)).size > 16 * 1024 * 1024) throw integrity("systemd-stub.efi is larger than 16 MiB");
    const initrd = await extendedInitramfs(context);
    const uname = await bzImageKernelRelease(kernel);
    const out = join(context.workDir, `uki-${outputKind}.efi`);
    const cmdline = await kernelCmdline(context, outputKind);
    const wantProfiles = rules.ukiProfiles && (await bootLoaderTakesProfiles(context, outputKind));
    const stub = await readFile(stubPath);
    let contents: UkiContents = {
      osRelease: osReleaseFor("Talos", profile.talosVersion),
      cmdline,
      ...(uname === undefined ? {} : { uname }),
      ...(rules.ukiSplash ? { splash: { content: bootSplash() } } : {}),
      linux: { path: kernel },
      initrd: { path: initrd },
      profiles: talosUkiProfiles(outputKind, cmdline),
    };
    const signers = profile.secureBoot ? secureBootSigners(context) : undefined;
    if (signers !== undefined)
      contents = await withPcrSignatures(
        stub,
        contents,
        wantProfiles && systemdStubInfo(stub).supportsProfiles,
        signers.pcr,
        context.signal,
      );
    const unsigned = signers === undefined ? out : `${out}.unsigned`;
    const file = createWriteStream(unsigned);
    const finished = new Promise<void>((resolve, reject) => {
      file.once("finish", resolve);
      file.once("error", reject);
    });
    const assembled = await assembleUki(
      stub,
      contents,
      {
        wantProfiles,
        sectionOrder: rules.ukiSectionOrder,
        ...(rules.ukiPeHeadersRewritten ? { rewriteHeaders: { timestamp: context.mtime } } : {}),
      },
      file,
    );
    file.end();
    await finished;
    if (signers !== undefined) {
      await signEfiBinary(unsigned, out, signers, context.signal);
      await rm(unsigned, { force: true });
    }
    context.log(
      `UKI on ${assembled.stub.loaderInfo ?? "an unknown stub"}${assembled.profiles ? " with profiles" : ""}`,
    );
    return out;
  });
}

/**
 * Whether the systemd-boot that boots this UKI handles `.profile` sections: ISOs, disk images and installers
 * carry the imager's systemd-boot.efi, and one older than systemd 257 would boot a multi-profile UKI with its
 * last `.cmdline` (a reset profile's: a wipe), so their UKIs get no profiles then. A UKI download is booted by
 * whatever the user has; it carries only the main profile anyway.
 */
export async function bootLoaderTakesProfiles(context: BuildContext, outputKind: OutputKind): Promise<boolean> {
  if (outputKind !== "iso" && outputKind !== "disk" && outputKind !== "installer") return true;
  const bootPath = await imagerAsset(context.inputs, context.profile.arch, "systemd-boot.efi");
  if ((await stat(bootPath)).size > 16 * 1024 * 1024) throw integrity("systemd-boot.efi is larger than 16 MiB");
  const info = systemdEfiInfo(await readFile(bootPath));
  if (!info.supportsProfiles)
    context.log(`UKI without profiles: the imager's ${info.loaderInfo ?? "systemd-boot"} predates systemd 257`);
  return info.supportsProfiles;
}
