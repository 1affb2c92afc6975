// The asset names of `/image/:schematic/:version/:path` (and of `boot-assets build`), parsed into a typed
// request. Grammar (image-factory's profile.ParseFromPath, made strict):
//   kernel-<arch>
//   cmdline-<platform>-<arch>[-secureboot]
//   initramfs-<arch>.xz
//   <platform>-<arch>[-secureboot].iso
//   <platform>-<arch>[-secureboot]-uki.efi
//   installer-<arch>[-secureboot].tar | <platform>-installer-<arch>[-secureboot].tar
//   <platform>-<arch>[-secureboot].<raw|qcow2|vhd|ova>[.gz|.xz|.zst|.tar.gz]
// arch is amd64 or arm64 (PXE firmware says x86_64 or i386 for amd64); platforms come from the platform
// table (so `digital-ocean`, with its dash, parses). Unlike upstream, an unknown platform and a malformed
// version are BadRequest (upstream accepts any platform and answers 500 for a bad version).

import { badRequest } from "../errors.ts";
import type { OutputKind } from "./cmdline.ts";
import { type Arch, isPlatformName, platformByName, platforms } from "./platforms.ts";
import { parseRequestedVersion, versionTag } from "./version.ts";

export type AssetKind = OutputKind;
export type DiskFormat = "raw" | "qcow2" | "vhd" | "ova";
export type DiskCompression = "none" | "gz" | "xz" | "zst" | "tar.gz";

export interface AssetPath {
  kind: AssetKind;
  arch: Arch;
  /** The platform; `metal` for kernel, initramfs and the plain installer (it does not matter for them). */
  platform: string;
  secureBoot: boolean;
  /** Only for disk images. */
  disk?: { format: DiskFormat; compression: DiskCompression };
  /** The path as asked for: the default download name. */
  filename: string;
  mimeType: string;
}

export interface AssetRequest extends AssetPath {
  schematicId: string;
  /** The Talos version tag, always with its `v` (e.g. `v1.8.2`). */
  talosVersion: string;
}

const maxPathLength = 200;
const secureBootSuffix = "-secureboot";
const diskFormats: readonly DiskFormat[] = ["raw", "qcow2", "vhd", "ova"];
// Longest first, so `.tar.gz` is not read as `.gz`.
const compressions: readonly Exclude<DiskCompression, "none">[] = ["tar.gz", "gz", "xz", "zst"];
// Every compression goes with every format, as upstream's ParseFromPath takes them (image-factory
// internal/profile/profile.go: the compression suffix is cut first, then the disk format; e.g.
// `aws-amd64-secureboot.qcow2.tar.gz` and `vmware-amd64.ova.xz` parse, and Talos' imager tars whatever image it
// made as `disk.raw`, pkg/imager/post.go postProcessTar).

const shown = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** Whether `id` has the form of a schematic ID: 64 lowercase hex digits (the SHA-256 of its canonical YAML). */
export function isSchematicId(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id);
}

/** A schematic ID, or BadRequest naming what is wrong with it. */
export function parseSchematicId(id: string): string {
  if (!isSchematicId(id))
    throw badRequest(`invalid schematic ID ${shown(id)}: expected 64 lowercase hex digits`, "SCHEMATIC_ID_INVALID");
  return id;
}

/** A Talos version given with or without `v`, as the `v`-prefixed tag; BadRequest naming it when not semver. */
export function parseVersionTag(version: string): string {
  return versionTag(parseRequestedVersion(version));
}

function parseArch(text: string, path: string): Arch {
  if (text === "amd64" || text === "arm64") return text;
  if (text === "x86_64" || text === "i386") return "amd64";
  throw badRequest(`invalid architecture ${shown(text)} in ${shown(path)}: expected amd64 or arm64`, "ARCH_INVALID");
}

/** `<platform>-<arch>[-secureboot]`, the platform matched against the table (longest name first). */
function parsePlatformArch(text: string, path: string): { platform: string; arch: Arch; secureBoot: boolean } {
  const secureBoot = text.endsWith(secureBootSuffix);
  const rest = secureBoot ? text.slice(0, -secureBootSuffix.length) : text;
  const platform = [...platforms]
    .map((p) => p.name)
    .sort((a, b) => b.length - a.length)
    .find((name) => rest.startsWith(`${name}-`));
  if (platform === undefined) {
    const dash = rest.lastIndexOf("-");
    if (dash <= 0) throw badRequest(`invalid asset path ${shown(path)}: expected <platform>-<arch>`, "PATH_INVALID");
    platformByName(rest.slice(0, dash)); // throws: unknown platform, naming it
  }
  const name = platform as string;
  return { platform: name, arch: parseArch(rest.slice(name.length + 1), path), secureBoot };
}

