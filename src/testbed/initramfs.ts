// The test bed's base boot assets: `vmlinuz` from Debian's kernel package and `initramfs.xz` laid out as
// upstream's (docs/formats.md; siderolabs/talos pkg/machinery/imager/quirks): a compressed newc cpio (zstd from Talos 1.8, xz before; named .xz either
// way) holding `init` and `rootfs.sqsh`, the kernel's modules inside rootfs.sqsh under
// `usr/lib/modules/<kver>/` (`lib/modules` before 1.10). Plus what a busybox guest on Debian's kernel needs
// before it can mount anything: /bin/busybox, /dev/console and the few early modules, listed in load order
// in /etc/testbed/early-modules. The imager only appends to this file, so the extra entries are harmless.
//
// Deterministic: one timestamp (SOURCE_DATE_EPOCH, else 0) for every file, fixed modes, sorted archives, so
// the same .debs give the same bytes. Built once per input set under the cache, keyed by a hash of the
// inputs.

import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { AppError } from "../errors.ts";
import { type CpioEntry, cpioMtime } from "../formats/cpio.ts";
import { rulesFor } from "../talos/version-rules.ts";
import { writeCompressedCpio } from "../tools/compression.ts";
import { bootAssetsCacheDir } from "../tools/debian-packages.ts";
import { depmod, depmodTool } from "../tools/kmod.ts";
import { runToolText } from "../tools/run.ts";
import { mksquashfs } from "../tools/squashfs.ts";
import { sha256HexOfFile } from "../util/file-digest.ts";
import { fetchTestbedPackages, type TestbedArchPackages } from "./debian.ts";

/** What changes with the Talos version for the base initramfs (from the version rules table). */
export interface InitramfsLayout {
  /** Where kernel modules live in the rootfs: `lib/modules` before Talos 1.10, `usr/lib/modules` from 1.10. */
  modulesPath: "lib/modules" | "usr/lib/modules";
  /** initramfs and squashfs compression: zstd from Talos 1.8, xz before. */
  compression: "zstd" | "xz";
}

/** The layout the version rules table gives a Talos version (any tag; non-semver tags get the newest rules). */
export function layoutForTalosVersion(version: string): InitramfsLayout {
  const rules = rulesFor(version);
  return { modulesPath: rules.modulesPath, compression: rules.initramfsCompression };
}

/**
 * Loaded by the guest before anything can be mounted, with their dependencies (computed from modules.dep).
 * squashfs/loop/overlay mount the layers; virtio/ahci/scsi find disks and CDs; isofs/vfat read them;
 * efivarfs reads the Secure Boot state.
 */
export const earlyModules = [
  "loop",
  "squashfs",
  "overlay",
  "virtio_pci",
  "virtio_blk",
  "virtio_scsi",
  "ahci",
  "sd_mod",
  "sr_mod",
  "isofs",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "efivarfs",
] as const;

/** Module parameters for early modules. SCSI scans synchronously so disks exist when init looks. */
const earlyModuleParams: Record<string, string> = { scsi_mod: "scan=sync" };

/**
 * The rootfs carries the early modules plus these (and dependencies). Everything else in the kernel package,
 * e.g. `dummy`, is left out on purpose: test extensions bring it.
 */
export const rootfsExtraModules = ["virtio_net", "virtio_console", "xfs"] as const;

export interface BaseBootAssets {
  /** Directory holding both files (in the cache: read only). */
  dir: string;
  vmlinuz: string;
  vmlinuzSha256: string;
  initramfs: string;
  initramfsSha256: string;
  /** `uname -r` of the kernel, e.g. "6.1.0-56-amd64". */
  kernelRelease: string;
  /** The Debian kernel package and version it came from. */
  kernelPackage: string;
  kernelPackageVersion: string;
  layout: InitramfsLayout;
  /** Module names (as in /proc/modules) in rootfs.sqsh. */
  rootfsModules: string[];
  /** Module files (relative to the module tree) the guest insmods, in order. */
  earlyModuleFiles: string[];
  /** The timestamp every file carries. */
  mtime: number;
}

