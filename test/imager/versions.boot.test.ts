// Proof by boot for the newer Talos versions of the test bed's default release (1.12, 1.13, 1.14): for each,
// the ISO boots under one firmware and the raw disk image under the other, built by the imager from that
// version's test bed release. Each boot uses a schematic with a kernel-module extension (testbed-dummy), an
// extra kernel arg, a removed default (-consoleblank), a META value and an embedded machine configuration
// (Talos ≥ 1.12: the imager appends it as the `embedded-config` extension, versioned by the configuration's
// SHA-256 — talos pkg/imager/embed.go). The guest's report must show the extensions, the module loaded, the
// arg, the META value (command line for ISOs, META partition for disks) and the version's default kernel args
// (talos pkg/machinery/kernel/kernel.go with pkg/machinery/imager/quirks: module.sig_enforce=1 from 1.12,
// proc_mem.force_override=never from 1.13, init_on_alloc=1 dropped from 1.14).
//
// The 1.12 ISO asks for sd-boot in the schematic: from 1.12 an ISO takes the schematic's boot loader (talos
// quirks ISOSupportsSettingBootloader, pkg/imager/out.go), so it is a UEFI-only sd-boot ISO. Disks are
// dual-boot; the BIOS boots read the kernel from BOOT's XFS, made with the version's mkfs.xfs config.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Schematic, schematicId } from "../../src/talos/schematic.ts";
import { defaultTestbedVersions } from "../../src/testbed/release.ts";
import { boot, bootUnavailable, type TestbedReport } from "../boot/harness.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import { assertBootReport, buildAsset, type PreparedVersion, prepareVersion, testSchematic } from "./helpers.ts";

const skip = bootUnavailable("uefi");
const metaValue = "hello from META";
const machineConfig = "version: v1alpha1\nmachine:\n  type: worker\n";
const extensions = ["testbed-dummy"] as const;

/** The default release's version of each minor (the test follows the defaults). */
function defaultVersionOf(minor: number): string {
  const found = defaultTestbedVersions.find((v) => new RegExp(`^v1\\.${minor}\\.\\d+(-[0-9A-Za-z.]+)?$`).test(v));
  assert.ok(found, `the default test bed versions have a 1.${minor} version`);
  return found;
}

interface VersionBoots {
  minor: number;
  iso: "bios" | "uefi";
  disk: "bios" | "uefi";
  /** The schematic's boot loader for the ISO. */
  isoBootloader?: "sd-boot";
  /** Default kernel args the version adds, and those it no longer has. */
  args: { present: string[]; absent: string[] };
}

const plan: VersionBoots[] = [
  {
    minor: 12,
    iso: "uefi",
    disk: "bios",
    isoBootloader: "sd-boot",
    args: { present: ["module.sig_enforce=1", "init_on_alloc=1"], absent: ["proc_mem.force_override=never"] },
  },
  {
    minor: 13,
    iso: "bios",
    disk: "uefi",
    args: { present: ["module.sig_enforce=1", "proc_mem.force_override=never", "init_on_alloc=1"], absent: [] },
  },
  {
    minor: 14,
    iso: "uefi",
    disk: "bios",
    args: {
      present: ["module.sig_enforce=1", "proc_mem.force_override=never"],
      absent: ["init_on_alloc=1", "nvme_core.io_timeout=4294967295"],
    },
  },
];

