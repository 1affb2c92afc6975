// Boot tier, arm64: the test bed release published for linux/amd64 + linux/arm64, its arm64 kernel, and an
// initramfs and command line the imager built from the release's arm64 images (the testbed-dummy extension,
// whose arm64 dummy.ko the guest loads, and an extra kernel argument), booted directly on qemu-system-aarch64's
// `virt` machine (TCG, Cortex-A57), reach the guest's report. Upstream names the arm64 serial console ttyAMA0
// (src/talos/platforms.ts); the harness adds it, as a PXE user's boot loader would. The same version's arm64 UKI (Debian
// trixie's arm64 systemd-stub), ISO (1.10's hybrid: arm64 GRUB and sd-boot) and disk image (sd-boot) boot under
// AAVMF, and so does 1.8's disk image, which boots through arm64 GRUB (BOOTAA64.efi from grub-efi-arm64). A disk
// image with the test bed's arm64 board overlay shows the file its installer wrote into the EFI partition and its
// kernel args (src/testbed/release-overlay.ts).

import assert from "node:assert/strict";
import { mkdir, mkdtemp, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parsePe } from "../../src/formats/pe.ts";
import { type GoValue, type Schematic, schematicId } from "../../src/talos/schematic.ts";
import {
  testbedArm64BoardText,
  testbedArm64Overlay,
  testbedOverlayRepository,
  testbedProfileArg,
} from "../../src/testbed/release-overlay.ts";
import { localOverlay, openReleaseFixture, type ReleaseFixture } from "../imager/fixture.ts";
import {
  assertBootReport,
  buildAsset,
  type PreparedVersion,
  prepareVersion,
  testSchematic,
} from "../imager/helpers.ts";
import { boot, bootUnavailable } from "./harness.ts";

const skip = bootUnavailable("bios", "arm64");
const version = "v1.10.3";
/** Before 1.10, metal disk images boot through GRUB (talos quirks.go UseSDBootForUEFI: src/talos/version-rules.ts). */
const grubVersion = "v1.8.2";

