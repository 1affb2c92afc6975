// The Debian packages the test bed is built from, fetched WITHOUT installing them into the package store
// (src/tools/debian-packages.ts, docs/caches.md).
//
// The kernel is resolved at build time: `linux-image-amd64` depends on the current
// `linux-image-6.1.0-NN-amd64`, and old ones leave the mirror, so no version is ever written down here.

import { stat } from "node:fs/promises";
import { join } from "node:path";
import { AppError, isAppError } from "../errors.ts";
import { aptUpdate, resolveDependency } from "../tools/apt.ts";
import { bootAssetsCacheDir, type DebianPackage, fetchPackage, fetchTrixiePackage } from "../tools/debian-packages.ts";

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
  const [kernel, busybox, systemdBoot, systemdBootProfiles] = await Promise.all([
    fetchPackage(kernelName, cacheDir, log, options.signal),
    fetchPackage("busybox-static", cacheDir, log, options.signal),
    fetchPackage("systemd-boot-efi", cacheDir, log, options.signal),
    fetchTrixiePackage("systemd-boot-efi", { cacheDir, log, ...(options.signal ? { signal: options.signal } : {}) }),
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
