// The Debian packages the test bed is built from, fetched WITHOUT installing them: `apt-get download` into a
// package store (docs/caches.md), then `dpkg-deb -x` into a directory named by the .deb's sha256, so a second run only hashes files.
//
// The kernel is resolved at build time: `linux-image-amd64` depends on the current
// `linux-image-6.1.0-NN-amd64`, and old ones leave the mirror, so no version is ever written down here.

import { randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AppError, isAppError, upstream } from "../errors.ts";
import {
  type AptConfig,
  type AptSource,
  aptDownload,
  aptShow,
  aptUpdate,
  privateAptConfig,
  resolveDependency,
} from "../tools/apt.ts";
import { dpkgDebExtract } from "../tools/dpkg.ts";
import { sha256HexOfFile } from "../util/file-digest.ts";

/** `${XDG_CACHE_HOME:-~/.cache}/boot-assets`: root of the source, package and test bed stores (docs/caches.md). */
export function bootAssetsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== "" ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "boot-assets");
}

export interface DebianPackage {
  /** Binary package name, e.g. "linux-image-6.1.0-56-amd64". */
  name: string;
  /** Debian version, e.g. "6.1.192-2". */
  version: string;
  debPath: string;
  /** sha256 of the .deb, hex. */
  sha256: string;
  /** Where the .deb's files are extracted (read only: shared between runs). */
  root: string;
}

export interface TestbedPackages {
  kernel: DebianPackage & {
    /** `uname -r` of this kernel, e.g. "6.1.0-56-amd64". */
    release: string;
    /** Path of the kernel image inside `root`. */
    vmlinuz: string;
    /** The kernel's module tree inside `root` (`lib/modules/<release>`), without modules.dep (depmod runs at install). */
    modulesDir: string;
  };
  /** busybox-static: one static binary, the guest's shell and tools. */
  busybox: DebianPackage & { binary: string };
  /** systemd-boot-efi: the boot manager and the UKI stub. */
  systemdBoot: DebianPackage & {
    /** `systemd-bootx64.efi`, upstream's `systemd-boot.efi`. */
    bootEfi: string;
    /** `linuxx64.efi.stub`, upstream's `systemd-stub.efi`. */
    stubEfi: string;
  };
  /**
   * systemd-boot-efi from Debian's next release (trixie, systemd ≥ 257), fetched with an apt configuration of
   * the project's own (`<cacheDir>/apt/trixie`): its systemd-boot and stub understand multi-profile UKIs
   * (`.profile` sections), as those real Talos imagers ship from 1.10 do. Which test bed versions get it is
   * the version rules' (ukiProfiles; src/testbed/release.ts testbedSystemdBoot).
   */
  systemdBootProfiles: DebianPackage & { bootEfi: string; stubEfi: string };
}

/** Debian's next release, for packages newer than the machine's (Debian 12) has. */
export const trixieSource: AptSource = {
  uri: "http://deb.debian.org/debian",
  suite: "trixie",
  components: ["main"],
  signedBy: "/usr/share/keyrings/debian-archive-keyring.gpg",
};

