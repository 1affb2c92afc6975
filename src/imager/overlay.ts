// Running an overlay as upstream's imager does (talos pkg/imager/imager.go handleOverlay and buildCmdline,
// pkg/imager/out.go, cmd/installer/pkg/install/install.go):
//   - its installer (`installers/<overlay name>` of the image for the build host's architecture) answers
//     `get-options`: kernel args (set on the command line after the platform's) and a partition offset
//     (LBAs skipped after the GPT header);
//   - the profile `profiles/<overlay name>.yaml` of the asset architecture's image adds its
//     customization.extraKernelArgs before the schematic's (image-factory MergeOverlayProfile);
//   - disk images: after the partitions are written, its installer's `install` gets the disk image as
//     installDisk, a mount prefix and the image's artifacts; what it writes under <prefix>/boot/EFI is the
//     EFI partition's (mounted there upstream). Here nothing is mounted: the prefix is an empty staging
//     directory, copied into the EFI partition with mtools afterwards.
// The installer is a program from an untrusted image: it runs confined (src/tools/sandbox.ts) with the
// image's own tree as its root — a copy, made without setuid bits and special files — and a time limit.

import { chmod, chown, copyFile, link, lstat, mkdir, readdir, readFile, readlink, rm, symlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { AppError } from "../errors.ts";
import { resolveInTree } from "../oci/tree-path.ts";
import { parseBoundedYaml } from "../talos/extension.ts";
import { getOptionsInput, installInput, type OverlayOptions, parseOverlayOptions } from "../talos/overlay.ts";
import { mcopy, mdirRecursive, mmd } from "../tools/mtools.ts";
import { runSandboxed, sandboxGid, sandboxUid } from "../tools/sandbox.ts";
import type { LocalOverlay } from "./inputs.ts";

/** Default time limit of one installer run. */
export const defaultOverlayTimeoutMs = 5 * 60 * 1000;

/** Where, inside the sandbox root, the disk image and the mount prefix are. */
const sandboxDisk = "/.boot-assets/disk.raw";
const sandboxPrefix = "/.boot-assets/image";
/** The EFI partition's mount point under the prefix (pkg/machinery/constants EFIMountPoint). */
const efiMountPoint = "boot/EFI";
/** Files copied from the staging directory at most. */
const maxStagedFiles = 10_000;

function overlayError(overlay: LocalOverlay, message: string, cause?: unknown): AppError {
  return new AppError("Upstream", `overlay ${overlay.image}@${overlay.digest}: ${message}`, {
    code: "OVERLAY_FAILED",
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Copies the tree: directories, regular files (0755 or 0644, no setuid) and symlinks; nothing else. */
async function copyTree(source: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true, mode: 0o755 });
  await chmod(target, 0o755);
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = join(source, entry.name);
    const to = join(target, entry.name);
    if (entry.isDirectory()) await copyTree(from, to);
    else if (entry.isSymbolicLink()) await symlink(await readlink(from), to);
    else if (entry.isFile()) {
      await copyFile(from, to);
      // Readable by the unprivileged user it runs as; executable when its owner could run it (upstream runs
      // it as root, who can read and run what only root may).
      await chmod(to, (await lstat(from)).mode & 0o100 ? 0o755 : 0o644);
    }
  }
}

/** The sandbox root for the overlay's installer: a copy of its image's tree. Made once per build. */
export async function prepareOverlayRoot(overlay: LocalOverlay, root: string): Promise<string> {
  await copyTree(overlay.dir, root);
  const program = posix.join("/installers", overlay.name);
  const onDisk = await resolveInTree(root, program);
  const info = await lstat(onDisk).catch(() => undefined);
  if (info === undefined || !info.isFile())
    throw overlayError(overlay, `the image has no installer ${program} (a regular file)`);
  return root;
}

/** `get-options`, with the schematic's options: the overlay's kernel args and partition offset. */
export async function overlayGetOptions(
  overlay: LocalOverlay,
  root: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<OverlayOptions> {
  const { stdout } = await runSandboxed(root, posix.join("/installers", overlay.name), ["get-options"], {
    what: `overlay installer ${overlay.name} (${overlay.image}) get-options`,
    stdin: getOptionsInput(overlay.options),
    timeoutMs: options.timeoutMs,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  return parseOverlayOptions(stdout.toString("utf8"), overlay.image);
}

/** customization.extraKernelArgs of `profiles/<name>.yaml` in the asset architecture's image. */
export async function overlayProfileKernelArgs(overlay: LocalOverlay): Promise<string[]> {
  const path = await resolveInTree(overlay.targetDir, posix.join("/profiles", `${overlay.name}.yaml`));
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (err) {
    // image-factory MergeOverlayProfile fails the build without it ("error reading overlay profile").
    throw overlayError(overlay, `the image has no profile profiles/${overlay.name}.yaml`, err);
  }
  let profile: unknown;
  try {
    profile = parseBoundedYaml(text, `profiles/${overlay.name}.yaml`, 256 * 1024);
  } catch (err) {
    throw overlayError(overlay, (err as Error).message, err);
  }
  const customization = (profile as { customization?: { extraKernelArgs?: unknown } } | null)?.customization;
  const args = customization?.extraKernelArgs ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string"))
    throw overlayError(
      overlay,
      `profiles/${overlay.name}.yaml: customization.extraKernelArgs is not a list of strings`,
    );
  return args as string[];
}

/** Every regular file under `dir`, as paths relative to it; directories too (for mmd). */
async function stagedFiles(dir: string, prefix = ""): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      dirs.push(rel);
      const inner = await stagedFiles(join(dir, entry.name), rel);
      files.push(...inner.files);
      dirs.push(...inner.dirs);
    } else if (entry.isFile()) files.push(rel);
    else throw new Error(`${rel} is neither a regular file nor a directory`);
    if (files.length > maxStagedFiles) throw new Error(`more than ${maxStagedFiles} files`);
  }
  return { files, dirs };
}

/**
 * `install`: the installer writes into the disk image (e.g. U-Boot at its offset) and under the mount
 * prefix; what lands under boot/EFI is copied into the EFI partition (at `efiOffset` in the image).
 * Returns the paths added to the EFI partition.
 */
export async function overlayInstall(
  overlay: LocalOverlay,
  root: string,
  disk: { path: string; efiOffset: number },
  options: { timeoutMs: number; signal?: AbortSignal; mtime?: number },
): Promise<string[]> {
  const inRoot = (path: string) => join(root, ...path.split("/").filter(Boolean));
  const prefix = inRoot(sandboxPrefix);
  await mkdir(join(prefix, efiMountPoint), { recursive: true });
  for (const dir of [inRoot("/.boot-assets"), prefix, join(prefix, "boot"), join(prefix, efiMountPoint)]) {
    await chmod(dir, 0o755);
    await chown(dir, sandboxUid, sandboxGid);
  }
  const diskLink = inRoot(sandboxDisk);
  await link(disk.path, diskLink);
  const owner = await lstat(disk.path);
  await chown(disk.path, sandboxUid, sandboxGid);
  try {
    await runSandboxed(root, posix.join("/installers", overlay.name), ["install"], {
      what: `overlay installer ${overlay.name} (${overlay.image}) install`,
      stdin: installInput({
        installDisk: sandboxDisk,
        mountPrefix: sandboxPrefix,
        artifactsPath: "/artifacts",
        options: overlay.options,
      }),
      timeoutMs: options.timeoutMs,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } finally {
    await chown(disk.path, owner.uid, owner.gid);
    await rm(diskLink, { force: true });
  }
  const efiStaging = join(prefix, efiMountPoint);
  let staged: { files: string[]; dirs: string[] };
  try {
    // Only the EFI partition is filled from the staging directory (an sd-boot disk's only FAT partition;
    // GRUB's BOOT is XFS, made before): files elsewhere would be lost, so they are an error.
    const elsewhere = (await stagedFiles(prefix)).files.filter((f) => !f.startsWith(`${efiMountPoint}/`));
    if (elsewhere.length > 0)
      throw new Error(
        `files outside ${efiMountPoint} (${elsewhere.slice(0, 3).join(", ")}), which this imager cannot place`,
      );
    staged = await stagedFiles(efiStaging);
  } catch (err) {
    throw overlayError(overlay, `its installer left ${(err as Error).message}`, err);
  }
  const mtools = {
    offset: disk.efiOffset,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    ...(options.mtime !== undefined ? { mtime: options.mtime } : {}),
  };
  const existing = new Set(
    (await mdirRecursive(disk.path, mtools)).map((p) =>
      p
        .replace(/^::/, "")
        .replace(/^\/+|\/+$/g, "")
        .toLowerCase(),
    ),
  );
  const newDirs = staged.dirs.filter((d) => !existing.has(d.toLowerCase()));
  if (newDirs.length > 0) await mmd(disk.path, newDirs, mtools);
  for (const file of staged.files.sort()) await mcopy(disk.path, join(efiStaging, file), file, mtools);
  return staged.files;
}
