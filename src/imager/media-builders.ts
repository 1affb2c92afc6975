// The builders of the assets that carry a whole boot: the installer image (docker-save tarball), ISOs and disk
// images (src/imager/builders.ts has the table and `build`).

import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { badRequest, integrity } from "../errors.ts";
import type { MetaRecord } from "../formats/meta-partition.ts";
import type { Digest } from "../oci/digest.ts";
import { writeDockerArchive } from "../oci/docker-archive.ts";
import { buildLayer } from "../oci/layer.ts";
import type { TarEntry } from "../oci/tar.ts";
import type { Bootloader } from "../talos/schematic.ts";
import { rulesFor } from "../talos/version-rules.ts";
import { resolveGrubPlatformDir } from "../tools/grub.ts";
import {
  type AssetBuilder,
  type BuildContext,
  extendedInitramfs,
  kernelCmdline,
  overlaySetup,
  secureBootSigners,
  unifiedKernelImage,
} from "./build-steps.ts";
import { buildOva, compressDiskImage, convertDiskImage } from "./disk/outputs.ts";
import { buildTalosDisk } from "./disk/talos-disk.ts";
import { imagerAsset } from "./inputs.ts";
import { installerOverlayEntries } from "./installer-overlay.ts";
import { buildGrubIso, buildHybridIso, buildUefiIso } from "./iso/iso.ts";
import { overlayInstall } from "./overlay.ts";
import type { BuildProfile } from "./profile.ts";
import { secureBootIsoFiles, signedSystemdBoot } from "./secureboot-media.ts";

/** Image config JSON, as far as the installer needs to read it. */
interface ImageConfig {
  config?: Record<string, unknown>;
  rootfs?: { type?: string; diff_ids?: string[] };
}

const maxConfigBytes = 1024 * 1024;

export const installerBuilder: AssetBuilder = {
  kind: "installer",
  async build(context, outPath) {
    const { profile, inputs } = context;
    if (profile.secureBoot) secureBootSigners(context); // refused before any work without the keys
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

    // Secure Boot: systemd-boot and the UKI, both signed, whatever the version (pkg/imager/out.go
    // outInstaller with SecureBootEnabled; imager.go signs them into sdBootPath/ukiPath).
    const artifacts = profile.secureBoot ? rules.secureBootInstallerArtifacts : rules.installerArtifacts;
    const artifactSources: Record<string, () => Promise<string>> = {
      vmlinuz: () => imagerAsset(inputs, profile.arch, "vmlinuz"),
      "initramfs.xz": () => extendedInitramfs(context),
      "systemd-boot.efi": () =>
        profile.secureBoot ? signedSystemdBoot(context) : imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
      "vmlinuz.efi": () => unifiedKernelImage(context, "installer"),
      "vmlinuz.efi.signed": () => unifiedKernelImage(context, "installer"),
    };
    const entries: TarEntry[] = [];
    for (const name of artifacts) {
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
    context.log(`writing the artifacts layer (${artifacts.join(", ")})`);
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

export const isoBuilder: AssetBuilder = {
  kind: "iso",
  async build(context, outPath) {
    const { profile, inputs } = context;
    const bootloader = bootloaderOf(profile);
    const rules = rulesFor(profile.talosVersion);
    const common = {
      out: outPath,
      version: profile.talosVersion,
      volumeLabel: rules.isoVolumeLabel,
      mtime: context.mtime,
      scratchDir: context.workDir,
      signal: context.signal,
      intermediateCache: context.intermediateCache,
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
      sdBoot: profile.secureBoot
        ? await signedSystemdBoot(context)
        : await imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
      arch: profile.arch,
      ...(profile.secureBoot ? await secureBootIsoFiles(context) : {}),
    });
    context.log(`ISO with ${bootloader}`);
    if (bootloader === "grub") await buildGrubIso({ ...common, ...(await grub()) });
    else if (bootloader === "dual-boot") await buildHybridIso({ ...common, ...(await grub()), ...(await uefi()) });
    else await buildUefiIso({ ...common, ...(await uefi()) });
  },
};

export const diskBuilder: AssetBuilder = {
  kind: "disk",
  async build(context, outPath) {
    const { profile, inputs } = context;
    if (profile.secureBoot) secureBootSigners(context); // refused before any work without the keys
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
            // Secure Boot: always sd-boot (the profile's boot loader), both signed; no keys on the disk
            // (talos pkg/imager/out.go buildImage, install.Options ImageSecureboot; bootloader/sdboot install).
            uki: await unifiedKernelImage(context, "disk"),
            sdBoot: profile.secureBoot
              ? await signedSystemdBoot(context)
              : await imagerAsset(inputs, profile.arch, "systemd-boot.efi"),
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
    if (disk.compression !== "none")
      await compressDiskImage(image, outPath, disk.compression, {
        ...outputOptions,
        log: context.log,
        ...(context.intermediateCache === undefined ? {} : { intermediateCache: context.intermediateCache }),
      });
  },
};
