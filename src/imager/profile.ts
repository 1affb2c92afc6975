// The build profile: everything that decides an asset's bytes, and nothing else — the Talos version (its
// rules follow from it), the asset (kind, arch, platform, secure boot), what of the schematic the asset uses,
// and the digests of the images it is built from. Its hash is the factory's cache key.
//
// Normalization follows what upstream's factory feeds its imager (image-factory EnhanceFromSchematic), so two
// requests that must give the same bytes share a key:
//   - kernel and cmdline use no extensions (and the kernel no schematic at all);
//   - initramfs, kernel and the non-secure-boot installer carry no extra kernel args, and the installer no
//     META (its UKI, from 1.10, gets the platform's plain cmdline);
//   - kernel, initramfs and installer are platform-independent (`metal`) except an installer whose version
//     embeds a UKI (its cmdline names the platform);
//   - ISOs and disk images keep the platform, the extra kernel args and META (a disk image puts META in its
//     META partition, an ISO on the command line) and record the boot loader the version picks; disk images
//     also record their size and qemu-img options, from the platform's defaults as image-factory's
//     ParseFromPath takes them (8 GiB for a platform without defaults), and the schematic's disk sector
//     size when it is not 512 (other kinds ignore it, as upstream).

import { createHash } from "node:crypto";
import { badRequest, unsupported } from "../errors.ts";
import type { SecureBootEnroll } from "../formats/boot-config.ts";
import type { AssetRequest, DiskCompression, DiskFormat } from "../talos/asset-path.ts";
import type { OutputKind } from "../talos/cmdline.ts";
import {
  defaultDiskSectorSize,
  diskImageBytes,
  diskImageDefaults,
  diskLayoutFor,
  diskSectorSize,
} from "../talos/disk-layout.ts";
import type { MetaValue } from "../talos/meta.ts";
import { getOptionsInput, overlayUnsupportedMessage, schematicOverlay } from "../talos/overlay.ts";
import type { Arch } from "../talos/platforms.ts";
import type { Bootloader } from "../talos/schematic.ts";
import { canonicalYaml, type Schematic, schematicId } from "../talos/schematic.ts";
import { bootloaderFor, rulesFor, type VersionRules } from "../talos/version-rules.ts";
import { defaultExternalUrl, schematicExtensionAuthor } from "./extensions.ts";

/** Bump to rebuild every cached asset (e.g. after fixing a bug that changed output bytes). */
export const profileHashSalt = "boot-assets imager profile 1";

/** The output kinds this imager builds. */
export type BuildKind = Extract<OutputKind, "kernel" | "initramfs" | "cmdline" | "uki" | "installer" | "iso" | "disk">;
export const buildKinds: readonly BuildKind[] = ["kernel", "initramfs", "cmdline", "uki", "installer", "iso", "disk"];

/** How a disk image is made: what decides its bytes beyond the boot assets. */
export interface DiskImageProfile {
  format: DiskFormat;
  compression: DiskCompression;
  /** The image's size (the platform's base size grown as the version and boot loader need). */
  sizeBytes: number;
  /** qemu-img `-o` options (qcow2, vhd), from the platform's defaults. */
  formatOptions?: string;
  /** The logical sector size when the schematic sets one other than 512 (absent: 512, the same bytes). */
  sectorSize?: number;
}

export interface ProfileExtension {
  /** Repository path, e.g. `siderolabs/zfs`. */
  name: string;
  /** Manifest digest it is pulled by. */
  digest: string;
}

export interface BuildProfile {
  kind: BuildKind;
  /** Talos version tag with its `v`. */
  talosVersion: string;
  arch: Arch;
  platform: string;
  secureBoot: boolean;
  /**
   * Secure Boot ISOs: how systemd-boot enrolls the keys the medium carries (loader.conf secure-boot-enroll; the
   * schematic's secureboot.enrollKeys, else talos pkg/imager/profile/default.go's "if-safe" of secureboot-iso)
   * and whether the well-known UEFI certificates join KEK and db.
   */
  secureBootMedia?: { enrollKeys: SecureBootEnroll; includeWellKnownCertificates: boolean };
  /** ISOs and disk images: the boot loader(s) they carry (version rules, arch, secure boot). */
  bootloader?: Bootloader;
  /** Disk images only. */
  disk?: DiskImageProfile;
  /** The output name (`initramfs-amd64.xz`, `metal-amd64-uki.efi`…); not part of the hash. */
  filename: string;
  schematic: {
    /** Undefined when the asset does not depend on the schematic (kernel, cmdline). */
    id?: string;
    /** Canonical YAML, carried by the virtual schematic extension (extraInfo) from Talos 1.7. */
    yaml?: string;
    /** Author of the virtual schematic extension, e.g. `Image Factory (https://factory.example)`. */
    author?: string;
    /** The machine configuration the schematic embeds (Talos ≥ 1.12), as the embedded-config extension. */
    embeddedConfig?: string;
    extraKernelArgs: string[];
    meta: MetaValue[];
  };
  /**
   * The schematic's overlay, for the outputs it changes (uki, installer, iso, disk: upstream's factory hands
   * it to the imager for every output but kernel and cmdline; initramfs bytes do not depend on it).
   */
  overlay?: ProfileOverlay;
  inputs: {
    /** Imager image digest (undefined for cmdline, which reads nothing). */
    imager?: string;
    installerBase?: string;
    /** The schematic's extensions, in its order (empty when the asset has none). */
    extensions: ProfileExtension[];
  };
}