describe("arm64 test bed boots", { skip }, () => {
  let fixture: ReleaseFixture;
  let prepared: PreparedVersion;
  let out: string;
  const schematic = testSchematic(["testbed-dummy"], {
    extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
    meta: [{ key: 0xc, value: "hello from META" }],
  });
  const id = schematicId(schematic);

  before(async () => {
    fixture = await openReleaseFixture([version, grubVersion], { arches: ["amd64", "arm64"] });
    prepared = await prepareVersion(fixture, version, ["testbed-dummy"], "arm64");
    out = await mkdtemp(join(fixture.scratch, "arm64-boot-"));
  });
  after(async () => {
    await fixture?.close();
  });

  test(`${version}: the release's images are linux/amd64 + linux/arm64 indexes`, () => {
    const release = fixture.summary.versions[0];
    assert.ok(release !== undefined);
    for (const kind of ["imager", "installer", "extension"] as const)
      for (const image of release.images.filter((i) => i.kind === kind))
        assert.deepEqual(
          image.platforms?.map((p) => p.arch),
          ["amd64", "arm64"],
          `${image.repository}:${image.tag}`,
        );
  });

  test(`${version}: arm64 kernel + initramfs + cmdline boot directly on aarch64`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const dir = join(out, "pxe");
    await mkdir(dir);
    const kernel = await buildAsset(prepared, schematic, "kernel-arm64", dir);
    const initramfs = await buildAsset(prepared, schematic, "initramfs-arm64.xz", dir);
    const cmdline = await buildAsset(prepared, schematic, "cmdline-metal-arm64", dir);
    console.log(`arm64 build: kernel ${kernel.seconds} s, initramfs ${initramfs.seconds} s`);
    const { report, seconds } = await boot({
      arch: "arm64",
      kernel: kernel.path,
      initrd: initramfs.path,
      cmdline: await readFile(cmdline.path, "utf8"),
      firmware: "bios",
      timeoutMs: 300_000,
    });
    console.log(`arm64 direct boot: ${seconds} s`);
    assert.equal(report.machine, "aarch64");
    assert.equal(report.kernelRelease, arm64.release);
    assert.match(report.kernelRelease, /-arm64$/);
    await assertBootReport(report, prepared, { schematicId: id, kernelRelease: arm64.release });
  });

  test(`${version}: the arm64 UKI boots under AAVMF (UEFI)`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const dir = join(out, "uki");
    await mkdir(dir);
    const uki = await buildAsset(prepared, schematic, "metal-arm64-uki.efi", dir);
    console.log(`arm64 UKI build: ${uki.seconds} s`);
    // The stub is arm64's (IMAGE_FILE_MACHINE_ARM64), and there is no .uname: upstream reads the kernel release
    // only from an x86 bzImage header and leaves the section out otherwise (siderolabs/talos
    // internal/pkg/uki/kernel.go DiscoverKernelVersion, generate.go generateUname).
    const head = Buffer.alloc(64 * 1024);
    const file = await open(uki.path, "r");
    try {
      await file.read(head, 0, head.length, 0);
    } finally {
      await file.close();
    }
    const pe = parsePe(head);
    assert.equal(pe.coff.machine, 0xaa64);
    const sections = pe.sections.map((section) => section.name);
    assert.ok(sections.includes(".linux") && sections.includes(".initrd"), sections.join(" "));
    assert.ok(!sections.includes(".uname"), sections.join(" "));
    const { report, seconds } = await boot({ arch: "arm64", uki: uki.path, firmware: "uefi", timeoutMs: 300_000 });
    console.log(`arm64 UKI UEFI boot: ${seconds} s`);
    assert.equal(report.machine, "aarch64");
    assert.equal(report.firmware, "uefi");
    assert.match(report.stub?.info ?? "", /^systemd-stub 257/);
    await assertBootReport(report, prepared, { schematicId: id, kernelRelease: arm64.release });
  });

  test(`${version}: the arm64 ISO boots under AAVMF from a virtio-scsi CD-ROM`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const dir = join(out, "iso");
    await mkdir(dir);
    const iso = await buildAsset(prepared, schematic, "metal-arm64.iso", dir);
    console.log(`arm64 ISO (${iso.profile.bootloader}) build: ${iso.seconds} s`);
    const { report, seconds } = await boot({ arch: "arm64", iso: iso.path, firmware: "uefi", timeoutMs: 300_000 });
    console.log(`arm64 ISO UEFI boot: ${seconds} s`);
    assert.equal(report.machine, "aarch64");
    assert.equal(report.firmware, "uefi");
    await assertBootReport(report, prepared, { schematicId: id, kernelRelease: arm64.release });
    assert.deepEqual(report.meta, { source: "cmdline", tags: { "0xc": "hello from META" } });
  });

  test(`${version}: the arm64 disk image (sd-boot) boots under AAVMF and reads META from its partition`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const dir = join(out, "raw");
    await mkdir(dir);
    const disk = await buildAsset(prepared, schematic, "metal-arm64.raw", dir);
    console.log(`arm64 disk (${disk.profile.bootloader}) build: ${disk.seconds} s`);
    const { report, seconds } = await boot({ arch: "arm64", disk: disk.path, firmware: "uefi", timeoutMs: 300_000 });
    console.log(
      `arm64 disk UEFI boot: ${seconds} s; partitions ${JSON.stringify(report.disk)}; meta ${JSON.stringify(report.meta)}`,
    );
    assert.equal(report.machine, "aarch64");
    assert.equal(report.firmware, "uefi");
    await assertBootReport(report, prepared, { schematicId: id, kernelRelease: arm64.release });
    const names = report.disk?.partitions.map((p) => p.name) ?? [];
    assert.ok(names.includes("EFI") && names.includes("META"), names.join(","));
    assert.equal(report.meta.source, "partition");
    assert.equal(report.meta.tags["0xc"], "hello from META");
  });

  test(`${grubVersion}: the arm64 GRUB disk image boots under AAVMF and reads META from its partition`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const grub = await prepareVersion(fixture, grubVersion, ["testbed-dummy"], "arm64");
    const dir = join(out, "raw-grub");
    await mkdir(dir);
    const disk = await buildAsset(grub, schematic, "metal-arm64.raw", dir);
    assert.equal(disk.profile.bootloader, "grub");
    console.log(`arm64 ${grubVersion} disk (grub) build: ${disk.seconds} s`);
    const { report, seconds } = await boot({ arch: "arm64", disk: disk.path, firmware: "uefi", timeoutMs: 420_000 });
    console.log(
      `arm64 ${grubVersion} GRUB disk UEFI boot: ${seconds} s; partitions ${JSON.stringify(report.disk)}; meta ${JSON.stringify(report.meta)}`,
    );
    assert.equal(report.machine, "aarch64");
    assert.equal(report.firmware, "uefi");
    await assertBootReport(report, grub, { schematicId: id, kernelRelease: arm64.release });
    // upstream's GRUB disk layout (bootloader/grub/install.go, pkg/imager/out.go): EFI, BIOS, BOOT, META.
    const names = report.disk?.partitions.map((p) => p.name) ?? [];
    assert.deepEqual(names, ["EFI", "BIOS", "BOOT", "META"]);
    assert.equal(report.meta.source, "partition");
    assert.equal(report.meta.tags["0xc"], "hello from META");
  });

  test(`${version}: an arm64 board overlay's disk image boots with its installer's file and kernel args`, async () => {
    const arm64 = fixture.summary.kernels.find((k) => k.arch === "arm64");
    assert.ok(arm64 !== undefined);
    const overlayArg = "arm64.overlay=yes";
    const options: Array<[string, GoValue]> = [["kernelArg", { type: "string", value: overlayArg }]];
    const boardSchematic: Schematic = {
      ...schematic,
      overlay: { image: testbedOverlayRepository, name: testbedArm64Overlay, options },
    };
    const board: PreparedVersion = {
      ...prepared,
      inputs: {
        ...prepared.inputs,
        overlay: await localOverlay(fixture, version, testbedArm64Overlay, "arm64", options),
      },
    };
    const dir = join(out, "raw-overlay");
    await mkdir(dir);
    const disk = await buildAsset(board, boardSchematic, "metal-arm64.raw", dir);
    console.log(`arm64 overlay disk build: ${disk.seconds} s`);
    const { report, seconds } = await boot({ arch: "arm64", disk: disk.path, firmware: "uefi", timeoutMs: 420_000 });
    console.log(`arm64 overlay disk UEFI boot: ${seconds} s; disk ${JSON.stringify(report.disk)}`);
    assert.equal(report.machine, "aarch64");
    await assertBootReport(report, prepared, {
      schematicId: schematicId(boardSchematic),
      kernelRelease: arm64.release,
    });
    // The installer (the amd64 image's, run on this host) copied artifacts/arm64/board.txt into the EFI
    // partition, and its get-options args (with the schematic's option) and its profile's reached the kernel.
    assert.equal(report.disk?.overlayBoard, testbedArm64BoardText.trimEnd());
    const args = report.cmdline.split(/\s+/);
    for (const arg of [`testbed.overlay=${testbedArm64Overlay}`, overlayArg, testbedProfileArg])
      assert.ok(args.includes(arg), `${arg} missing from ${report.cmdline}`);
  });
});
