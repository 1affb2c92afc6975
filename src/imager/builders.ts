// The asset builders, one per output kind, in one table, and `build`, the one entry point: it checks the
// inputs against the profile, builds into a temporary file beside the output (with a work directory beside
// it too: the same filesystem, and room for large files) and renames it into place only on success, so a
// failed or cancelled build leaves nothing partial behind.
//
//   kernel     the imager's vmlinuz, as is
//   cmdline    the kernel command line (talos/cmdline.ts), no trailing newline (upstream writes it so)
//   initramfs  the imager's initramfs with the extensions appended (extensions.ts)
//   uki        systemd-stub + .osrel .cmdline .uname .linux .initrd (formats/uki.ts); unsigned
//   installer  docker-save tarball: the base installer's layers + one artifacts layer in the version's layout
//   iso        GRUB ISO (grub boot loader), hybrid GRUB-BIOS + systemd-boot-UEFI ISO (dual-boot) or UEFI ISO
//              (sd-boot), with the ISO command line (iso/iso.ts); arm64 GRUB from Debian's arm64-efi modules
//   disk       the raw image with the version's partitions and META (disk/talos-disk.ts), then compressed or
//              converted (disk/outputs.ts)
// Intermediate results (the extended initramfs, the UKI) are made once per build and shared by the steps.

import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { badRequest, integrity, notImplemented, unsupported } from "../errors.ts";
import type { MetaRecord } from "../formats/meta-partition.ts";
import { assembleUki, osReleaseFor, systemdEfiInfo, systemdStubInfo, type UkiContents } from "../formats/uki.ts";
import type { Digest } from "../oci/digest.ts";
import { writeDockerArchive } from "../oci/docker-archive.ts";
import { buildLayer } from "../oci/layer.ts";
import type { TarEntry } from "../oci/tar.ts";
import { resolveMtime } from "../oci/tar.ts";
import { buildCmdline, type OutputKind } from "../talos/cmdline.ts";
import { getOptionsInput, type OverlayOptions } from "../talos/overlay.ts";
import type { Bootloader } from "../talos/schematic.ts";
import { talosUkiProfiles } from "../talos/uki-profiles.ts";
import { rulesFor } from "../talos/version-rules.ts";
import { resolveGrubPlatformDir } from "../tools/grub.ts";
import { buildOva, compressDiskImage, convertDiskImage } from "./disk/outputs.ts";
import { buildTalosDisk } from "./disk/talos-disk.ts";
import { buildExtendedInitramfs } from "./extensions.ts";
import { type ImagerInputs, imagerAsset, type LocalOverlay } from "./inputs.ts";
import { installerOverlayEntries } from "./installer-overlay.ts";
import { buildGrubIso, buildHybridIso, buildUefiIso } from "./iso/iso.ts";
import { bzImageKernelRelease } from "./kernel.ts";
import {
  defaultOverlayTimeoutMs,
  overlayGetOptions,
  overlayInstall,
  overlayProfileKernelArgs,
  prepareOverlayRoot,
} from "./overlay.ts";
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
  /** GRUB's arm64-efi platform directory for arm64 GRUB images; default resolveGrubPlatformDir's (tools/grub.ts). */
  grubArm64EfiDir?: (signal?: AbortSignal) => Promise<string>;
  /** The keys Secure Boot assets are signed with; without them such assets are refused. */
  secureBoot?: SecureBootSigners;
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
  grubArm64EfiDir?: (signal?: AbortSignal) => Promise<string>;
  secureBoot?: SecureBootSigners;
  /** Intermediate results shared between steps (e.g. the extended initramfs the UKI embeds). */
  stepResults: Map<string, Promise<string>>;
  overlayTimeoutMs: number;
  /** The overlay's sandbox root, options and profile args, made once (overlaySetup). */
  overlay?: Promise<OverlaySetup>;
}

