// Proof by boot for ISOs and disk images the imager built (build() from the test bed release), with the
// schematic of part 1: every compatible test bed extension (testbed-dummy carries a kernel module), an extra
// kernel arg, a removed default (-consoleblank) and a META value. For Talos 1.10 (hybrid ISO, dual-boot disk)
// and 1.8 (GRUB ISO from grub-mkrescue, GRUB disk) each medium boots in BIOS and in UEFI; the guest's report
// must show every extension with its version, the module loaded, the arg present and consoleblank gone, the
// schematic ID, and META: on the command line for ISOs, read from the META partition for disks (with the
// partition names the guest saw).

import assert from "node:assert/strict";
import { mkdir, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { schematicId } from "../../src/talos/schematic.ts";
import { boot, bootUnavailable, type TestbedReport } from "../boot/harness.ts";
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
const metaValue = "hello from META";

describe("imager ISOs and disk images boot", { skip }, () => {
  let fixture: ReleaseFixture;
  let out: string;
  const prepared = new Map<string, PreparedVersion>();
  const schematic = testSchematic(compatibleExtensions, {
    extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
    meta: [{ key: 0xc, value: metaValue }],
  });
  const id = schematicId(schematic);

  before(async () => {
    fixture = await openReleaseFixture(["v1.8.2", "v1.10.3"]);
    for (const version of ["v1.8.2", "v1.10.3"])
      prepared.set(version, await prepareVersion(fixture, version, compatibleExtensions));
    out = await mkdtemp(join(fixture.scratch, "media-boot-"));
  });
  after(async () => {
    await fixture?.close();
  });

  const summary = (report: TestbedReport) =>
    `extensions ${report.extensions.map((e) => `${e.name}@${e.version}`).join(",")}; modules ${report.modules.join(",")}; meta ${JSON.stringify(report.meta)}; partitions ${report.disk?.partitions.map((p) => p.name).join(",") ?? "none"}`;

  for (const version of ["v1.10.3", "v1.8.2"])
    test(`${version}: metal-amd64.iso boots in BIOS and in UEFI`, async () => {
      const v = prepared.get(version) as PreparedVersion;
      const dir = join(out, `iso-${version}`);
      await mkdir(dir);
      const iso = await buildAsset(v, schematic, "metal-amd64.iso", dir);
      console.log(`${version} ISO (${iso.profile.bootloader}) build: ${iso.seconds} s`);
      for (const firmware of ["bios", "uefi"] as const) {
        const { report, seconds } = await boot({ iso: iso.path, firmware });
        console.log(`${version} ISO ${firmware}: ${seconds} s; ${summary(report)}`);
        assert.equal(report.firmware, firmware);
        await assertBootReport(report, v, { schematicId: id, kernelRelease: fixture.packages.kernel.release });
        assert.ok(report.cmdline.split(/\s+/).includes("talos.halt_if_installed=1"), report.cmdline);
        assert.deepEqual(report.meta, { source: "cmdline", tags: { "0xc": metaValue } });
      }
    });

  for (const version of ["v1.10.3", "v1.8.2"])
    test(`${version}: metal-amd64.raw boots in BIOS and in UEFI and reads META from its partition`, async () => {
      const v = prepared.get(version) as PreparedVersion;
      const dir = join(out, `raw-${version}`);
      await mkdir(dir);
      const disk = await buildAsset(v, schematic, "metal-amd64.raw", dir);
      const bootloader = disk.profile.bootloader;
      console.log(`${version} disk (${bootloader}) build: ${disk.seconds} s`);
      // Dual-boot disks record the boot loader in META (tag 0x11); GRUB disks carry only the schematic's.
      const tags: Record<string, string> = { "0xc": metaValue };
      if (bootloader === "dual-boot") tags["0x11"] = "dual-boot";
      for (const firmware of ["bios", "uefi"] as const) {
        const { report, seconds } = await boot({ disk: disk.path, firmware });
        console.log(`${version} disk ${firmware}: ${seconds} s; ${summary(report)}`);
        assert.equal(report.firmware, firmware);
        await assertBootReport(report, v, { schematicId: id, kernelRelease: fixture.packages.kernel.release });
        assert.deepEqual(
          report.disk?.partitions.map((p) => p.name),
          ["EFI", "BIOS", "BOOT", "META"],
        );
        assert.deepEqual(report.meta, { source: "partition", tags });
        assert.ok(!report.cmdline.includes("INSTALLER_META_BASE64"), "disk images carry META in the partition only");
      }
    });
});
