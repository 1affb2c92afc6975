// The test bed imager image's files: per architecture, `usr/install/<arch>/` with the kernel, the base
// initramfs, systemd-boot and systemd-stub, and (from Talos 1.11) the SBOM.

import { stat } from "node:fs/promises";
import type { TarEntry } from "../oci/tar.ts";
import { rulesFor } from "../talos/version-rules.ts";
import type { TestbedArchPackages } from "./debian.ts";
import type { BaseBootAssets } from "./initramfs.ts";
import { testbedSbom } from "./sbom.ts";

/**
 * The systemd-boot and systemd-stub a version's imager ships: from Talos 1.10 (the version rules' ukiProfiles)
 * Debian's next release's (systemd ≥ 257), which boot multi-profile UKIs as those of real Talos imagers do;
 * before, Debian 12's (252). Both move together: systemd-boot 252 reads a multi-profile UKI as one entry and
 * hands the stub the LAST `.cmdline` section as its command line — a reset profile's
 * (test/imager/uki-profiles.boot.test.ts shows 257 boots the main one).
 */
export function testbedSystemdBoot(packages: TestbedArchPackages, version: string): TestbedArchPackages["systemdBoot"] {
  return rulesFor(version).ukiProfiles ? packages.systemdBootProfiles : packages.systemdBoot;
}

/** The imager image's files for one architecture: `usr/install/<arch>/…`. */
export async function imagerEntries(
  build: { packages: TestbedArchPackages; base: BaseBootAssets },
  version: string,
  mtime: number,
): Promise<TarEntry[]> {
  const { packages, base } = build;
  const systemdBoot = testbedSystemdBoot(packages, version);
  const dir = `usr/install/${packages.arch}`;
  const files: [string, string][] = [
    ["vmlinuz", base.vmlinuz],
    ["initramfs.xz", base.initramfs],
    ["systemd-boot.efi", systemdBoot.bootEfi],
    ["systemd-stub.efi", systemdBoot.stubEfi],
  ];
  const entries: TarEntry[] = await Promise.all(
    files.map(
      async ([name, sourcePath]): Promise<TarEntry> => ({
        type: "file",
        path: `${dir}/${name}`,
        mode: 0o644,
        sourcePath,
        size: (await stat(sourcePath)).size,
      }),
    ),
  );
  if (rulesFor(version).imagerSbom) {
    const sbom = testbedSbom({
      talosVersion: version,
      arch: packages.arch,
      packages: [packages.kernel, packages.busybox, systemdBoot],
      mtime,
    });
    entries.push({ type: "file", path: `${dir}/talos.spdx.json`, mode: 0o644, content: sbom });
  }
  return entries;
}
