// Boot tier of the factory's downloads: what the factory (the seed command line against the test bed release
// in a real registry) serves boots, and the guest reports the schematic's extensions (the module of
// testbed-dummy loaded), kernel args and META. The smallest set that proves each kind: the downloaded ISO
// (BIOS, through GRUB), the downloaded raw disk image (UEFI, through systemd-boot, META read from its
// partition), and PXE: the iPXE script of /pxe (upstream's standard.ipxe, internal/frontend/http/pxe.go)
// parsed for its kernel and initrd URLs and its command line, those two downloaded and booted with exactly
// that command line, as iPXE would. The schematic has the test bed's board overlay: the disk's guest shows its
// kernel args.

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { after, before, describe, test } from "node:test";
import { testbedProfileArg } from "../../src/testbed/release-overlay.ts";
import {
  type FactoryUnderTest,
  type PublishedTestbed,
  type SeedBed,
  startSeedBed,
} from "../factory/service-harness.ts";
import { boot, bootUnavailable, type TestbedReport } from "./harness.ts";

const skip = bootUnavailable("uefi");
const version = "v1.10.3";
const metaValue = "META from the factory";
// console=ttyS0 replaces the platform's console (upstream's extraKernelArgs rule), so the PXE command line
// needs nothing added to reach the serial port the report is read from.
const extraArgs = ["console=ttyS0", "downloads.boot=yes", "-consoleblank"];
// The test bed's board overlay (src/testbed/release-overlay.ts): its installer writes into the disk's EFI
// partition (test/factory/overlay.test.ts reads it back) and its args reach the booted kernel.
const overlayArg = "downloads.overlay=yes";
const schematicYaml = `overlay:
  image: siderolabs/sbc-testbed
  name: testbed_board
  options:
    kernelArg: ${overlayArg}
customization:
  extraKernelArgs:
${extraArgs.map((arg) => `    - ${arg}\n`).join("")}  meta:
    - key: 12
      value: ${metaValue}
  systemExtensions:
    officialExtensions:
      - siderolabs/testbed-dummy
`;

describe("what the factory serves boots", { skip }, () => {
  let bed: SeedBed | undefined;
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base: string;
  let id: string;
  let work: string;

  before(async () => {
    bed = await startSeedBed({ schematic: schematicYaml });
    ({ testbed, running, base, id } = bed);
    work = await mkdtemp(join(running.dataDir, "..", "boot-"));
  });
  after(async () => {
    await bed?.stop();
  });

  /** Downloads a factory path to a file, streamed. */
  async function download(path: string, name: string): Promise<string> {
    const started = performance.now();
    const res = await fetch(`${base}${path}`);
    if (res.status !== 200) assert.fail(`${path}: ${res.status} ${await res.text()}`);
    const file = join(work, name);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(file));
    console.log(`${name}: built and downloaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return file;
  }

  /** What every boot must show: the extension (its module loaded), the schematic, the kernel args. */
  function assertSchematic(report: TestbedReport): void {
    const images = testbed.summary.versions.find((v) => v.version === version)?.images ?? [];
    const dummy = images.find((i) => i.extension?.name === "testbed-dummy")?.extension;
    assert.ok(dummy, "the test bed has testbed-dummy");
    assert.deepEqual(report.errors, []);
    assert.deepEqual(
      report.extensions.map((e) => [e.image, e.name, e.version]),
      [
        ["0.sqsh", "testbed-dummy", dummy.version],
        ["1.sqsh", "schematic", id],
        ["modules.dep.sqsh", "modules.dep", testbed.summary.kernel.release],
      ],
    );
    assert.ok(report.modules.includes("dummy"), `dummy not loaded: ${report.modules.join(" ")}`);
    assert.equal(report.schematicId, id);
    const args = report.cmdline.split(/\s+/);
    assert.ok(args.includes("downloads.boot=yes"), report.cmdline);
    assert.ok(args.includes("talos.platform=metal"), report.cmdline);
    assert.ok(!args.some((a) => a.startsWith("consoleblank")), report.cmdline);
    assert.deepEqual(
      args.filter((a) => a.startsWith("console=")),
      ["console=ttyS0"],
    );
  }

  test("the downloaded ISO boots (BIOS) with the schematic, META on its command line", async () => {
    const iso = await download(`/image/${id}/${version}/metal-amd64.iso`, "metal-amd64.iso");
    const { report, seconds } = await boot({ iso, firmware: "bios" });
    console.log(`ISO BIOS boot: ${seconds} s`);
    assert.equal(report.firmware, "bios");
    assertSchematic(report);
    assert.deepEqual(report.meta, { source: "cmdline", tags: { "0xc": metaValue } });
  });

  test("the downloaded raw disk image boots (UEFI) with the schematic, META from its partition", async () => {
    const disk = await download(`/image/${id}/${version}/metal-amd64.raw`, "metal-amd64.raw");
    const { report, seconds } = await boot({ disk, firmware: "uefi" });
    console.log(`disk UEFI boot: ${seconds} s`);
    assert.equal(report.firmware, "uefi");
    assertSchematic(report);
    assert.deepEqual(
      report.disk?.partitions.map((p) => p.name),
      ["EFI", "BIOS", "BOOT", "META"],
    );
    // Dual-boot disks also record their boot loader in META (tag 0x11).
    assert.deepEqual(report.meta, { source: "partition", tags: { "0xc": metaValue, "0x11": "dual-boot" } });
    assert.ok(!report.cmdline.includes("INSTALLER_META_BASE64"), "a disk image carries META in its partition only");
    // The overlay's args: its installer's get-options answer (with the schematic's option) and its profile's.
    const args = report.cmdline.split(/\s+/);
    for (const arg of ["testbed.overlay=testbed_board", overlayArg, testbedProfileArg])
      assert.ok(args.includes(arg), `${arg} missing from ${report.cmdline}`);
  });

  test("PXE: the script's kernel and initrd boot with exactly the script's command line", async () => {
    const res = await fetch(`${base}/pxe/${id}/${version}/metal-amd64`);
    const script = await res.text();
    assert.equal(res.status, 200, script);
    // internal/frontend/http/standard.ipxe
    const match = /^#!ipxe\n\nimgfree\nkernel (\S+) ([^\n]*)\ninitrd (\S+)\nboot\n$/.exec(script);
    assert.ok(match, script);
    const [, kernelUrl, cmdline, initrdUrl] = match as unknown as [string, string, string, string];
    // The URLs are under the seed's -external-url; this factory is reached on its loopback address.
    const external = "https://factory.example.test/";
    const local = (url: string) => {
      assert.ok(url.startsWith(external), url);
      return `/${url.slice(external.length)}`;
    };
    assert.equal(local(kernelUrl), `/image/${id}/${version}/kernel-amd64`);
    assert.equal(local(initrdUrl), `/image/${id}/${version}/initramfs-amd64.xz`);
    const kernel = await download(local(kernelUrl), "kernel-amd64");
    const initrd = await download(local(initrdUrl), "initramfs-amd64.xz");
    const { report, seconds } = await boot({ kernel, initrd, cmdline, firmware: "bios" });
    console.log(`PXE (direct kernel) BIOS boot: ${seconds} s`);
    assert.equal(report.cmdline, cmdline, "the guest saw exactly the script's command line");
    assertSchematic(report);
    assert.deepEqual(report.meta, { source: "cmdline", tags: { "0xc": metaValue } });
  });
});
