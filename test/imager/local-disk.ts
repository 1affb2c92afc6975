// A Talos disk image built by buildTalosDisk from stand-in boot files: random bytes where the kernel, the
// initramfs and the UKI go (the disk tests check partitions, file systems, META and GRUB's LBAs, not what
// boots), the metal platform's size for the version and boot loader, systemd-boot from Debian's package.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildTalosDisk, type TalosDiskOptions, type TalosDiskResult } from "../../src/imager/disk/talos-disk.ts";
import { diskImageBytes, diskImageDefaults } from "../../src/talos/disk-layout.ts";
import type { Bootloader } from "../../src/talos/schematic.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";

const mib = 1024 * 1024;

export interface StandInBootFiles {
  kernel: string;
  initramfs: string;
  uki: string;
}

/** Writes random kernel, initramfs and UKI files of the given sizes (MiB) into `dir`, their names ending in `suffix`. */
export async function writeStandInBootFiles(
  dir: string,
  sizesMib: { kernel: number; initramfs: number; uki: number },
  suffix = "",
): Promise<StandInBootFiles> {
  const files = {
    kernel: join(dir, `vmlinuz${suffix}`),
    initramfs: join(dir, `initramfs${suffix}.xz`),
    uki: join(dir, `uki${suffix}.efi`),
  };
  for (const key of ["kernel", "initramfs", "uki"] as const)
    await writeFile(files[key], randomBytes(sizesMib[key] * mib));
  return files;
}

/**
 * Builds a metal-sized amd64 disk for `version` and `bootloader` into `out` from `files`, its scratch space in
 * `scratchDir`, at mtime 1700000000; `extra` sets the rest (command line, META, sector size).
 */
export function buildLocalTalosDisk(
  files: StandInBootFiles,
  disk: { out: string; version: string; bootloader: Bootloader; scratchDir: string },
  extra: Pick<TalosDiskOptions, "cmdline" | "meta" | "sectorSize"> = {},
): Promise<TalosDiskResult> {
  const rules = rulesFor(disk.version);
  return buildTalosDisk({
    ...disk,
    ...files,
    ...extra,
    rules,
    sizeBytes: diskImageBytes(diskImageDefaults("metal").baseBytes, rules, disk.bootloader),
    arch: "amd64",
    sdBoot: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    mtime: 1700000000,
  });
}

/** Copies `size` bytes at `offset` of `image` into `out` (sparse, with dd) for a file system checker; returns `out`. */
export function cutOut(image: string, range: { offset: number; size: number }, out: string): string {
  execFileSync("dd", [
    `if=${image}`,
    `of=${out}`,
    "bs=1M",
    "iflag=skip_bytes,count_bytes",
    `skip=${range.offset}`,
    `count=${range.size}`,
    "conv=sparse",
    "status=none",
  ]);
  return out;
}