export interface FetchOptions {
  /** Default: bootAssetsCacheDir(). */
  cacheDir?: string;
  /** Progress lines (what is downloaded or extracted). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Resolves, downloads (when not cached) and extracts the test bed's packages. Host-side tools (mksquashfs,
 * depmod) are not fetched: they run from the host's squashfs-tools and kmod packages.
 */
export async function fetchTestbedPackages(options: FetchOptions = {}): Promise<TestbedPackages> {
  const cacheDir = options.cacheDir ?? bootAssetsCacheDir();
  const log = options.log ?? (() => {});
  const kernelName = await resolveKernelPackage(options);
  const trixie = await privateAptConfig(join(cacheDir, "apt", trixieSource.suite), trixieSource);
  const [kernel, busybox, systemdBoot, systemdBootProfiles] = await Promise.all([
    fetchPackage(kernelName, cacheDir, log, options.signal),
    fetchPackage("busybox-static", cacheDir, log, options.signal),
    fetchPackage("systemd-boot-efi", cacheDir, log, options.signal),
    fetchPackage("systemd-boot-efi", cacheDir, log, options.signal, trixie),
  ]);
  const release = kernelName.replace(/^linux-image-/, "");
  const vmlinuz = join(kernel.root, "boot", `vmlinuz-${release}`);
  const modulesDir = join(kernel.root, "lib", "modules", release);
  await mustExist(vmlinuz, kernelName);
  await mustExist(modulesDir, kernelName);
  const binary = join(busybox.root, "bin", "busybox");
  await mustExist(binary, "busybox-static");
  return {
    kernel: { ...kernel, release, vmlinuz, modulesDir },
    busybox: { ...busybox, binary },
    systemdBoot: { ...systemdBoot, ...(await systemdBootFiles(systemdBoot)) },
    systemdBootProfiles: { ...systemdBootProfiles, ...(await systemdBootFiles(systemdBootProfiles)) },
  };
}

async function systemdBootFiles(pkg: DebianPackage): Promise<{ bootEfi: string; stubEfi: string }> {
  const efiDir = join(pkg.root, "usr", "lib", "systemd", "boot", "efi");
  const bootEfi = join(efiDir, "systemd-bootx64.efi");
  const stubEfi = join(efiDir, "linuxx64.efi.stub");
  await mustExist(bootEfi, `${pkg.name} ${pkg.version}`);
  await mustExist(stubEfi, `${pkg.name} ${pkg.version}`);
  return { bootEfi, stubEfi };
}

async function mustExist(path: string, packageName: string): Promise<void> {
  try {
    await stat(path);
  } catch {
    throw new AppError("Internal", `package ${packageName} does not contain ${path}`);
  }
}

/**
 * `linux-image-amd64` → the versioned kernel package it depends on. Runs `apt-get update` once when the
 * package lists don't know it (a fresh machine).
 */
export async function resolveKernelPackage(
  options: { signal?: AbortSignal; log?: (line: string) => void } = {},
): Promise<string> {
  const resolve = () => resolveDependency("linux-image-amd64", kernelPackagePattern, { signal: options.signal });
  return await resolve().catch(async (err: unknown) => {
    if (!isAppError(err, "NotFound")) throw err;
    options.log?.("apt-get update (linux-image-amd64 is not in the package lists)");
    await aptUpdate({ signal: options.signal });
    return await resolve();
  });
}

const kernelPackagePattern = /^linux-image-\d[\w.+-]*-amd64$/;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function fetchPackage(
  name: string,
  cacheDir: string,
  log: (line: string) => void,
  signal?: AbortSignal,
  config?: AptConfig,
): Promise<DebianPackage> {
  const apt = { signal, ...(config === undefined ? {} : { config }) };
  const info = await aptShow(name, apt).catch(async (err: unknown) => {
    if (!isAppError(err, "NotFound")) throw err;
    log(`apt-get update (${name} is not in the package lists${config === undefined ? "" : " of its configuration"})`);
    await aptUpdate(apt);
    return await aptShow(name, apt);
  });
  if (!/^[0-9a-f]{64}$/.test(info.sha256)) throw upstream(`apt lists no SHA256 for ${name}`);
  const debDir = join(cacheDir, "debs");
  await mkdir(debDir, { recursive: true });
  const debPath = join(debDir, `${info.package}_${info.version.replace(/:/g, "%3a")}_${info.architecture}.deb`);
  if (!(await exists(debPath)) || (await sha256HexOfFile(debPath)) !== info.sha256) {
    log(`apt-get download ${name}`);
    await download(name, debPath, info.sha256, apt);
  }
  const extractedDir = join(cacheDir, "debs-extracted");
  const root = join(extractedDir, info.sha256);
  if (!(await exists(root))) {
    log(`dpkg-deb -x ${basename(debPath)}`);
    await mkdir(extractedDir, { recursive: true });
    const temp = `${root}.${randomUUID()}.part`;
    try {
      await dpkgDebExtract(debPath, temp, { signal });
      await rename(temp, root);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      if (!(await exists(root))) throw err; // else a concurrent run extracted it first
    }
  }
  return { name, version: info.version, debPath, sha256: info.sha256, root };
}

/** `apt-get download` into a private directory, checked against the lists' SHA256, then moved into the cache. */
async function download(
  name: string,
  debPath: string,
  sha256: string,
  apt: { signal: AbortSignal | undefined; config?: AptConfig },
): Promise<void> {
  const temp = join(dirname(debPath), `.download-${randomUUID()}`);
  await mkdir(temp);
  try {
    const run = () => aptDownload([name], temp, { ...apt, timeoutMs: 10 * 60 * 1000 });
    const files = await run().catch(async () => {
      // Stale lists point at files the mirror already dropped.
      await aptUpdate(apt);
      return await run();
    });
    const file = files.get(name);
    if (file === undefined) throw upstream(`apt-get download ${name} produced no .deb`);
    const actual = await sha256HexOfFile(file);
    if (actual !== sha256)
      throw new AppError(
        "Integrity",
        `${basename(file)}: sha256 ${actual} does not match the package lists' ${sha256}`,
      );
    await rename(file, debPath);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * One package from trixie (trixieSource) into the package store under `cacheDir`, through the project's own
 * apt configuration (`<cacheDir>/apt/trixie`); the machine's /etc/apt is never read or written.
 */
export async function fetchTrixiePackage(
  name: string,
  options: { cacheDir: string; log?: (line: string) => void; signal?: AbortSignal },
): Promise<DebianPackage> {
  const trixie = await privateAptConfig(join(options.cacheDir, "apt", trixieSource.suite), trixieSource);
  return await fetchPackage(name, options.cacheDir, options.log ?? (() => {}), options.signal, trixie);
}
