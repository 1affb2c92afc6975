// ISO building blocks checked with xorriso reading the result: volume id, file tree, boot records, the
// appended EFI partition, the config text as upstream's templates render it, and reproducibility.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { link, mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { diskGrubConfig, grubQuote, isoGrubConfig, isoVolumeId, loaderConf } from "../../src/formats/boot-config.ts";
import { elToritoBootImages, setEfiBootImageSerial } from "../../src/formats/el-torito.ts";
import { buildGrubIso, buildUefiIso, isoTrailingCommands } from "../../src/imager/iso/iso.ts";
import { grubMkrescue } from "../../src/tools/grub.ts";
import { isoBootReport, isoExtract, isoFiles, isoToc } from "../../src/tools/xorriso.ts";
import { sha256OfFile as sha256File } from "../../src/util/file-digest.ts";

const sdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

describe("boot loader config text", () => {
  test("the ISO grub.cfg as upstream's template renders it, with and without the reset entry", () => {
    const entry = (title: string, extra: string) =>
      `menuentry "${title}" {\n\tset gfxmode=auto\n\tset gfxpayload=text\n\tlinux /boot/vmlinuz a=1 b${extra}\n\tinitrd /boot/initramfs.xz\n}\n`;
    const head =
      "set default=0\nset timeout=3\n\ninsmod all_video\n\nterminal_input console\nterminal_output console\n\n";
    assert.equal(isoGrubConfig({ cmdline: "a=1 b", resetEntry: false }), `${head}${entry("Talos ISO", "")}\n`);
    assert.equal(
      isoGrubConfig({ cmdline: "a=1 b", resetEntry: true }),
      `${head}${entry("Talos ISO", "")}\n${entry("Reset Talos installation", " talos.experimental.wipe=system")}`,
    );
  });
  test("the installed grub.cfg boots entry A; GRUB quoting escapes shell characters", () => {
    const text = diskGrubConfig({ cmdline: "x=1", version: "v1.8.2", resetEntry: true });
    assert.match(text, /^set default="A - Talos v1\.8\.2"\n\nset timeout=3\n/);
    assert.match(text, /\n {2}linux \/A\/vmlinuz x=1\n {2}initrd \/A\/initramfs\.xz\n/);
    assert.match(text, /talos\.experimental\.wipe=system:EPHEMERAL,STATE/);
    assert.equal(grubQuote('a;b$c"d'), 'a\\;b\\$c\\"d');
  });
  test("loader.conf and the volume id", () => {
    assert.equal(
      loaderConf({ medium: "iso" }),
      "# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll off\n",
    );
    assert.equal(loaderConf({ medium: "disk" }), "# systemd-boot configuration\n\ntimeout 10\n");
    assert.equal(isoVolumeId("Talos-v1.8.2"), "TALOS_V1_8_2");
    assert.equal(isoVolumeId("Talos-v1.10.0-alpha.1+build"), "TALOS_V1_10_0_ALPHA_1BUILD");
  });
});