/** What the overlay contributes to a build. */
interface OverlaySetup {
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
function once(context: BuildContext, key: string, make: () => Promise<string>): Promise<string> {
  let result = context.stepResults.get(key);
  if (result === undefined) {
    result = make();
    context.stepResults.set(key, result);
  }
  return result;
}

function refuseSecureBoot(profile: BuildProfile): void {
  if (profile.secureBoot)
    throw notImplemented(`${profile.filename}: secure boot ISOs, disk images and installers are not built yet`);
}

/** The Secure Boot keys, or a refusal naming what is missing. */
function secureBootSigners(context: BuildContext): SecureBootSigners {
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
function overlaySetup(context: BuildContext): Promise<OverlaySetup> | undefined {
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
async function kernelCmdline(context: BuildContext, outputKind: OutputKind): Promise<string> {
  const setup = await overlaySetup(context);
  return cmdlineFor(
    context.profile,
    outputKind,
    setup === undefined ? undefined : { kernelArgs: setup.options.kernelArgs, profileArgs: setup.profileArgs },
  );
}

/** The extended initramfs, in the work directory. */
function extendedInitramfs(context: BuildContext): Promise<string> {
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
    });
    context.log(`initramfs layers: ${result.layers.map((l) => `${l.image}=${l.metadata.name}`).join(" ")}`);
    await rm(work, { recursive: true, force: true });
    return out;
  });
}

/** The UKI for `outputKind`'s command line, in the work directory. */
function unifiedKernelImage(context: BuildContext, outputKind: OutputKind): Promise<string> {
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
async function bootLoaderTakesProfiles(context: BuildContext, outputKind: OutputKind): Promise<boolean> {
  if (outputKind !== "iso" && outputKind !== "disk" && outputKind !== "installer") return true;
  const bootPath = await imagerAsset(context.inputs, context.profile.arch, "systemd-boot.efi");
  if ((await stat(bootPath)).size > 16 * 1024 * 1024) throw integrity("systemd-boot.efi is larger than 16 MiB");
  const info = systemdEfiInfo(await readFile(bootPath));
  if (!info.supportsProfiles)
    context.log(`UKI without profiles: the imager's ${info.loaderInfo ?? "systemd-boot"} predates systemd 257`);
  return info.supportsProfiles;
}

const kernelBuilder: AssetBuilder = {
  kind: "kernel",
  async build(context, outPath) {
    await copyFile(await imagerAsset(context.inputs, context.profile.arch, "vmlinuz"), outPath);
  },
};

const cmdlineBuilder: AssetBuilder = {
  kind: "cmdline",
  async build(context, outPath) {
    await writeFile(outPath, cmdlineFor(context.profile, "cmdline"));
  },
};

const initramfsBuilder: AssetBuilder = {
  kind: "initramfs",
  async build(context, outPath) {
    await rename(await extendedInitramfs(context), outPath);
  },
};

const ukiBuilder: AssetBuilder = {
  kind: "uki",
  async build(context, outPath) {
    await rename(await unifiedKernelImage(context, "uki"), outPath);
  },
};

/** Image config JSON, as far as the installer needs to read it. */
interface ImageConfig {
  config?: Record<string, unknown>;
  rootfs?: { type?: string; diff_ids?: string[] };
}

const maxConfigBytes = 1024 * 1024;

const installerBuilder: AssetBuilder = {
  kind: "installer",
  async build(context, outPath) {
    const { profile, inputs } = context;
    refuseSecureBoot(profile);
    const rules = rulesFor(profile.talosVersion);
    const base = inputs.installerBase;
    if (base === undefined) throw badRequest(`${profile.filename}: the base installer image was not given`);
    if (base.config.length > maxConfigBytes) throw integrity("the base installer's config is larger than 1 MiB");
    const baseConfig = JSON.parse(Buffer.from(base.config).toString("utf8")) as ImageConfig;
    const diffIds = baseConfig.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== base.layers.length)
      throw integrity("the base installer's config does not describe its layers (rootfs.diff_ids)");
    // Installers since Talos 1.5 keep their own boot assets in a second layer, which the artifacts replace.
    const keep = base.layers.length === 2 ? 1 : base.layers.length;

    const artifactSources: Record<string, () => Promise<string>> = {
      vmlinuz: () => imagerAsset(inputs, profile.arch, "vmlinuz"),
      "initramfs.xz": () => extendedInitramfs(context),
      "systemd-boot.efi": () => imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
      "vmlinuz.efi": () => unifiedKernelImage(context, "installer"),
    };
    const entries: TarEntry[] = [];
    for (const name of rules.installerArtifacts) {
      const source = artifactSources[name];
      if (source === undefined) throw integrity(`no source for installer artifact ${name}`);
      const sourcePath = await source();
      entries.push({
        type: "file",
        path: `usr/install/${profile.arch}/${name}`,
        // Talos' imager lists the artifacts without an image mode (pkg/imager/out.go outInstaller,
        // filemap.File{ImagePath, SourcePath}), so their tar headers say 0; the installer reads them as root.
        mode: 0,
        sourcePath,
        size: (await stat(sourcePath)).size,
      });
    }
    const layerFile = join(context.workDir, "artifacts.tar.gz");
    context.log(`writing the artifacts layer (${rules.installerArtifacts.join(", ")})`);
    const layer = await buildLayer(entries, layerFile, { compression: "gzip", mtime: context.mtime });

    // With an overlay, a third layer: its artifacts, installer and options (pkg/imager/out.go outInstaller).
    const extra: { diffId: string; path: string; digest: Digest; size: number; mediaType: string }[] = [];
    if (profile.overlay !== undefined && inputs.overlay !== undefined) {
      const overlayFile = join(context.workDir, "overlay.tar.gz");
      context.log(`writing the overlay layer (${inputs.overlay.name})`);
      const overlayLayer = await buildLayer(await installerOverlayEntries(inputs.overlay), overlayFile, {
        compression: "gzip",
        mtime: context.mtime,
      });
      extra.push({
        diffId: overlayLayer.diffId,
        path: overlayFile,
        digest: overlayLayer.descriptor.digest as Digest,
        size: overlayLayer.descriptor.size,
        mediaType: overlayLayer.descriptor.mediaType,
      });
    }

    const created = new Date(context.mtime * 1000).toISOString().replace(/\.000Z$/, "Z");
    const allDiffIds = [...diffIds.slice(0, keep), layer.diffId, ...extra.map((e) => e.diffId)];
    const config = Buffer.from(
      JSON.stringify({
        architecture: profile.arch,
        created,
        history: allDiffIds.map(() => ({ created, created_by: "boot-assets imager" })),
        os: "linux",
        rootfs: { type: "layers", diff_ids: allDiffIds },
        config: baseConfig.config ?? {},
      }),
    );
    await writeDockerArchive(
      {
        config,
        layers: [
          ...base.layers.slice(0, keep),
          {
            path: layerFile,
            digest: layer.descriptor.digest as Digest,
            size: layer.descriptor.size,
            mediaType: layer.descriptor.mediaType,
          },
          ...extra.map(({ path, digest, size, mediaType }) => ({ path, digest, size, mediaType })),
        ],
        // Upstream tags it with image-factory's "fake reference" `<installer component>:<version>`
        // (internal/profile/profile.go, internal/artifacts/fetch.go InstallerImageName): installer-base from
        // the unified installer (1.10), installer before.
        repoTags: [context.installerRepoTag ?? `siderolabs/${rules.installerImage}:${profile.talosVersion}`],
      },
      outPath,
      { mtime: context.mtime },
    );
  },
};

