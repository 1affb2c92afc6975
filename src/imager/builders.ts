// The asset builders, one per output kind, in one table, and `build`, the one entry point: it checks the
// inputs against the profile, builds into a temporary file beside the output (with a work directory beside
// it too: the same filesystem, and room for large files) and renames it into place only on success, so a
// failed or cancelled build leaves nothing partial behind.
//
//   kernel     the imager's vmlinuz, as is
//   cmdline    the kernel command line (talos/cmdline.ts), no trailing newline (upstream writes it so)
//   initramfs  the imager's initramfs with the extensions appended (extensions.ts)
//   uki        systemd-stub + .osrel .cmdline .uname .linux .initrd (formats/uki.ts); for Secure Boot with
//              .pcrpkey, .pcrsig and an Authenticode signature (secureboot-uki.ts)
//   installer  docker-save tarball: the base installer's layers + one artifacts layer in the version's layout
//   iso        GRUB ISO (grub boot loader), hybrid GRUB-BIOS + systemd-boot-UEFI ISO (dual-boot) or UEFI ISO
//              (sd-boot), with the ISO command line (iso/iso.ts); arm64 GRUB from Debian's arm64-efi modules
//   disk       the raw image with the version's partitions and META (disk/talos-disk.ts), then compressed or
//              converted (disk/outputs.ts)
// Intermediate results (the extended initramfs, the UKI) are made once per build and shared by the steps
// (build-steps.ts); the installer, ISO and disk builders are in media-builders.ts.

import { randomUUID } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { badRequest, unsupported } from "../errors.ts";
import { resolveMtime } from "../oci/tar.ts";
import { getOptionsInput } from "../talos/overlay.ts";
import {
  type AssetBuilder,
  type BuildOptions,
  type BuildResult,
  cmdlineFor,
  extendedInitramfs,
  unifiedKernelImage,
} from "./build-steps.ts";
import { type ImagerInputs, imagerAsset } from "./inputs.ts";
import { diskBuilder, installerBuilder, isoBuilder } from "./media-builders.ts";
import { defaultOverlayTimeoutMs } from "./overlay.ts";
import type { BuildKind, BuildProfile } from "./profile.ts";

export type { AssetBuilder, BuildContext, BuildOptions, BuildResult } from "./build-steps.ts";
export { cmdlineFor } from "./build-steps.ts";

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
        ...(options.intermediateCache !== undefined ? { intermediateCache: options.intermediateCache } : {}),
        ...(options.grubArm64EfiDir !== undefined ? { grubArm64EfiDir: options.grubArm64EfiDir } : {}),
        ...(options.secureBoot !== undefined ? { secureBoot: options.secureBoot } : {}),
        ...(options.wellKnownCertificates !== undefined
          ? { wellKnownCertificates: options.wellKnownCertificates }
          : {}),
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
    // The intermediate entries this build made are kept in the background while it goes on (their fsyncs
    // overlap its work); the build ends when they are in place (or, failing, gone), so the next build — here
    // or on a replica sharing the remote — finds them and a failed build leaves no temp file behind.
    await options.intermediateCache?.settled();
    await rm(workDir, { recursive: true, force: true });
  }
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  return { path: outPath, size: (await stat(outPath)).size, seconds };
}