export function mimeTypeFor(filename: string): string {
  if (filename.endsWith(".efi")) return "application/efi";
  if (filename.endsWith(".iso")) return "application/x-iso9660-image";
  if (filename.endsWith(".xz")) return "application/x-xz";
  if (filename.endsWith(".gz")) return "application/gzip";
  if (filename.endsWith(".qcow2")) return "application/x-qemu-disk";
  return "application/octet-stream";
}

function cutPrefix(s: string, prefix: string): string | undefined {
  return s.startsWith(prefix) ? s.slice(prefix.length) : undefined;
}
function cutSuffix(s: string, suffix: string): string | undefined {
  return s.endsWith(suffix) ? s.slice(0, -suffix.length) : undefined;
}

type Parsed = Omit<AssetPath, "filename" | "mimeType">;

function parseKind(path: string): Parsed {
  let rest: string | undefined;
  rest = cutPrefix(path, "kernel-");
  if (rest !== undefined) return { kind: "kernel", platform: "metal", arch: parseArch(rest, path), secureBoot: false };
  rest = cutPrefix(path, "cmdline-");
  if (rest !== undefined) return { kind: "cmdline", ...parsePlatformArch(rest, path) };
  rest = cutPrefix(path, "initramfs-");
  if (rest !== undefined) {
    const arch = cutSuffix(rest, ".xz");
    if (arch === undefined)
      throw badRequest(`invalid asset path ${shown(path)}: the initramfs is initramfs-<arch>.xz`, "PATH_INVALID");
    return { kind: "initramfs", platform: "metal", arch: parseArch(arch, path), secureBoot: false };
  }
  rest = cutSuffix(path, ".iso");
  if (rest !== undefined) return { kind: "iso", ...parsePlatformArch(rest, path) };
  rest = cutSuffix(path, "-uki.efi");
  if (rest !== undefined) return { kind: "uki", ...parsePlatformArch(rest, path) };
  rest = cutSuffix(path, ".tar");
  if (rest !== undefined) {
    const plain = cutPrefix(rest, "installer-");
    if (plain !== undefined) {
      const secureBoot = plain.endsWith(secureBootSuffix);
      const arch = parseArch(secureBoot ? plain.slice(0, -secureBootSuffix.length) : plain, path);
      return { kind: "installer", platform: "metal", arch, secureBoot };
    }
    const at = rest.indexOf("-installer-");
    if (at > 0) {
      const platform = rest.slice(0, at);
      platformByName(platform);
      return { kind: "installer", ...parsePlatformArch(`${platform}-${rest.slice(at + "-installer-".length)}`, path) };
    }
  }
  return parseDisk(path);
}

function parseDisk(path: string): Parsed {
  let rest = path;
  let compression: DiskCompression = "none";
  for (const c of compressions) {
    const cut = cutSuffix(rest, `.${c}`);
    if (cut !== undefined) {
      rest = cut;
      compression = c;
      break;
    }
  }
  const format = diskFormats.find((f) => rest.endsWith(`.${f}`));
  if (format === undefined)
    throw badRequest(
      `invalid asset path ${shown(path)}: not a kernel, initramfs, cmdline, ISO, UKI, installer or disk image name`,
      "PATH_INVALID",
    );
  const platformArch = parsePlatformArch(rest.slice(0, -(format.length + 1)), path);
  return { kind: "disk", ...platformArch, disk: { format, compression } };
}

/** Parses the asset name (the `:path` of `/image/...`). */
export function parseAssetPath(path: string): AssetPath {
  if (path.length === 0 || path.length > maxPathLength || !/^[A-Za-z0-9._-]+$/.test(path))
    throw badRequest(`invalid asset path ${shown(path)}`, "PATH_INVALID");
  const parsed = parseKind(path);
  if (!isPlatformName(parsed.platform)) platformByName(parsed.platform);
  return { ...parsed, filename: path, mimeType: mimeTypeFor(path) };
}

/** Parses `/image/:schematic/:version/:path` parameters; every malformed part is a BadRequest naming it. */
export function parseAssetRequest(schematicId: string, version: string, path: string): AssetRequest {
  return {
    schematicId: parseSchematicId(schematicId),
    talosVersion: parseVersionTag(version),
    ...parseAssetPath(path),
  };
}