function bootloaderOf(profile: BuildProfile): Bootloader {
  if (profile.bootloader === undefined) throw badRequest(`${profile.filename}: the profile names no boot loader`);
  return profile.bootloader;
}

/** GRUB's arm64-efi platform directory (arm64 GRUB ISOs and disk images): shared, read only, never a step result. */
function grubArm64EfiDir(context: BuildContext): Promise<string> {
  if (context.grubArm64EfiDir !== undefined) return context.grubArm64EfiDir(context.signal);
  return resolveGrubPlatformDir("arm64-efi", {
    log: context.log,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
  });
}

const isoBuilder: AssetBuilder = {
  kind: "iso",
  async build(context, outPath) {
    const { profile, inputs } = context;
    refuseSecureBoot(profile);
    const bootloader = bootloaderOf(profile);
    const rules = rulesFor(profile.talosVersion);
    const common = {
      out: outPath,
      version: profile.talosVersion,
      volumeLabel: rules.isoVolumeLabel,
      mtime: context.mtime,
      scratchDir: context.workDir,
      signal: context.signal,
    };
    const grub = async () => ({
      kernel: await imagerAsset(inputs, profile.arch, "vmlinuz"),
      initramfs: await extendedInitramfs(context),
      cmdline: await kernelCmdline(context, "iso"),
      resetEntry: rules.grubResetOption,
      // A GRUB ISO for arm64 from the arm64-efi modules alone (iso/iso.ts); the hybrid's GRUB is i386-pc's.
      ...(profile.arch === "arm64" && bootloader === "grub" ? { grubDirectory: await grubArm64EfiDir(context) } : {}),
    });
    const uefi = async () => ({
      uki: await unifiedKernelImage(context, "iso"),
      sdBoot: await imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
      arch: profile.arch,
    });
    context.log(`ISO with ${bootloader}`);
    if (bootloader === "grub") await buildGrubIso({ ...common, ...(await grub()) });
    else if (bootloader === "dual-boot") await buildHybridIso({ ...common, ...(await grub()), ...(await uefi()) });
    else await buildUefiIso({ ...common, ...(await uefi()) });
  },
};