export interface ProfileOverlay {
  /** The overlay's name (its installer and profile). */
  name: string;
  /** Repository path of the overlay image. */
  image: string;
  /** Its manifest digest. */
  digest: string;
  /** The schematic's options as its installer reads them (YAML, talos/overlay.ts getOptionsInput). */
  options: string;
}

export interface ProfileSources {
  imager: string;
  installerBase?: string;
  /** One per schematic extension, in the schematic's order. */
  extensions: ProfileExtension[];
  /** The schematic's overlay image, resolved from the version's overlays catalog. */
  overlay?: { image: string; digest: string };
  /** The virtual schematic extension's author; default "Image Factory (https://localhost/)" (the default -external-url). */
  schematicAuthor?: string;
}

const digestPattern = /^sha256:[0-9a-f]{64}$/;

function checkDigest(digest: string, what: string): string {
  if (!digestPattern.test(digest)) throw badRequest(`${what}: "${digest}" is not a sha256 digest`, "DIGEST_INVALID");
  return digest;
}

function isBuildKind(kind: OutputKind): kind is BuildKind {
  return (buildKinds as readonly string[]).includes(kind);
}

const mib = 1024 * 1024;
/** image-factory's size for a platform without defaults (profile.DefaultRAWDiskSize). */
const defaultDiskBaseBytes = 8192 * mib;

/** qemu's name for the format (a `.vhd` is qemu's "vpc"). */
function qemuFormat(format: DiskFormat): string {
  return format === "vhd" ? "vpc" : format;
}

/**
 * The disk image options: size and qemu-img options from the platform's defaults. The options only apply
 * when the request asks for the platform's own format (image-factory passes them whatever the format, so
 * `azure-amd64.qcow2` would hand VHD options to the qcow2 driver and fail).
 */
export function diskImageProfile(
  platform: string,
  disk: { format: DiskFormat; compression: DiskCompression },
  rules: VersionRules,
  bootloader: Bootloader,
  requestedSectorSize?: number,
): DiskImageProfile {
  const sectorSize = diskSectorSize(requestedSectorSize, diskLayoutFor(rules, bootloader));
  let defaults: ReturnType<typeof diskImageDefaults> | undefined;
  try {
    defaults = diskImageDefaults(platform);
  } catch {
    defaults = undefined;
  }
  const base = defaults?.baseBytes ?? defaultDiskBaseBytes;
  // Every qcow2 gets cluster_size=8k (image-factory internal/profile/profile.go ParseFromPath); the
  // platform's own options replace it when they are for the asked format.
  const platformOptions =
    defaults?.formatOptions !== undefined && defaults.format === qemuFormat(disk.format)
      ? defaults.formatOptions
      : undefined;
  const formatOptions = platformOptions ?? (disk.format === "qcow2" ? "cluster_size=8k" : undefined);
  return {
    format: disk.format,
    compression: disk.compression,
    sizeBytes: diskImageBytes(base, rules, bootloader),
    ...(formatOptions === undefined ? {} : { formatOptions }),
    ...(sectorSize === defaultDiskSectorSize ? {} : { sectorSize }),
  };
}

