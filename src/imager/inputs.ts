// The local inputs of a build: everything already pulled (by digest) and flattened on disk. The imager never
// reaches a registry itself; whoever resolves sources (factory, `boot-assets build`) hands these over.
//
// Flattened trees come from hostile images, so files in them are looked up through resolveInTree (links are
// followed inside the tree only) and must be regular files.

import { lstat } from "node:fs/promises";
import { badRequest } from "../errors.ts";
import type { DockerArchiveLayer } from "../oci/docker-archive.ts";
import { resolveInTree } from "../oci/tree-path.ts";
import type { Arch } from "../talos/platforms.ts";
import type { GoValue } from "../talos/schematic.ts";

/** One extension image, flattened: the directory holds `manifest.yaml` and `rootfs/`. */
export interface LocalExtension {
  /** Repository path (e.g. `siderolabs/zfs`), used in messages and matched against the profile. */
  name: string;
  dir: string;
  /** Manifest digest of the image it was pulled by. */
  digest: string;
  /**
   * SELinux labels its tar gave (PAX `SCHILY.xattr.security.selinux`), by path relative to `dir`
   * ("rootfs/usr/bin/x"; flatten.ts). The flattened files carry no xattrs. Undefined: none known.
   */
  selinuxLabels?: ReadonlyMap<string, string>;
}

/** The base installer image (`installer-base` ≥ 1.10, `installer` before): its blobs and config. */
export interface InstallerBaseInput {
  /** The image config JSON as stored (its rootfs.diff_ids describe `layers`). */
  config: Uint8Array;
  /** Layer blobs, lowest first, as files. */
  layers: DockerArchiveLayer[];
}

/** The schematic's overlay, flattened (src/imager/overlay.ts). */
export interface LocalOverlay {
  /** The overlay's name (the schematic's `overlay.name`, a catalog entry): its installer and profile. */
  name: string;
  /** Repository path of its image, for messages (`siderolabs/sbc-raspberrypi`). */
  image: string;
  /** Manifest (index) digest it was pulled by. */
  digest: string;
  /** The schematic's `overlay.options`. */
  options?: Array<[string, GoValue]>;
  /** The image for the build host's architecture, flattened: its installer runs here. */
  dir: string;
  /** The image for the asset's architecture, flattened: its profile, and the installer image's layer. */
  targetDir: string;
}

export interface ImagerInputs {
  /** The flattened imager image: `usr/install/<arch>/{vmlinuz,initramfs.xz,systemd-boot.efi,systemd-stub.efi}`. */
  imagerDir: string;
  /** Only for installer outputs. */
  installerBase?: InstallerBaseInput;
  /** The schematic's extensions in the schematic's order (without the virtual `schematic` one). */
  extensions: LocalExtension[];
  /** The schematic's overlay, for the outputs it changes (uki, installer, iso, disk). */
  overlay?: LocalOverlay;
}

export type ImagerAsset = "vmlinuz" | "initramfs.xz" | "systemd-boot.efi" | "systemd-stub.efi";

/** The path on disk of one of the imager's boot assets; NotFound-like BadRequest when it is missing. */
export async function imagerAsset(inputs: ImagerInputs, arch: Arch, asset: ImagerAsset): Promise<string> {
  const inImage = `usr/install/${arch}/${asset}`;
  const path = await resolveInTree(inputs.imagerDir, inImage);
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined || !info.isFile())
    throw badRequest(`the imager image has no regular file /${inImage}`, "IMAGER_ASSET_MISSING");
  return path;
}