const diskBuilder: AssetBuilder = {
  kind: "disk",
  async build(context, outPath) {
    const { profile, inputs } = context;
    refuseSecureBoot(profile);
    const bootloader = bootloaderOf(profile);
    const disk = profile.disk;
    if (disk === undefined) throw badRequest(`${profile.filename}: the profile has no disk image options`);
    const rules = rulesFor(profile.talosVersion);
    // Before any asset is made: upstream's dual-boot loader refuses arm64 (talos bootloader/dual/dual.go).
    if (profile.arch === "arm64" && bootloader === "dual-boot")
      throw badRequest(
        "dual-boot bootloader is not supported on arm64 architecture, either GRUB or sd-boot must be used",
      );
    const withGrub = bootloader !== "sd-boot";
    const withUki = bootloader !== "grub";
    const plainRaw = disk.format === "raw" && disk.compression === "none";
    const raw = plainRaw ? outPath : join(context.workDir, "disk.raw");
    const meta: MetaRecord[] = profile.schematic.meta.map((m) => ({ tag: m.key, value: Buffer.from(m.value) }));
    context.log(
      `disk image with ${bootloader}, ${disk.sizeBytes / (1024 * 1024)} MiB, ${disk.sectorSize ?? 512}-byte sectors`,
    );
    const overlay = await overlaySetup(context);
    const { layout } = await buildTalosDisk({
      out: raw,
      sizeBytes: disk.sizeBytes,
      rules,
      bootloader,
      arch: profile.arch,
      version: profile.talosVersion,
      ...(withGrub
        ? {
            cmdline: await kernelCmdline(context, "disk"),
            kernel: await imagerAsset(inputs, profile.arch, "vmlinuz"),
            initramfs: await extendedInitramfs(context),
            ...(profile.arch === "arm64" && bootloader === "grub"
              ? { grubEfiDirectory: await grubArm64EfiDir(context) }
              : {}),
          }
        : {}),
      ...(withUki
        ? {
            uki: await unifiedKernelImage(context, "disk"),
            sdBoot: await imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
          }
        : {}),
      meta,
      ...(disk.sectorSize === undefined ? {} : { sectorSize: disk.sectorSize }),
      ...(overlay !== undefined && overlay.options.partitionOffset > 0
        ? { skipLbas: overlay.options.partitionOffset }
        : {}),
      scratchDir: context.workDir,
      mtime: context.mtime,
      signal: context.signal,
    });
    context.log(`partitions: ${layout.partitions.map((p) => p.name).join(" ")}`);
    if (overlay !== undefined) {
      // Upstream runs the overlay's installer once the boot loader is in place (install.go ExtraInstallStep).
      const efi = layout.partitions.find((p) => p.name === "EFI");
      if (efi === undefined) throw badRequest(`${profile.filename}: the disk has no EFI partition for the overlay`);
      const added = await overlayInstall(
        overlay.local,
        overlay.root,
        { path: raw, efiOffset: efi.offsetBytes },
        { timeoutMs: context.overlayTimeoutMs, signal: context.signal, mtime: context.mtime },
      );
      context.log(`overlay ${overlay.local.name} installed: ${added.length} files in the EFI partition`);
    }
    if (plainRaw) return;
    // The boot assets are no longer needed: free their room before the image is copied once more.
    for (const key of context.stepResults.keys())
      await rm(await (context.stepResults.get(key) as Promise<string>), { force: true });
    context.stepResults.clear();
    const outputOptions = { mtime: context.mtime, signal: context.signal };
    let image = raw;
    if (disk.format !== "raw") {
      image = disk.compression === "none" ? outPath : join(context.workDir, `disk.${disk.format}`);
      if (disk.format === "ova")
        await buildOva(raw, image, {
          ...outputOptions,
          diskSizeBytes: disk.sizeBytes,
          scratchDir: context.workDir,
          rules: rulesFor(profile.talosVersion),
        });
      else
        await convertDiskImage(raw, image, disk.format === "vhd" ? "vpc" : "qcow2", disk.formatOptions, outputOptions);
      await rm(raw, { force: true });
    }
    // Any format may be compressed, as upstream (a .tar.gz holds the image as disk.raw whatever its format).
    if (disk.compression !== "none") await compressDiskImage(image, outPath, disk.compression, outputOptions);
  },
};