describe("Talos 1.12–1.14 ISOs and disk images boot", { skip }, () => {
  let fixture: ReleaseFixture;
  let out: string;
  const prepared = new Map<number, PreparedVersion>();
  const schematicFor = (bootloader?: "sd-boot"): Schematic =>
    testSchematic(extensions, {
      extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
      meta: [{ key: 0xc, value: metaValue }],
      embeddedMachineConfiguration: machineConfig,
      ...(bootloader === undefined ? {} : { bootloader }),
    });
  const embeddedLayer = ["embedded-config", createHash("sha256").update(machineConfig).digest("hex")] as const;

  before(async () => {
    const versions = plan.map((p) => defaultVersionOf(p.minor));
    fixture = await openReleaseFixture(versions);
    for (const [i, p] of plan.entries())
      prepared.set(p.minor, await prepareVersion(fixture, versions[i] as string, extensions));
    out = await mkdtemp(join(fixture.scratch, "versions-boot-"));
  });
  after(async () => {
    await fixture?.close();
  });

  const summary = (report: TestbedReport) =>
    `extensions ${report.extensions.map((e) => `${e.name}@${e.version.slice(0, 16)}`).join(",")}; meta ${JSON.stringify(report.meta)}; partitions ${report.disk?.partitions.map((p) => p.name).join(",") ?? "none"}`;

  const assertArgs = (report: TestbedReport, p: VersionBoots) => {
    const args = report.cmdline.split(/\s+/);
    for (const arg of p.args.present) assert.ok(args.includes(arg), `${arg} in ${report.cmdline}`);
    for (const arg of p.args.absent) assert.ok(!args.includes(arg), `no ${arg} in ${report.cmdline}`);
  };

  for (const p of plan)
    test(`1.${p.minor}: metal-amd64.iso boots (${p.iso}) and metal-amd64.raw boots (${p.disk})`, async () => {
      const v = prepared.get(p.minor) as PreparedVersion;
      const kernelRelease = fixture.packages.kernel.release;

      const isoSchematic = schematicFor(p.isoBootloader);
      const isoDir = join(out, `iso-${v.version}`);
      await mkdir(isoDir);
      const iso = await buildAsset(v, isoSchematic, "metal-amd64.iso", isoDir);
      console.log(`${v.version} ISO (${iso.profile.bootloader}) build: ${iso.seconds} s`);
      assert.equal(iso.profile.bootloader, p.isoBootloader ?? "dual-boot");
      const isoBoot = await boot({ iso: iso.path, firmware: p.iso, memoryMiB: 512 });
      console.log(`${v.version} ISO ${p.iso}: ${isoBoot.seconds} s; ${summary(isoBoot.report)}`);
      assert.equal(isoBoot.report.firmware, p.iso);
      await assertBootReport(isoBoot.report, v, {
        schematicId: schematicId(isoSchematic),
        kernelRelease,
        afterSchematic: [embeddedLayer],
      });
      assertArgs(isoBoot.report, p);
      assert.ok(isoBoot.report.cmdline.split(/\s+/).includes("talos.halt_if_installed=1"), isoBoot.report.cmdline);
      assert.deepEqual(isoBoot.report.meta, { source: "cmdline", tags: { "0xc": metaValue } });

      const diskSchematic = schematicFor();
      const diskDir = join(out, `raw-${v.version}`);
      await mkdir(diskDir);
      const disk = await buildAsset(v, diskSchematic, "metal-amd64.raw", diskDir);
      console.log(`${v.version} disk (${disk.profile.bootloader}) build: ${disk.seconds} s`);
      assert.equal(disk.profile.bootloader, "dual-boot");
      const diskBoot = await boot({ disk: disk.path, firmware: p.disk, memoryMiB: 512 });
      console.log(`${v.version} disk ${p.disk}: ${diskBoot.seconds} s; ${summary(diskBoot.report)}`);
      assert.equal(diskBoot.report.firmware, p.disk);
      await assertBootReport(diskBoot.report, v, {
        schematicId: schematicId(diskSchematic),
        kernelRelease,
        afterSchematic: [embeddedLayer],
      });
      assertArgs(diskBoot.report, p);
      assert.deepEqual(
        diskBoot.report.disk?.partitions.map((part) => part.name),
        ["EFI", "BIOS", "BOOT", "META"],
      );
      // Dual-boot disks record the boot loader in META (tag 0x11) next to the schematic's value.
      assert.deepEqual(diskBoot.report.meta, { source: "partition", tags: { "0xc": metaValue, "0x11": "dual-boot" } });
      assert.ok(!diskBoot.report.cmdline.includes("INSTALLER_META_BASE64"), "disk images carry META in the partition");
    });
});
