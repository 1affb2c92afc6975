// arm64 ISOs and disk images that need GRUB, built by build() from a small arm64 imager tree (fake kernel and
// initramfs; systemd-boot and its stub from Debian trixie's systemd-boot-efi for arm64) and read back with the real
// tools: xorriso -report_el_torito / -find, sfdisk --json, mdir/mcopy on the EFI FAT, `file` on the EFI
// binaries. Booting them is left to the boot tests. The rules come from upstream siderolabs/talos:
//   - the ISO's boot loader: pkg/imager/out.go outISO — GRUB before 1.10 (CreateGRUB), hybrid for 1.10/1.11
//     whatever the arch (UseSDBootForUEFI → CreateHybrid: grub-mkrescue --directory=/usr/lib/grub/i386-pc with
//     the sd-boot efiboot.img appended as partition 2, BOOTAA64.EFI on arm64, pkg/imager/iso/uefi.go)
//   - the GRUB ISO: pkg/imager/iso/grub.go (boot/vmlinuz, boot/initramfs.xz, boot/grub/grub.cfg from grub.cfg)
//   - the GRUB disk: internal/app/machined/pkg/runtime/v1alpha1/bootloader/grub/install.go generateGrubImage
//     (grub-mkimage --format arm64-efi to EFI/boot/BOOTAA64.efi, core.img for amd64 only) and grub.go
//     RequiredPartitions (EFI, BIOS, BOOT whatever the arch); dual-boot refused on arm64 (bootloader/dual/dual.go)
//   - console args of metal arm64: console=ttyAMA0 console=tty0 (pkg/machinery/imager platform metal)

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { isoGrubConfig } from "../../src/formats/boot-config.ts";
import { elToritoBootImages } from "../../src/formats/el-torito.ts";
import { type BuildOptions, build } from "../../src/imager/builders.ts";
import { type BuildProfile, createBuildProfile } from "../../src/imager/profile.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import { type Schematic, schematicId } from "../../src/talos/schematic.ts";
import { bootAssetsCacheDir, fetchForeignPackage } from "../../src/tools/debian-packages.ts";
import { sfdiskJson } from "../../src/tools/gdisk.ts";
import { resolveGrubPlatformDir } from "../../src/tools/grub.ts";
import { mdirRecursive, mtype } from "../../src/tools/mtools.ts";
import { isoBootReport, isoExtract, isoFiles, isoToc } from "../../src/tools/xorriso.ts";

const mib = 1024 * 1024;
const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
const aarch64Efi = /^PE32\+ executable \(EFI application\) Aarch64/;
const schematic: Schematic = { customization: { extraKernelArgs: ["arm64.extra=yes"] } };

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { maxBuffer: 64 * mib }).toString("utf8");
}

/** `file -b` of one file copied out of a FAT image at `offset` in `image`. */
function fileTypeInFat(image: string, offset: number, path: string, out: string): string {
  sh("mcopy", ["-n", "-i", `${image}@@${offset}`, `::${path}`, out]);
  return sh("file", ["-b", out]).trim();
}