/** Every builder, by output kind. */
export const assetBuilders: Readonly<Record<BuildKind, AssetBuilder>> = {
  kernel: kernelBuilder,
  cmdline: cmdlineBuilder,
  initramfs: initramfsBuilder,
  uki: ukiBuilder,
  installer: installerBuilder,
  iso: isoBuilder,
  disk: diskBuilder,
};

/** The inputs must be what the profile (and so its hash) describes. */
function checkInputs(profile: BuildProfile, inputs: ImagerInputs): void {
  const overlay = profile.overlay;
  const local = inputs.overlay;
  if (overlay !== undefined) {
    if (local === undefined) throw badRequest(`${profile.filename}: the overlay ${overlay.name} was not given`);
    if (
      local.name !== overlay.name ||
      local.digest !== overlay.digest ||
      getOptionsInput(local.options) !== overlay.options
    )
      throw badRequest(
        `the overlay given (${local.name} ${local.image}@${local.digest}) is not the profile's (${overlay.name} ${overlay.image}@${overlay.digest}, or other options)`,
      );
  }
  const wanted = profile.inputs.extensions;
  const given = inputs.extensions;
  const same =
    wanted.length === given.length &&
    wanted.every((w, i) => w.name === given[i]?.name && w.digest === given[i]?.digest);
  if (!same)
    throw badRequest(
      `the extensions given (${given.map((e) => `${e.name}@${e.digest}`).join(", ") || "none"}) are not the profile's (${wanted.map((e) => `${e.name}@${e.digest}`).join(", ") || "none"})`,
    );
}

/** Builds the profile's asset at `outPath` (replaced only when the build succeeds). */
export async function build(
  profile: BuildProfile,
  inputs: ImagerInputs,
  outPath: string,
  options: BuildOptions = {},
): Promise<BuildResult> {
  const started = performance.now();
  const builder = assetBuilders[profile.kind];
  if (builder === undefined) throw unsupported(`${profile.filename}: ${profile.kind} assets are not built here`);
  checkInputs(profile, inputs);
  const mtime = resolveMtime(options.mtime);
  const stem = join(dirname(outPath), `.${basename(outPath)}.${randomUUID()}`);
  const temp = `${stem}.part`;
  const workDir = `${stem}.work`;
  await mkdir(workDir, { recursive: true });
  const log = options.log ?? (() => {});
  try {
    options.signal?.throwIfAborted();
    log(`building ${profile.filename} for Talos ${profile.talosVersion}`);
    await builder.build(
      {
        profile,
        inputs,
        workDir,
        mtime,
        signal: options.signal,
        log,
        installerRepoTag: options.installerRepoTag,
        ...(options.labellingMksquashfs !== undefined ? { labellingMksquashfs: options.labellingMksquashfs } : {}),
        ...(options.grubArm64EfiDir !== undefined ? { grubArm64EfiDir: options.grubArm64EfiDir } : {}),
        ...(options.secureBoot !== undefined ? { secureBoot: options.secureBoot } : {}),
        stepResults: new Map(),
        overlayTimeoutMs: options.overlayTimeoutMs ?? defaultOverlayTimeoutMs,
      },
      temp,
    );
    options.signal?.throwIfAborted();
    await rename(temp, outPath);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  return { path: outPath, size: (await stat(outPath)).size, seconds };
}