describe("ISOs", () => {
  let dir: string;
  let kernel: string;
  let initramfs: string;
  let uki: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "iso-test-"));
    kernel = join(dir, "vmlinuz");
    initramfs = join(dir, "initramfs.xz");
    uki = join(dir, "uki.efi");
    await writeFile(kernel, randomBytes(1024 * 1024));
    await writeFile(initramfs, randomBytes(2 * 1024 * 1024));
    await writeFile(uki, randomBytes(3 * 1024 * 1024));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("GRUB ISO: volume id, files, grub.cfg, El Torito BIOS + EFI", async () => {
    const build = async (out: string) =>
      await buildGrubIso({
        out,
        version: "v1.8.2",
        volumeLabel: true,
        kernel,
        initramfs,
        cmdline: "talos.platform=metal",
        resetEntry: true,
        scratchDir: dir,
        mtime: 1700000000,
      });
    const iso = join(dir, "grub.iso");
    await build(iso);
    assert.match(await isoToc(iso), /Volume id\s*:\s*'TALOS_V1_8_2'/);
    const files = await isoFiles(iso);
    for (const f of ["/boot/vmlinuz", "/boot/initramfs.xz", "/boot/grub/grub.cfg"]) assert.ok(files.includes(f), f);
    const cfg = join(dir, "grub.cfg");
    await isoExtract(iso, "/boot/grub/grub.cfg", cfg);
    assert.equal(await readFile(cfg, "utf8"), isoGrubConfig({ cmdline: "talos.platform=metal", resetEntry: true }));
    const report = await isoBootReport(iso);
    assert.match(report, /El Torito boot img.*BIOS/);
    assert.match(report, /El Torito boot img.*UEFI/);
    // Reproducible: a second build a moment later has the same bytes (the UEFI image's FAT serial is the
    // one asked for, not grub-mkrescue's random one), and that serial is 1700000000 as hex.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = join(dir, "grub-again.iso");
    await build(again);
    assert.equal(await sha256File(again), await sha256File(iso));
    const efi = (await elToritoBootImages(iso)).find((image) => image.platform === 0xef);
    assert.ok(efi, "a UEFI boot image");
    const handle = await open(iso, "r");
    try {
      const boot = Buffer.alloc(512);
      await handle.read(boot, 0, 512, efi.offset);
      const at = boot.toString("latin1", 0x52, 0x57) === "FAT32" ? 0x43 : 0x27;
      assert.equal(boot.readUInt32LE(at), 1700000000);
    } finally {
      await handle.close();
    }
  });

  test("GRUB ISO: the same bytes as grub-mkrescue running xorriso itself (its staged files and arguments recorded)", async () => {
    // What the GRUB ISO was before grub-mkrescue's work was split (iso/grub-parts.ts): one grub-mkrescue run
    // on the same tree, its efi.img serial set afterwards.
    const epoch = 1700000000;
    const split = join(dir, "split.iso");
    const options = { version: "v1.8.2", volumeLabel: true, kernel, initramfs, cmdline: "talos.platform=metal" };
    await buildGrubIso({ ...options, out: split, resetEntry: false, scratchDir: dir, mtime: epoch });
    const tree = await mkdtemp(join(dir, "tree-"));
    await mkdir(join(tree, "boot", "grub"), { recursive: true });
    await link(kernel, join(tree, "boot", "vmlinuz"));
    await link(initramfs, join(tree, "boot", "initramfs.xz"));
    await writeFile(
      join(tree, "boot", "grub", "grub.cfg"),
      isoGrubConfig({ cmdline: options.cmdline, resetEntry: false }),
    );
    const whole = join(dir, "whole.iso");
    await grubMkrescue(
      [
        "--compress=xz",
        `--output=${whole}`,
        tree,
        "-iso-level",
        "3",
        "--",
        ...isoTrailingCommands({ ...options, mtime: epoch, out: whole, scratchDir: dir }),
      ],
      { env: { SOURCE_DATE_EPOCH: String(epoch), GRUB_FAT_SERIAL_NUMBER: epoch.toString(16) } },
    );
    await setEfiBootImageSerial(whole, epoch);
    assert.equal(await sha256File(split), await sha256File(whole));
  });

  test("UEFI ISO: systemd-boot, the UKI and loader.conf in efiboot.img appended as partition 2 (0xEF)", async () => {
    const iso = join(dir, "uefi.iso");
    await buildUefiIso({
      out: iso,
      version: "v1.10.3",
      volumeLabel: true,
      uki,
      sdBoot,
      arch: "amd64",
      scratchDir: dir,
      mtime: 1700000000,
    });
    const files = await isoFiles(iso);
    for (const f of [
      "/EFI/BOOT/BOOTX64.EFI",
      "/EFI/Linux/Talos-v1.10.3.efi",
      "/loader/loader.conf",
      "/loader/random-seed",
    ])
      assert.ok(files.includes(f), `${f} in ${files.join(" ")}`);
    assert.ok(!files.includes("/efiboot.img"), "efiboot.img itself is left out of the tree");
    const report = await isoBootReport(iso);
    assert.match(report, /El Torito boot img.*UEFI/);
    assert.match(report, /MBR partition.*0xef/i);
    assert.match(await isoToc(iso), /Volume id\s*:\s*'TALOS_V1_10_3'/);
  });
});