describe("arm64 media with GRUB", () => {
  let dir: string;
  let imagerDir: string;
  let grubDir: string;
  const options: BuildOptions = { mtime: 1700000000, grubArm64EfiDir: async () => grubDir };

  const profileFor = (version: string, path: string): BuildProfile =>
    createBuildProfile(parseAssetRequest(schematicId(schematic), version, path), schematic, {
      imager: digest(1),
      installerBase: digest(2),
      extensions: [],
    });
  const buildIt = async (version: string, path: string) => {
    const profile = profileFor(version, path);
    const out = join(dir, `${version}-${path}`);
    await build(profile, { imagerDir, extensions: [] }, out, options);
    return { profile, out };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "arm64-media-"));
    const cacheDir = bootAssetsCacheDir();
    grubDir = await resolveGrubPlatformDir("arm64-efi", { cacheDir });
    // trixie's (systemd 257): bookworm's 252 arm64 stub leaves no room for the UKI's section headers.
    const systemdBoot = await fetchForeignPackage("systemd-boot-efi", "arm64", { cacheDir, suite: "trixie" });
    imagerDir = join(dir, "imager");
    const install = join(imagerDir, "usr", "install", "arm64");
    await mkdir(install, { recursive: true });
    await writeFile(join(install, "vmlinuz"), randomBytes(mib));
    await writeFile(join(install, "initramfs.xz"), randomBytes(2 * mib));
    const efiDir = join(systemdBoot.root, "usr", "lib", "systemd", "boot", "efi");
    await writeFile(join(install, "systemd-boot.efi"), await readFile(join(efiDir, "systemd-bootaa64.efi")));
    await writeFile(join(install, "systemd-stub.efi"), await readFile(join(efiDir, "linuxaa64.efi.stub")));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("v1.9.5 metal-arm64.iso: GRUB for arm64 UEFI only, grub.cfg with the arm64 console args", async () => {
    const { profile, out } = await buildIt("v1.9.5", "metal-arm64.iso");
    assert.equal(profile.bootloader, "grub");
    const report = await isoBootReport(out);
    assert.match(report, /El Torito boot img\s*:\s*1\s+UEFI/);
    assert.doesNotMatch(report, /BIOS/, "no x86 BIOS boot image for an arm64 kernel");
    assert.match(await isoToc(out), /Volume id\s*:\s*'TALOS_V1_9_5'/);
    const files = await isoFiles(out);
    for (const f of ["/boot/vmlinuz", "/boot/initramfs.xz", "/boot/grub/grub.cfg", "/boot/grub/arm64-efi/linux.mod"])
      assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => f.startsWith("/boot/grub/i386-pc/") || f.startsWith("/boot/grub/x86_64-efi/")));
    const cfgPath = join(dir, "iso-grub.cfg");
    await isoExtract(out, "/boot/grub/grub.cfg", cfgPath);
    const cfg = await readFile(cfgPath, "utf8");
    const linux = cfg.split("\n").find((line) => line.trim().startsWith("linux /boot/vmlinuz")) ?? "";
    // metal arm64 consoles, the ISO's halt_if_installed (1.8+), the schematic's extra arg, no ttyS0.
    for (const arg of ["talos.platform=metal", "console=ttyAMA0", "console=tty0", "talos.halt_if_installed=1"])
      assert.ok(linux.split(" ").includes(arg), `${arg} in ${linux}`);
    assert.ok(linux.endsWith(" arm64.extra=yes"), linux);
    assert.ok(!linux.includes("ttyS0"), linux);
    assert.match(cfg, /menuentry "Reset Talos installation"/);
    assert.equal(cfg, isoGrubConfig({ cmdline: linux.trim().slice("linux /boot/vmlinuz ".length), resetEntry: true }));
    // The UEFI image: GRUB's removable-media path for AArch64, an AArch64 PE.
    const efi = (await elToritoBootImages(out)).find((image) => image.platform === 0xef);
    assert.ok(efi, "a UEFI boot image");
    const listing = await mdirRecursive(out, { offset: efi.offset });
    assert.ok(
      listing.some((l) => /efi\/boot\/bootaa64\.efi$/i.test(l)),
      listing.join("\n"),
    );
    assert.ok(!listing.some((l) => /bootx64\.efi$/i.test(l)));
    assert.match(fileTypeInFat(out, efi.offset, "/efi/boot/bootaa64.efi", join(dir, "iso-grub.efi")), aarch64Efi);
  });

  test("v1.10.6 metal-arm64.iso: hybrid — i386-pc GRUB for BIOS, sd-boot BOOTAA64.EFI + UKI for UEFI", async () => {
    const version = "v1.10.6";
    // 1.11 is built the same way (its rule is a version-rules row): its profile says so.
    assert.equal(profileFor("v1.11.5", "metal-arm64.iso").bootloader, "dual-boot");
    assert.equal(profileFor("v1.12.0", "metal-arm64.iso").bootloader, "sd-boot");
    const { profile, out } = await buildIt(version, "metal-arm64.iso");
    assert.equal(profile.bootloader, "dual-boot");
    const report = await isoBootReport(out);
    assert.match(report, /El Torito boot img\s*:\s*1\s+BIOS/);
    assert.match(report, /El Torito boot img\s*:\s*2\s+UEFI/);
    // efiboot.img appended as GPT partition 2, an EFI System partition (C12A7328-F81F-11D2-BA4B-00A0C93EC93B).
    assert.match(report, /GPT partname local\s*:\s*2\s+Appended2/);
    assert.match(report, /GPT type GUID\s*:\s*2\s+28732ac11ff8d211ba4b00a0c93ec93b/);
    const files = await isoFiles(out);
    for (const f of [
      "/boot/vmlinuz",
      "/boot/initramfs.xz",
      "/boot/grub/grub.cfg",
      "/boot/grub/i386-pc/linux.mod",
      "/EFI/BOOT/BOOTAA64.EFI",
      `/EFI/Linux/Talos-${version}.efi`,
      "/loader/loader.conf",
    ])
      assert.ok(files.includes(f), f);
    assert.ok(!files.includes("/EFI/BOOT/BOOTX64.EFI"));
    const efi = (await elToritoBootImages(out)).find((image) => image.platform === 0xef);
    assert.ok(efi, "a UEFI boot image");
    const listing = await mdirRecursive(out, { offset: efi.offset });
    assert.ok(
      listing.some((l) => /EFI\/BOOT\/BOOTAA64\.EFI$/.test(l)),
      listing.join("\n"),
    );
    assert.match(await mtype(out, "loader/loader.conf", { offset: efi.offset }), /^secure-boot-enroll off$/m);
    assert.match(fileTypeInFat(out, efi.offset, "/EFI/BOOT/BOOTAA64.EFI", join(dir, `${version}.efi`)), aarch64Efi);
    assert.match(
      fileTypeInFat(out, efi.offset, `/EFI/Linux/Talos-${version}.efi`, join(dir, `${version}-uki.efi`)),
      aarch64Efi,
    );
  });

  test("v1.9.5 metal-arm64.raw: EFI, BIOS (empty), BOOT, META; GRUB's BOOTAA64.efi in EFI; no MBR boot code", async () => {
    const { profile, out } = await buildIt("v1.9.5", "metal-arm64.raw");
    assert.equal(profile.bootloader, "grub");
    const table = await sfdiskJson(out);
    assert.deepEqual(
      table.partitions.map((p) => p.name),
      ["EFI", "BIOS", "BOOT", "META"],
    );
    const sgdisk = sh("sgdisk", ["-p", out]);
    assert.match(sgdisk, /\bEF00\b.*EFI/);
    assert.match(sgdisk, /\bEF02\b.*BIOS/);
    const part = (name: string) => table.partitions.find((p) => p.name === name) as (typeof table.partitions)[number];
    const efiOffset = part("EFI").start * 512;
    const listing = await mdirRecursive(out, { offset: efiOffset });
    assert.ok(
      listing.some((l) => /EFI\/boot\/BOOTAA64\.efi$/.test(l)),
      listing.join("\n"),
    );
    assert.match(fileTypeInFat(out, efiOffset, "/EFI/boot/BOOTAA64.efi", join(dir, "disk-grub.efi")), aarch64Efi);
    // No BIOS boot on arm64: core.img is not embedded and the MBR has no boot code.
    const bios = Buffer.alloc(part("BIOS").size * 512);
    const mbr = Buffer.alloc(440);
    const fd = await open(out, "r");
    try {
      await fd.read(bios, 0, bios.length, part("BIOS").start * 512);
      await fd.read(mbr, 0, mbr.length, 0);
    } finally {
      await fd.close();
    }
    assert.ok(
      bios.every((b) => b === 0),
      "the BIOS partition stays empty",
    );
    assert.ok(
      mbr.every((b) => b === 0),
      "no boot code in the protective MBR",
    );
  });

  test("dual-boot disk images are refused on arm64, with upstream's words", async () => {
    const dual: Schematic = { customization: { bootloader: "dual-boot" } };
    const profile = createBuildProfile(parseAssetRequest(schematicId(dual), "v1.10.6", "metal-arm64.raw"), dual, {
      imager: digest(1),
      extensions: [],
    });
    await assert.rejects(
      build(profile, { imagerDir, extensions: [] }, join(dir, "dual.raw"), options),
      (err: unknown) => isAppError(err, "BadRequest") && /not supported on arm64/.test((err as Error).message),
    );
  });
});