/** The profile for one asset request, built from the schematic and the digests of its sources. */
export function createBuildProfile(request: AssetRequest, schematic: Schematic, sources: ProfileSources): BuildProfile {
  const kind = request.kind;
  if (!isBuildKind(kind)) throw unsupported(`${request.filename}: ${kind} images are not built by this imager yet`);
  const id = schematicId(schematic);
  if (id !== request.schematicId)
    throw badRequest(`schematic ${request.schematicId} does not match the schematic given (its ID is ${id})`);
  const rules = rulesFor(request.talosVersion);
  if (kind === "uki" && !rules.uki) throw badRequest(`UKIs cannot be built for Talos ${request.talosVersion}`);
  const names = schematic.customization.systemExtensions?.officialExtensions ?? [];
  const usesExtensions = kind !== "kernel" && kind !== "cmdline";
  // image-factory internal/profile/profile.go EnhanceFromSchematic: upstream's refusal, word for word.
  const embeddedConfig = usesExtensions ? schematic.customization.embeddedMachineConfiguration : undefined;
  if (embeddedConfig !== undefined && !rules.embeddedConfig)
    throw badRequest(`embedding configuration is not supported for Talos version ${request.talosVersion}`);
  // image-factory EnhanceFromSchematic: a named overlay is refused for versions before overlays, whatever the output.
  const overlay = schematicOverlay(schematic);
  if (overlay !== undefined && !rules.overlays) throw badRequest(overlayUnsupportedMessage(request.talosVersion));
  const takesOverlay =
    overlay !== undefined && (kind === "uki" || kind === "installer" || kind === "iso" || kind === "disk");
  if (takesOverlay && sources.overlay === undefined)
    throw badRequest(`the schematic names overlay ${overlay.name} but no overlay image was resolved`);
  if (usesExtensions && sources.extensions.length !== names.length)
    throw badRequest(`the schematic names ${names.length} extensions but ${sources.extensions.length} were resolved`);

  // Which outputs take the schematic's extra kernel args and META (image-factory internal/profile/profile.go
  // EnhanceFromSchematic): kernel and initramfs neither; installer and UKI the args only, and only with
  // Secure Boot or a unified installer (Talos ≥ 1.10); ISO, disk image and cmdline both.
  const takesArgs =
    kind === "installer" || kind === "uki"
      ? request.secureBoot || rules.unifiedInstaller
      : kind !== "initramfs" && kind !== "kernel";
  const takesMeta = kind === "iso" || kind === "disk" || kind === "cmdline";
  const platformMatters =
    kind === "cmdline" ||
    kind === "uki" ||
    kind === "iso" ||
    kind === "disk" ||
    (kind === "installer" && (rules.sdBootForUefi || request.secureBoot));
  // The schematic's boot loader (image-factory EnhanceFromSchematic hands it to disk images always and to
  // ISOs, which take it from Talos 1.12; "none" is no choice).
  const chosen = schematic.customization.bootloader;
  const override =
    chosen !== undefined && (chosen as string) !== "none" && (kind === "disk" || rules.isoBootloaderOverride)
      ? chosen
      : undefined;
  const bootloader =
    kind === "iso" || kind === "disk"
      ? bootloaderFor(rules, { arch: request.arch, secureBoot: request.secureBoot, output: kind, override })
      : undefined;
  let disk: DiskImageProfile | undefined;
  if (kind === "disk") {
    if (request.disk === undefined) throw badRequest(`${request.filename}: a disk image request names no format`);
    // The schematic's sector size applies to disk images only (image-factory EnhanceFromSchematic, OutKindImage).
    disk = diskImageProfile(
      request.platform,
      request.disk,
      rules,
      bootloader as Bootloader,
      schematic.customization.diskImage?.sectorSize,
    );
  }
  return {
    kind,
    talosVersion: request.talosVersion,
    arch: request.arch,
    platform: platformMatters ? request.platform : "metal",
    secureBoot: request.secureBoot,
    ...(request.secureBoot && kind === "iso"
      ? {
          secureBootMedia: {
            enrollKeys: (schematic.customization.secureboot?.enrollKeys ?? "if-safe") as SecureBootEnroll,
            includeWellKnownCertificates: schematic.customization.secureboot?.includeWellKnownCertificates === true,
          },
        }
      : {}),
    ...(bootloader === undefined ? {} : { bootloader }),
    ...(disk === undefined ? {} : { disk }),
    filename: request.filename,
    schematic: {
      ...(usesExtensions
        ? {
            id,
            ...(rules.overlays ? { yaml: canonicalYaml(schematic) } : {}),
            author: sources.schematicAuthor ?? schematicExtensionAuthor(defaultExternalUrl),
            ...(embeddedConfig !== undefined ? { embeddedConfig } : {}),
          }
        : {}),
      extraKernelArgs: takesArgs ? [...(schematic.customization.extraKernelArgs ?? [])] : [],
      meta: takesMeta ? (schematic.customization.meta ?? []).map((m) => ({ ...m })) : [],
    },
    ...(takesOverlay && sources.overlay !== undefined
      ? {
          overlay: {
            name: overlay.name,
            image: sources.overlay.image,
            digest: checkDigest(sources.overlay.digest, `overlay ${sources.overlay.image}`),
            options: getOptionsInput(overlay.options),
          },
        }
      : {}),
    inputs: {
      ...(kind === "cmdline" ? {} : { imager: checkDigest(sources.imager, "imager image") }),
      ...(kind === "installer"
        ? { installerBase: checkDigest(sources.installerBase ?? "", "installer base image") }
        : {}),
      extensions: usesExtensions
        ? sources.extensions.map((e) => ({ name: e.name, digest: checkDigest(e.digest, `extension ${e.name}`) }))
        : [],
    },
  };
}

/** JSON with object keys sorted at every level: one text per value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The cache key: hex sha256 of the salt and the canonical JSON of the profile without its file name. */
export function profileHash(profile: BuildProfile): string {
  const { filename: _filename, ...content } = profile;
  return createHash("sha256").update(`${profileHashSalt}\n`).update(canonicalJson(content)).digest("hex");
}
