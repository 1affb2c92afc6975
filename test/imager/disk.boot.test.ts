// Boot proof for the disk and ISO building blocks: the test bed's kernel + base initramfs (no extensions)
// in disk images made by buildTalosDisk — a Talos 1.8 GRUB disk booted with BIOS (our own core.img
// embedding), and a Talos 1.10 dual-boot disk (GRUB for BIOS, systemd-boot + a UKI for UEFI) booted both
// ways — the guest reporting the firmware, the partition names and the META value it read from the
// META partition. Then ISOs: GRUB (BIOS) and hybrid (UEFI through systemd-boot).

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { MetaTag } from "../../src/formats/meta-partition.ts";
import { assembleUki, osReleaseFor } from "../../src/formats/uki.ts";
import { buildTalosDisk } from "../../src/imager/disk/talos-disk.ts";
import { buildGrubIso, buildHybridIso } from "../../src/imager/iso/iso.ts";
import { diskImageBytes, diskImageDefaults } from "../../src/talos/disk-layout.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { type BaseBootAssets, buildBaseBootAssets, layoutForTalosVersion } from "../../src/testbed/initramfs.ts";
import { boot, bootUnavailable } from "../boot/harness.ts";

const skip = bootUnavailable("uefi");
const systemdStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const systemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const cmdline = "talos.platform=metal console=ttyS0 printk.devkmsg=on";
const metaValue = "meta-from-the-disk";

describe("disk images and ISOs boot", { skip }, () => {
  let packages: TestbedPackages;
  let base18: BaseBootAssets;
  let base110: BaseBootAssets;
  let work: string;
  let uki110: string;

  before(async () => {
    packages = await fetchTestbedPackages();
    base18 = await buildBaseBootAssets({ layout: layoutForTalosVersion("v1.8.2"), packages });
    base110 = await buildBaseBootAssets({ layout: layoutForTalosVersion("v1.10.3"), packages });
    work = await mkdtemp(join(tmpdir(), "disk-boot-"));
    uki110 = join(work, "uki.efi");
    const out = createWriteStream(uki110);
    await assembleUki(
      await readFile(systemdStub),
      {
        osRelease: osReleaseFor("Talos", "v1.10.3"),
        cmdline,
        uname: base110.kernelRelease,
        linux: { path: base110.vmlinuz },
        initrd: { path: base110.initramfs },
      },
      { wantProfiles: false },
      out,
    );
    out.end();
    await finished(out);
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  const partitionNames = (report: { disk: { partitions: { name: string }[] } | null }) =>
    report.disk?.partitions.map((p) => p.name);

  test("a Talos 1.8 GRUB disk boots with BIOS through the embedded core.img and reads META", async () => {
    const rules = rulesFor("v1.8.2");
    const disk = join(work, "grub.raw");
    await buildTalosDisk({
      out: disk,
      sizeBytes: diskImageBytes(diskImageDefaults("metal").baseBytes, rules, "grub"),
      rules,
      bootloader: "grub",
      arch: "amd64",
      version: "v1.8.2",
      cmdline,
      kernel: base18.vmlinuz,
      initramfs: base18.initramfs,
      meta: [{ tag: MetaTag.UserReserved1, value: Buffer.from(metaValue) }],
      scratchDir: work,
    });
    const { report, seconds } = await boot({ disk, firmware: "bios" });
    console.log(
      `GRUB disk, BIOS: ${seconds} s; partitions ${partitionNames(report)?.join(",")}; meta ${JSON.stringify(report.meta)}`,
    );
    assert.equal(report.firmware, "bios");
    assert.equal(report.cmdline.includes("talos.platform=metal"), true);
    assert.deepEqual(partitionNames(report), ["EFI", "BIOS", "BOOT", "META"]);
    assert.deepEqual(report.meta, { source: "partition", tags: { "0xc": metaValue } });
    assert.deepEqual(report.errors, []);
  });

  test("a Talos 1.10 dual-boot disk boots with UEFI (systemd-boot + UKI) and with BIOS (GRUB)", async () => {
    const rules = rulesFor("v1.10.3");
    const disk = join(work, "dual.raw");
    await buildTalosDisk({
      out: disk,
      sizeBytes: diskImageBytes(diskImageDefaults("metal").baseBytes, rules, "dual-boot"),
      rules,
      bootloader: "dual-boot",
      arch: "amd64",
      version: "v1.10.3",
      cmdline,
      kernel: base110.vmlinuz,
      initramfs: base110.initramfs,
      uki: uki110,
      sdBoot: systemdBoot,
      meta: [{ tag: MetaTag.UserReserved1, value: Buffer.from(metaValue) }],
      scratchDir: work,
    });
    for (const firmware of ["uefi", "bios"] as const) {
      const { report, seconds } = await boot({ disk, firmware });
      console.log(
        `dual-boot disk, ${firmware}: ${seconds} s; partitions ${partitionNames(report)?.join(",")}; meta ${JSON.stringify(report.meta)}`,
      );
      assert.equal(report.firmware, firmware);
      assert.deepEqual(partitionNames(report), ["EFI", "BIOS", "BOOT", "META"]);
      assert.deepEqual(report.meta, { source: "partition", tags: { "0xc": metaValue, "0x11": "dual-boot" } });
      assert.deepEqual(report.errors, []);
    }
  });

  test("a GRUB ISO boots with BIOS; a hybrid ISO boots with UEFI through systemd-boot", async () => {
    const grubIso = join(work, "grub.iso");
    await buildGrubIso({
      out: grubIso,
      version: "v1.8.2",
      volumeLabel: true,
      kernel: base18.vmlinuz,
      initramfs: base18.initramfs,
      cmdline,
      resetEntry: true,
      scratchDir: work,
      mtime: 1700000000,
    });
    const bios = await boot({ iso: grubIso, firmware: "bios" });
    console.log(`GRUB ISO, BIOS: ${bios.seconds} s`);
    assert.equal(bios.report.firmware, "bios");
    // GRUB's `linux` command puts BOOT_IMAGE first.
    assert.equal(bios.report.cmdline, `BOOT_IMAGE=/boot/vmlinuz ${cmdline}`);
    const hybridIso = join(work, "hybrid.iso");
    await buildHybridIso({
      out: hybridIso,
      version: "v1.10.3",
      volumeLabel: true,
      kernel: base110.vmlinuz,
      initramfs: base110.initramfs,
      cmdline,
      resetEntry: true,
      uki: uki110,
      sdBoot: systemdBoot,
      arch: "amd64",
      scratchDir: work,
      mtime: 1700000000,
    });
    for (const firmware of ["uefi", "bios"] as const) {
      const { report, seconds } = await boot({ iso: hybridIso, firmware });
      console.log(`hybrid ISO, ${firmware}: ${seconds} s`);
      assert.equal(report.firmware, firmware);
      assert.deepEqual(report.errors, []);
    }
  });
});