export interface BuildBaseOptions {
  layout: InitramfsLayout;
  /** Default: bootAssetsCacheDir(). */
  cacheDir?: string;
  /** Already fetched packages, of either architecture (else amd64's are fetched here). */
  packages?: TestbedArchPackages;
  /** Timestamp of every file; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  /** Build even when the cache has a result (the result is the same; for determinism tests). */
  force?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Bumped whenever the build below changes what it produces, so stale cache entries are not reused. */
const builderRevision = 1;

/** The guest's init script. Read from next to this module, or from the source tree when running from dist/. */
export async function readGuestInit(): Promise<string> {
  const candidates = [
    join(import.meta.dirname, "guest", "init.sh"),
    join(import.meta.dirname, "..", "..", "src", "testbed", "guest", "init.sh"),
  ];
  for (const path of candidates) if (existsSync(path)) return await readFile(path, "utf8");
  throw new AppError("Internal", `the test bed guest init script is missing (looked at ${candidates.join(", ")})`);
}

/** Builds (or finds in the cache) vmlinuz + initramfs.xz for this layout. */
export async function buildBaseBootAssets(options: BuildBaseOptions): Promise<BaseBootAssets> {
  const cacheDir = options.cacheDir ?? bootAssetsCacheDir();
  const log = options.log ?? (() => {});
  const packages = options.packages ?? (await fetchTestbedPackages({ cacheDir, log, signal: options.signal }));
  const mtime = cpioMtime(options.mtime);
  const init = await readGuestInit();
  const key = createHash("sha256")
    .update(
      JSON.stringify({
        builderRevision,
        arch: packages.arch,
        layout: options.layout,
        mtime,
        kernel: packages.kernel.sha256,
        busybox: packages.busybox.sha256,
        init,
        earlyModules,
        rootfsExtraModules,
      }),
    )
    .digest("hex");
  const dir = join(cacheDir, "testbed", "base", key);
  const resultFile = join(dir, "build.json");
  if (!options.force && existsSync(resultFile)) return JSON.parse(await readFile(resultFile, "utf8")) as BaseBootAssets;

  log(`building base initramfs (${options.layout.modulesPath}, ${options.layout.compression})`);
  const work = join(cacheDir, "testbed", "work", randomUUID());
  await mkdir(work, { recursive: true });
  try {
    const out = join(work, "out");
    await mkdir(out);
    const built = await build(packages, options.layout, mtime, init, work, out, options.signal);
    // The files move into `dir` below: record their final paths.
    const result: BaseBootAssets = {
      ...built,
      dir,
      vmlinuz: join(dir, "vmlinuz"),
      initramfs: join(dir, "initramfs.xz"),
    };
    await writeFile(join(out, "build.json"), `${JSON.stringify(result, null, 2)}\n`);
    await mkdir(dirname(dir), { recursive: true });
    if (options.force) await rm(dir, { recursive: true, force: true });
    try {
      await rename(out, dir);
    } catch (err) {
      // A concurrent build of the same inputs got there first: its bytes are the same, keep them.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !existsSync(resultFile)) throw err;
    }
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function build(
  packages: TestbedArchPackages,
  layout: InitramfsLayout,
  mtime: number,
  init: string,
  work: string,
  out: string,
  signal?: AbortSignal,
): Promise<Omit<BaseBootAssets, "dir">> {
  const { release, modulesDir } = packages.kernel;
  const deps = await moduleDependencies(packages.kernel.root, release, signal);
  const early = loadOrder(earlyModules, deps);
  const rootfsModuleFiles = loadOrder([...earlyModules, ...rootfsExtraModules], deps);

  // rootfs.sqsh: busybox and the chosen part of the kernel's module tree, indexed by depmod.
  const rootfs = join(work, "rootfs");
  const usrMerged = layout.modulesPath === "usr/lib/modules";
  const moduleTree = join(rootfs, layout.modulesPath, release);
  for (const file of rootfsModuleFiles) {
    await mkdir(dirname(join(moduleTree, file)), { recursive: true });
    await copyFile(join(modulesDir, file), join(moduleTree, file));
  }
  for (const index of ["modules.order", "modules.builtin", "modules.builtin.modinfo"])
    if (existsSync(join(modulesDir, index))) await copyFile(join(modulesDir, index), join(moduleTree, index));
  await depmod({ basedir: usrMerged ? join(rootfs, "usr") : rootfs, kernelVersion: release, signal });
  await installBusybox(rootfs, packages.busybox, usrMerged, signal);
  for (const d of ["proc", "sys", "dev", "run", "tmp", "etc", "usr/local/share"])
    await mkdir(join(rootfs, d), { recursive: true });
  await normalizeModes(rootfs);
  const rootfsImage = join(work, "rootfs.sqsh");
  await mksquashfs(rootfs, rootfsImage, { compression: layout.compression, mtime, signal });

  // initramfs.xz: the upstream pair (init, rootfs.sqsh) plus the early-boot extras.
  const earlyList = early
    .map((file) => {
      const params = earlyModuleParams[moduleName(file)];
      return `early-modules/${file.split("/").pop()}${params === undefined ? "" : ` ${params}`}\n`;
    })
    .join("");
  const entries: CpioEntry[] = [
    { type: "file", path: "init", mode: 0o755, content: Buffer.from(init) },
    { type: "file", path: "rootfs.sqsh", mode: 0o644, sourcePath: rootfsImage, size: (await stat(rootfsImage)).size },
    {
      type: "file",
      path: "bin/busybox",
      mode: 0o755,
      sourcePath: packages.busybox.binary,
      size: (await stat(packages.busybox.binary)).size,
    },
    { type: "directory", path: "dev", mode: 0o755 },
    // The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
    { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    { type: "file", path: "etc/testbed/early-modules", mode: 0o644, content: Buffer.from(earlyList) },
  ];
  for (const file of early) {
    const source = join(modulesDir, file);
    entries.push({
      type: "file",
      path: `early-modules/${file.split("/").pop()}`,
      mode: 0o644,
      sourcePath: source,
      size: (await stat(source)).size,
    });
  }
  const initramfs = join(out, "initramfs.xz");
  await writeCompressedCpio(entries, initramfs, {
    compression: layout.compression,
    // Speed over size: the rootfs inside is compressed already. zstd through zlib (not the multithreaded CLI)
    // and xz single-threaded give the same bytes everywhere.
    level: layout.compression === "zstd" ? 3 : 6,
    mtime,
    signal,
  });
  const vmlinuz = join(out, "vmlinuz");
  await copyFile(packages.kernel.vmlinuz, vmlinuz);
  await chmod(vmlinuz, 0o644);
  return {
    vmlinuz,
    vmlinuzSha256: await sha256HexOfFile(vmlinuz),
    initramfs,
    initramfsSha256: await sha256HexOfFile(initramfs),
    kernelRelease: release,
    kernelPackage: packages.kernel.name,
    kernelPackageVersion: packages.kernel.version,
    layout,
    rootfsModules: rootfsModuleFiles.map(moduleName).sort(),
    earlyModuleFiles: early,
    mtime,
  };
}

/** "kernel/fs/fat/vfat.ko" → "vfat"; dashes become underscores as in /proc/modules. */
export function moduleName(file: string): string {
  return (file.split("/").pop() ?? file).replace(/\.ko(\.\w+)?$/, "").replaceAll("-", "_");
}

/** modules.dep of the package's whole module tree (depmod -n: printed, nothing written). */
async function moduleDependencies(
  kernelRoot: string,
  release: string,
  signal?: AbortSignal,
): Promise<Map<string, string[]>> {
  const text = await runToolText(depmodTool, ["-n", "-b", kernelRoot, release], {
    signal,
    maxStdoutBytes: 64 * 1024 * 1024,
  });
  return parseModulesDep(text);
}

/** Parses modules.dep lines ("kernel/a.ko: kernel/b.ko kernel/c.ko") up to the first comment (depmod -n's next file). */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) break;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const rest = line.slice(colon + 1).trim();
    deps.set(line.slice(0, colon), rest === "" ? [] : rest.split(/\s+/));
  }
  return deps;
}

/**
 * The module files for `names` and everything they depend on, each after its dependencies: the order in
 * which insmod (which resolves nothing itself) succeeds.
 */
export function loadOrder(names: readonly string[], deps: Map<string, string[]>): string[] {
  const byName = new Map<string, string>();
  for (const file of deps.keys()) byName.set(moduleName(file), file);
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (file: string) => {
    if (ordered.includes(file)) return;
    if (visiting.has(file)) throw new AppError("Internal", `modules.dep has a dependency cycle through ${file}`);
    visiting.add(file);
    // modules.dep lists a module's whole dependency closure, nearest first; visiting each covers the order.
    for (const dep of deps.get(file) ?? []) visit(dep);
    visiting.delete(file);
    ordered.push(file);
  };
  for (const name of names) {
    const file = byName.get(name);
    if (file === undefined) throw new AppError("Internal", `kernel module ${name} is not in the kernel package`);
    visit(file);
  }
  return ordered;
}

/**
 * busybox plus a symlink per applet; with /usr merged, bin, sbin and lib are symlinks into usr as in Talos ≥ 1.10.
 * The applets are listed by a busybox this machine runs (`runnable`: the same version's, for another architecture).
 */
async function installBusybox(
  rootfs: string,
  busybox: { binary: string; runnable: string },
  usrMerged: boolean,
  signal?: AbortSignal,
): Promise<void> {
  const { binary, runnable } = busybox;
  const applets = (
    await runToolText({ command: runnable, debianPackage: "busybox-static" }, ["--list-full"], { signal })
  )
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => /^[\w./[-]+$/.test(line) && !line.endsWith("/") && !line.includes(".."));
  const binDir = usrMerged ? "usr/bin" : "bin";
  await mkdir(join(rootfs, binDir), { recursive: true });
  await copyFile(binary, join(rootfs, binDir, "busybox"));
  if (usrMerged) {
    await symlink("usr/bin", join(rootfs, "bin"));
    await symlink("usr/bin", join(rootfs, "sbin"));
    await symlink("usr/lib", join(rootfs, "lib"));
  }
  for (const applet of applets) {
    const name = applet.split("/").pop() as string;
    if (name === "busybox") continue;
    const dir = usrMerged ? "usr/bin" : dirname(applet);
    const path = join(rootfs, dir, name);
    if (existsSync(path)) continue;
    await mkdir(join(rootfs, dir), { recursive: true });
    await symlink(usrMerged ? "busybox" : relativeBusybox(dir), path);
  }
}

/** The busybox path as seen from an applet directory of the classic layout (bin/busybox). */
function relativeBusybox(dir: string): string {
  const depth = dir.split("/").filter(Boolean).length;
  return `${"../".repeat(depth)}bin/busybox`;
}

/** Fixed permissions regardless of the umask: directories 0755, executables 0755, other files 0644. */
async function normalizeModes(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const info = await lstat(path);
    if (info.isSymbolicLink()) continue;
    if (info.isDirectory()) {
      await chmod(path, 0o755);
      await normalizeModes(path);
    } else await chmod(path, info.mode & 0o111 ? 0o755 : 0o644);
  }
}
