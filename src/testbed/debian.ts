// The Debian packages the test bed is built from, fetched WITHOUT installing them into the package store
// (src/tools/debian-packages.ts, docs/caches.md).
//
// The kernel is resolved at build time: `linux-image-amd64` depends on the current
// `linux-image-6.1.0-NN-amd64`, and old ones leave the mirror, so no version is ever written down here.
//
// arm64: the same packages for Debian's arm64, downloaded (never installed) through apt configurations of the
// project's own that resolve for that architecture (`<cacheDir>/apt/bookworm-arm64`, `…/trixie-arm64`;
// foreignAptConfig): the machine's dpkg architectures and /etc/apt are left as they are.

import { stat } from "node:fs/promises";
import { join } from "node:path";
import { AppError, isAppError } from "../errors.ts";
import { type AptConfig, aptUpdate, resolveDependency } from "../tools/apt.ts";
import {
  bootAssetsCacheDir,
  type DebianPackage,
  fetchPackage,
  fetchTrixiePackage,
  foreignAptConfig,
} from "../tools/debian-packages.ts";

/** The architectures the test bed releases (Debian's and OCI's names agree for both). */
export type TestbedArch = "amd64" | "arm64";
export const testbedArches: readonly TestbedArch[] = ["amd64", "arm64"];

/** One architecture's packages. */
export interface TestbedArchPackages {
  arch: TestbedArch;
  kernel: DebianPackage & {
    /** `uname -r` of this kernel, e.g. "6.1.0-56-amd64". */
    release: string;
    /** Path of the kernel image inside `root`. */
    vmlinuz: string;
    /** The kernel's module tree inside `root` (`lib/modules/<release>`), without modules.dep (depmod runs at install). */
    modulesDir: string;
  };
  /** busybox-static: one static binary, the guest's shell and tools. */
  busybox: DebianPackage & {
    binary: string;
    /**
     * A busybox this machine can run that has the same applets (itself on amd64; the amd64 package of the same
     * upstream version for arm64): the build asks it for the applet list (`--list-full`).
     */
    runnable: string;
  };
  /** systemd-boot-efi: the boot manager and the UKI stub. */
  systemdBoot: DebianPackage & {
    /** `systemd-bootx64.efi` (`…aa64.efi` on arm64), upstream's `systemd-boot.efi`. */
    bootEfi: string;
    /** `linuxx64.efi.stub` (`linuxaa64.efi.stub` on arm64), upstream's `systemd-stub.efi`. */
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

/** The amd64 packages (the machine's architecture), which most of the test bed is built from. */
export type TestbedPackages = TestbedArchPackages & { arch: "amd64" };

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
  const packages = await archPackages("amd64", { kernel, busybox, systemdBoot, systemdBootProfiles });
  return { ...packages, arch: "amd64" };
}

/**
 * The arm64 packages, as fetchTestbedPackages fetches amd64's: the kernel (`linux-image-arm64` → its versioned
 * package), busybox-static and systemd-boot-efi from Debian 12, systemd-boot-efi from trixie; download only.
 * `amd64Packages`: the amd64 packages (or their promise: both fetch at once), whose busybox lists the applets
 * (busybox-static of the same upstream version).
 */
export async function fetchTestbedArm64Packages(
  amd64Packages: TestbedPackages | Promise<TestbedPackages>,
  options: FetchOptions = {},
): Promise<TestbedArchPackages> {
  const cacheDir = options.cacheDir ?? bootAssetsCacheDir();
  const log = options.log ?? (() => {});
  const signal = options.signal;
  const bookworm = await foreignAptConfig(cacheDir, "arm64", "bookworm");
  const trixie = await foreignAptConfig(cacheDir, "arm64", "trixie");
  const kernelName = await resolveKernelPackage({ ...options, arch: "arm64", config: bookworm });
  const [kernel, busybox, systemdBoot, systemdBootProfiles] = await Promise.all([
    fetchPackage(kernelName, cacheDir, log, signal, bookworm),
    fetchPackage("busybox-static", cacheDir, log, signal, bookworm),
    fetchPackage("systemd-boot-efi", cacheDir, log, signal, bookworm),
    fetchPackage("systemd-boot-efi", cacheDir, log, signal, trixie),
  ]);
  const amd64 = await amd64Packages;
  const upstream = (version: string) => version.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
  if (upstream(busybox.version) !== upstream(amd64.busybox.version))
    throw new AppError(
      "Internal",
      `busybox-static ${busybox.version} (arm64) and ${amd64.busybox.version} (amd64) differ: the amd64 one lists the applets`,
    );
  const packages = await archPackages("arm64", { kernel, busybox, systemdBoot, systemdBootProfiles });
  return { ...packages, busybox: { ...packages.busybox, runnable: amd64.busybox.binary } };
}

async function archPackages(
  arch: TestbedArch,
  fetched: Record<"kernel" | "busybox" | "systemdBoot" | "systemdBootProfiles", DebianPackage>,
): Promise<TestbedArchPackages> {
  const { kernel, busybox, systemdBoot, systemdBootProfiles } = fetched;
  const release = kernel.name.replace(/^linux-image-/, "");
  const vmlinuz = join(kernel.root, "boot", `vmlinuz-${release}`);
  const modulesDir = join(kernel.root, "lib", "modules", release);
  await mustExist(vmlinuz, kernel.name);
  await mustExist(modulesDir, kernel.name);
  const binary = join(busybox.root, "bin", "busybox");
  await mustExist(binary, "busybox-static");
  return {
    arch,
    kernel: { ...kernel, release, vmlinuz, modulesDir },
    busybox: { ...busybox, binary, runnable: binary },
    systemdBoot: { ...systemdBoot, ...(await systemdBootFiles(systemdBoot, arch)) },
    systemdBootProfiles: { ...systemdBootProfiles, ...(await systemdBootFiles(systemdBootProfiles, arch)) },
  };
}

async function systemdBootFiles(pkg: DebianPackage, arch: TestbedArch): Promise<{ bootEfi: string; stubEfi: string }> {
  const efiDir = join(pkg.root, "usr", "lib", "systemd", "boot", "efi");
  const efiArch = arch === "arm64" ? "aa64" : "x64";
  const bootEfi = join(efiDir, `systemd-boot${efiArch}.efi`);
  const stubEfi = join(efiDir, `linux${efiArch}.efi.stub`);
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
 * `linux-image-<arch>` → the versioned kernel package it depends on. Runs `apt-get update` once when the
 * package lists don't know it (a fresh machine). `config`: the apt configuration to ask (default the machine's).
 */
export async function resolveKernelPackage(
  options: { signal?: AbortSignal; log?: (line: string) => void; arch?: TestbedArch; config?: AptConfig } = {},
): Promise<string> {
  const arch = options.arch ?? "amd64";
  const apt = { signal: options.signal, ...(options.config === undefined ? {} : { config: options.config }) };
  const pattern = new RegExp(`^linux-image-\\d[\\w.+-]*-${arch}$`);
  const resolve = () => resolveDependency(`linux-image-${arch}`, pattern, apt);
  return await resolve().catch(async (err: unknown) => {
    if (!isAppError(err, "NotFound")) throw err;
    options.log?.(`apt-get update (linux-image-${arch} is not in the package lists)`);
    await aptUpdate(apt);
    return await resolve();
  });
}
