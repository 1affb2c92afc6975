// Boot tier: the test bed's own kernel + initramfs in QEMU (TCG, 8–18 s a boot), read back through the
// guest's report. Kept to three boots, one per initramfs layout of the version rules: Talos 1.7 (xz,
// lib/modules), 1.8 (zstd, lib/modules), 1.10 (zstd, usr/lib/modules with /lib a symlink).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { type BaseBootAssets, buildBaseBootAssets, layoutForTalosVersion } from "../../src/testbed/initramfs.ts";
import { appendExtensionsByHand } from "./hand-extensions.ts";
import { boot, bootUnavailable } from "./harness.ts";
import { efiSystemType, linuxDataType, metaPartitionContent, writeTestDisk } from "./test-disk.ts";

const skip = bootUnavailable("uefi");

describe("test bed boots", { skip }, () => {
  let packages: TestbedPackages;
  let base17: BaseBootAssets;
  let work: string;

  before(async () => {
    packages = await fetchTestbedPackages();
    base17 = await buildBaseBootAssets({ layout: layoutForTalosVersion("v1.7.6"), packages });
    work = await mkdtemp(join(tmpdir(), "testbed-boot-"));
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("the base kernel + initramfs boot directly under BIOS and report what the guest saw", async () => {
    const cmdline = "talos.platform=metal console=ttyS0 printk.devkmsg=on";
    const { report, seconds } = await boot({
      kernel: base17.vmlinuz,
      initrd: base17.initramfs,
      cmdline,
      firmware: "bios",
    });
    console.log(`base BIOS boot: ${seconds} s`);
    assert.equal(report.kernelRelease, packages.kernel.release);
    assert.match(report.kernelRelease, /^6\.1\.0-\d+-amd64$/);
    assert.equal(report.firmware, "bios");
    assert.equal(report.secureBoot, null);
    assert.equal(report.cmdline, cmdline);
    assert.deepEqual(report.extensions, []);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.meta, { source: "none", tags: {} });
    assert.equal(report.schematicId, null);
    assert.equal(report.disk, null);
    // The guest could only mount rootfs.sqsh because it loaded these itself.
    for (const module of ["squashfs", "loop", "overlay", "virtio_blk"])
      assert.ok(report.modules.includes(module), module);
    assert.ok(!report.modules.includes("dummy"));
  });

  test("an extension appended by hand is mounted, its module loaded, META and schematic read", async () => {
    const base110 = await buildBaseBootAssets({ layout: layoutForTalosVersion("v1.10.3"), packages });
    assert.equal(base110.layout.modulesPath, "usr/lib/modules");
    const kver = packages.kernel.release;
    const schematicId = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    const initrd = await appendExtensionsByHand(
      base110,
      [
        {
          name: "dummy-module",
          version: "1.0.0-v1.10.3",
          files: [
            // dummy.ko is in the kernel package but not in the base rootfs.
            {
              path: `usr/lib/modules/${kver}/extras/dummy.ko`,
              source: join(packages.kernel.modulesDir, "kernel/drivers/net/dummy.ko"),
            },
          ],
        },
        {
          name: "schematic",
          version: schematicId,
          files: [{ path: `usr/local/share/schematic/${schematicId}`, content: "" }],
        },
      ],
      work,
    );
    const meta = '0xa={"externalIPs":["1.2.3.4"]};0xc=hello world';
    const cmdline = `talos.platform=metal talos.environment=INSTALLER_META_BASE64=${Buffer.from(meta).toString("base64")}`;
    const { report, seconds } = await boot({ kernel: base110.vmlinuz, initrd, cmdline, firmware: "bios" });
    console.log(`extension BIOS boot: ${seconds} s`);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(
      report.extensions.map((e) => [e.image, e.name, e.version]),
      [
        ["0.sqsh", "dummy-module", "1.0.0-v1.10.3"],
        ["1.sqsh", "schematic", schematicId],
        ["2.sqsh", "modules.dep", kver],
      ],
    );
    assert.ok(report.modules.includes("dummy"), `dummy not loaded: ${report.modules.join(" ")}`);
    assert.deepEqual(report.meta, {
      source: "cmdline",
      tags: { "0xa": '{"externalIPs":["1.2.3.4"]}', "0xc": "hello world" },
    });
    assert.equal(report.schematicId, schematicId);
  });

  test("the same base booted by OVMF reports UEFI firmware, and reads META and partition names from a disk", async () => {
    const base18 = await buildBaseBootAssets({ layout: layoutForTalosVersion("v1.8.2"), packages });
    assert.deepEqual(base18.layout, { modulesPath: "lib/modules", compression: "zstd" });
    const disk = join(work, "disk.raw");
    const sha256 = (block: Buffer) => createHash("sha256").update(block).digest();
    await writeTestDisk(disk, [
      { name: "EFI", typeGuid: efiSystemType, sizeMiB: 2 },
      {
        name: "META",
        typeGuid: linuxDataType,
        sizeMiB: 1,
        content: metaPartitionContent(
          [
            [0x0a, '{"addresses":["10.5.0.2/24"]}'],
            [0x11, "sd-boot"],
          ],
          sha256,
        ),
      },
    ]);
    const { report, seconds } = await boot({
      kernel: base18.vmlinuz,
      initrd: base18.initramfs,
      cmdline: "talos.platform=metal",
      disk,
      firmware: "uefi",
    });
    console.log(`base UEFI boot with a disk: ${seconds} s`);
    assert.equal(report.firmware, "uefi");
    assert.equal(report.kernelRelease, packages.kernel.release);
    assert.ok(report.modules.includes("efivarfs"));
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.disk, {
      partitions: [
        { device: "vda1", name: "EFI" },
        { device: "vda2", name: "META" },
      ],
      // No board overlay wrote into this EFI partition (the arm64 overlay boot reads one: arm64.boot.test.ts).
      overlayBoard: null,
    });
    assert.deepEqual(report.meta, {
      source: "partition",
      tags: { "0xa": '{"addresses":["10.5.0.2/24"]}', "0x11": "sd-boot" },
    });
  });
});
