// Proof by boot: assets the imager built from the test bed release, booted in QEMU through the test bed
// harness. A schematic with every compatible test bed extension (testbed-dummy carries a kernel module), an
// extra kernel arg, a removed default (-consoleblank) and a META value; for Talos 1.10 and 1.8 the kernel +
// initramfs + cmdline boot directly (the PXE path, BIOS), and the UKI boots under UEFI. The guest's
// report must show every extension with its version, the module loaded, the arg present, consoleblank gone,
// the META value from talos.environment, and the schematic ID. One disk image (Talos 1.10, dual-boot) made with
// 4096-byte sectors boots under UEFI from a disk with 4096-byte logical blocks.

import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { schematicId } from "../../src/talos/schematic.ts";
import { boot, bootUnavailable, qemuArgs } from "../boot/harness.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import {
  assertBootReport,
  buildAsset,
  compatibleExtensions,
  type PreparedVersion,
  prepareVersion,
  testSchematic,
} from "./helpers.ts";

const skip = bootUnavailable("uefi");

describe("imager assets boot", { skip }, () => {
  let fixture: ReleaseFixture;
  let out: string;
  const prepared = new Map<string, PreparedVersion>();
  const schematic = testSchematic(compatibleExtensions, {
    extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
    meta: [{ key: 0xc, value: "hello from META" }],
  });
  const id = schematicId(schematic);

  before(async () => {
    fixture = await openReleaseFixture(["v1.8.2", "v1.10.3"]);
    for (const version of ["v1.8.2", "v1.10.3"])
      prepared.set(version, await prepareVersion(fixture, version, compatibleExtensions));
    out = await mkdtemp(join(fixture.scratch, "boot-out-"));
  });
  after(async () => {
    await fixture?.close();
  });

  for (const version of ["v1.10.3", "v1.8.2"])
    test(`${version}: kernel + initramfs + cmdline boot directly (BIOS)`, async () => {
      const v = prepared.get(version) as PreparedVersion;
      const dir = join(out, version);
      await mkdir(dir);
      const kernel = await buildAsset(v, schematic, "kernel-amd64", dir);
      const initramfs = await buildAsset(v, schematic, "initramfs-amd64.xz", dir);
      const cmdline = await buildAsset(v, schematic, "cmdline-metal-amd64", dir);
      console.log(`${version} build: kernel ${kernel.seconds} s, initramfs ${initramfs.seconds} s`);
      const { report, seconds } = await boot({
        kernel: kernel.path,
        initrd: initramfs.path,
        cmdline: await readFile(cmdline.path, "utf8"),
        firmware: "bios",
      });
      console.log(`${version} BIOS boot: ${seconds} s`);
      assert.equal(report.firmware, "bios");
      await assertBootReport(report, v, { schematicId: id, kernelRelease: fixture.packages.kernel.release });
    });

  for (const version of ["v1.10.3", "v1.8.2"])
    test(`${version}: the UKI boots under UEFI`, async () => {
      const v = prepared.get(version) as PreparedVersion;
      const dir = join(out, `uki-${version}`);
      await mkdir(dir);
      const uki = await buildAsset(v, schematic, "metal-amd64-uki.efi", dir);
      console.log(`${version} UKI build: ${uki.seconds} s`);
      const { report, seconds } = await boot({ uki: uki.path, firmware: "uefi" });
      console.log(`${version} UKI UEFI boot: ${seconds} s`);
      assert.equal(report.firmware, "uefi");
      // A UKI takes the schematic's extra args only from Talos 1.10 (or with Secure Boot): image-factory
      // internal/profile/profile.go EnhanceFromSchematic.
      await assertBootReport(report, v, {
        schematicId: id,
        kernelRelease: fixture.packages.kernel.release,
        extraArgs: version !== "v1.8.2",
      });
    });

  // The schematic's customization.diskImage.sectorSize (image-factory pkg/schematic/schematic.go
  // DiskImageCustomization; internal/integration/download_test.go "sector size 4096" builds such a
  // metal-amd64 image): the disk is attached with 4096-byte logical blocks, so firmware and kernel find the
  // GPT, the ESP and META only if they are laid out in 4096-byte sectors.
  test("v1.10.3: a dual-boot disk image with 4096-byte sectors boots under UEFI from a 4Kn virtio disk", async () => {
    const v = prepared.get("v1.10.3") as PreparedVersion;
    const schematic4k = testSchematic(compatibleExtensions, {
      extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
      meta: [{ key: 0xc, value: "hello from META" }],
      diskImage: { sectorSize: 4096 },
    });
    const dir = join(out, "disk-4k");
    await mkdir(dir);
    const disk = await buildAsset(v, schematic4k, "metal-amd64.raw", dir);
    assert.equal(disk.profile.disk?.sectorSize, 4096);
    console.log(`v1.10.3 4Kn disk build: ${disk.seconds} s`);
    // The guest sees 4096-byte logical blocks: OVMF and Linux then read the GPT header at byte 4096 and every
    // LBA in 4096-byte units; a 512-byte layout would show them no partitions at all.
    assert.ok(
      qemuArgs({ disk: disk.path, diskSectorSize: 4096, firmware: "uefi" }, "/scratch").includes(
        "virtio-blk-pci,drive=disk0,logical_block_size=4096,physical_block_size=4096",
      ),
    );
    const { report, seconds } = await boot({ disk: disk.path, diskSectorSize: 4096, firmware: "uefi" });
    console.log(`v1.10.3 4Kn disk UEFI boot: ${seconds} s`);
    assert.equal(report.firmware, "uefi");
    assert.deepEqual(
      report.disk?.partitions.map((p) => p.name),
      ["EFI", "BIOS", "BOOT", "META"],
    );
    assert.deepEqual(report.meta, { source: "partition", tags: { "0xc": "hello from META", "0x11": "dual-boot" } });
    await assertBootReport(report, v, {
      schematicId: schematicId(schematic4k),
      kernelRelease: fixture.packages.kernel.release,
    });
  });
});
