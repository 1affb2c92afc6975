// ISOs and disk images built by the imager (build() with iso/disk profiles) from the test bed release, read
// back with independent tools: xorriso -toc / -report_el_torito for ISOs, sgdisk -v and sfdisk --json for
// the partition table, fsck.vfat -n on the EFI partition and xfs_repair -n on BOOT (each cut out of the
// image with dd), the META partition decoded, qemu-img check / info for qcow2 and VHD, tar for .tar.gz and
// OVA, zstd for .zst; and the GPT, META and EFI FAT byte-identical across two builds. The 8 GiB platform
// images (azure's fixed VHD, vmware's OVA) are the exhaustive tier's (media-platforms.exhaustive.test.ts).
// Expected values come from upstream siderolabs/talos (pkg/machinery/imager/quirks, pkg/imager; docs/formats.md) (sizes, labels, META tags, cmdline rules), not from the code.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { decodeMetaPartition } from "../../src/formats/meta-partition.ts";
import { createBuildProfile, profileHash } from "../../src/imager/profile.ts";
import { fileDigestSigner, fileKeySigner } from "../../src/signing/digest-signer.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import { schematicId } from "../../src/talos/schematic.ts";
import { type ObjdumpSection, objdumpSections } from "../../src/tools/binutils.ts";
import { fsckVfat } from "../../src/tools/dosfstools.ts";
import { type SfdiskTable, sfdiskJson, sgdiskVerify } from "../../src/tools/gdisk.ts";
import { mdirRecursive, mtype } from "../../src/tools/mtools.ts";
import { qemuImgCheck, qemuImgInfo } from "../../src/tools/qemu-img.ts";
import { runTool } from "../../src/tools/run.ts";
import { xfsRepairCheck } from "../../src/tools/xfsprogs.ts";
import { isoBootReport, isoExtract, isoFiles, isoToc } from "../../src/tools/xorriso.ts";
import { openssl, opensslKeyPair } from "../signing/openssl-keys.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import {
  buildAsset,
  compatibleExtensions,
  type PreparedVersion,
  prepareVersion,
  profileFor,
  testSchematic,
} from "./helpers.ts";

const mib = 1024 * 1024;
const sector = 512;
const epoch = 1700000000;
const metaValue = "hello from META";

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { maxBuffer: 64 * mib }).toString("utf8");
}

async function sha256(path: string, start?: number, end?: number): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path, { start, end }), hash);
  return hash.digest("hex");
}

/** A partition as sfdisk reads it (start and size in sectors). */
function partition(table: SfdiskTable, name: string) {
  const found = table.partitions.find((p) => p.name === name);
  assert.ok(found, `partition ${name} in ${table.partitions.map((p) => p.name).join(",")}`);
  return found;
}

/** Copies one partition out of the image (sparse, with dd) for a file system checker. */
function cutPartition(image: string, table: SfdiskTable, name: string, out: string): string {
  const p = partition(table, name);
  sh("dd", [
    `if=${image}`,
    `of=${out}`,
    "bs=1M",
    "iflag=skip_bytes,count_bytes",
    `skip=${p.start * sector}`,
    `count=${p.size * sector}`,
    "conv=sparse",
    "status=none",
  ]);
  return out;
}

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(path, { start: offset, end: offset + length - 1 }))
    chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("imager: ISOs and disk images", () => {
  let fixture: ReleaseFixture;
  let out: string;
  const prepared = new Map<string, PreparedVersion>();
  const schematic = testSchematic(compatibleExtensions, {
    extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
    meta: [{ key: 0xc, value: metaValue }],
  });
  const v = (version: string) => prepared.get(version) as PreparedVersion;
  /** metal-amd64.raw per version, built once (at `epoch`) for the tests that read it. */
  const raws = new Map<string, Promise<{ path: string; seconds: number; dir: string }>>();
  const rawOf = (version: string) => {
    const known = raws.get(version);
    if (known !== undefined) return known;
    const dir = join(out, `raw-${version}`);
    const built = mkdir(dir, { recursive: true }).then(async () => ({
      ...(await buildAsset(v(version), schematic, "metal-amd64.raw", dir, { mtime: epoch })),
      dir,
    }));
    raws.set(version, built);
    return built;
  };

  before(async () => {
    fixture = await openReleaseFixture(["v1.8.2", "v1.10.3"]);
    for (const version of ["v1.8.2", "v1.10.3"])
      prepared.set(version, await prepareVersion(fixture, version, compatibleExtensions));
    out = await mkdtemp(join(fixture.scratch, "media-"));
  });
  after(async () => {
    await fixture?.close();
  });

  test("profiles: ISOs and disk images keep platform, args and META; boot loader, size and qemu options by platform", () => {
    const iso18 = profileFor(v("v1.8.2"), schematic, "nocloud-amd64.iso");
    assert.equal(iso18.platform, "nocloud");
    assert.equal(iso18.bootloader, "grub");
    assert.deepEqual(iso18.schematic.extraKernelArgs, ["-consoleblank", "testbed.extra=yes"]);
    assert.deepEqual(iso18.schematic.meta, [{ key: 0xc, value: metaValue }]);
    assert.equal(iso18.inputs.extensions.length, compatibleExtensions.length);
    assert.equal(profileFor(v("v1.10.3"), schematic, "metal-amd64.iso").bootloader, "dual-boot");
    // 1.10 and 1.11 ISOs are hybrid on every arch (talos pkg/imager/out.go outISO); arm64 gets sd-boot only from 1.12.
    assert.equal(profileFor(v("v1.10.3"), schematic, "metal-arm64.iso").bootloader, "dual-boot");
    assert.equal(profileFor(v("v1.10.3"), schematic, "metal-amd64-secureboot.iso").bootloader, "sd-boot");

    // The schematic's boot loader (talos pkg/imager/profile/output.go selectBootloader, image-factory
    // EnhanceFromSchematic): disk images take it at any version, ISOs from 1.12 (ISOSupportsSettingBootloader),
    // Secure Boot always uses sd-boot; the size follows the boot loader.
    const chooser = { ...schematic, customization: { ...schematic.customization, bootloader: "sd-boot" as const } };
    const sdRaw = profileFor(v("v1.10.3"), chooser, "metal-amd64.raw");
    assert.equal(sdRaw.bootloader, "sd-boot");
    assert.equal(sdRaw.disk?.sizeBytes, 1246 * mib);
    assert.equal(profileFor(v("v1.10.3"), chooser, "metal-amd64.iso").bootloader, "dual-boot");
    assert.equal(profileFor(v("v1.10.3"), chooser, "metal-amd64-secureboot.raw").bootloader, "sd-boot");
    const grubChooser = { ...schematic, customization: { ...schematic.customization, bootloader: "grub" as const } };
    assert.equal(profileFor(v("v1.10.3"), grubChooser, "metal-amd64.raw").bootloader, "grub");
    const placeholder = `sha256:${"0".repeat(64)}`;
    const iso112 = createBuildProfile(
      parseAssetRequest(schematicId(grubChooser), "v1.12.0", "metal-amd64.iso"),
      grubChooser,
      {
        imager: placeholder,
        extensions: compatibleExtensions.map((name) => ({ name: `siderolabs/${name}`, digest: placeholder })),
      },
    );
    assert.equal(iso112.bootloader, "grub", "an ISO takes the choice from 1.12");

    // metal: 1246 MiB; 1.10 dual-boot adds BIOS (1 MiB) + BOOT (1000 MiB); 1.11 BOOT is 2000 MiB.
    const raw18 = profileFor(v("v1.8.2"), schematic, "metal-amd64.raw");
    assert.deepEqual(raw18.disk, { format: "raw", compression: "none", sizeBytes: 1246 * mib });
    assert.equal(profileFor(v("v1.10.3"), schematic, "metal-amd64.raw.zst").disk?.sizeBytes, 2247 * mib);
    assert.equal(profileFor(v("v1.10.3"), schematic, "metal-amd64.raw.zst").disk?.compression, "zst");
    // azure: 8 GiB, VHD fixed; its options are not handed to another format.
    assert.deepEqual(profileFor(v("v1.8.2"), schematic, "azure-amd64.vhd").disk, {
      format: "vhd",
      compression: "none",
      sizeBytes: 8192 * mib,
      formatOptions: "subformat=fixed,force_size",
    });
    // every qcow2 gets cluster_size=8k (image-factory internal/profile/profile.go ParseFromPath); a platform's
    // options for another format (azure's VHD ones) are not handed to qcow2
    assert.equal(profileFor(v("v1.8.2"), schematic, "azure-amd64.qcow2").disk?.formatOptions, "cluster_size=8k");
    assert.equal(profileFor(v("v1.8.2"), schematic, "metal-amd64.qcow2").disk?.formatOptions, "cluster_size=8k");
    assert.equal(profileFor(v("v1.8.2"), schematic, "metal-amd64.vhd").disk?.formatOptions, undefined);
    assert.equal(profileFor(v("v1.8.2"), schematic, "exoscale-amd64.qcow2").disk?.formatOptions, "cluster_size=8k");
    // No defaults for equinixMetal: image-factory's 8 GiB.
    assert.equal(profileFor(v("v1.8.2"), schematic, "equinixMetal-amd64.raw").disk?.sizeBytes, 8192 * mib);
    const hashes = [
      "metal-amd64.raw",
      "metal-amd64.raw.xz",
      "metal-amd64.qcow2",
      "nocloud-amd64.raw",
      "metal-amd64.iso",
    ].map((path) => profileHash(profileFor(v("v1.8.2"), schematic, path)));
    assert.equal(new Set(hashes).size, hashes.length, "every format, compression and platform has its own key");
  });

  test("Talos 1.10 metal-amd64.iso: hybrid (GRUB BIOS + systemd-boot UEFI), volume id, ISO cmdline", async () => {
    const dir = join(out, "iso-1.10");
    await mkdir(dir);
    const { path, seconds } = await buildAsset(v("v1.10.3"), schematic, "metal-amd64.iso", dir, { mtime: epoch });
    console.log(`v1.10.3 ISO: ${seconds} s`);
    assert.match(await isoToc(path), /Volume id\s*:\s*'TALOS_V1_10_3'/);
    const report = await isoBootReport(path);
    assert.match(report, /El Torito boot img.*BIOS/);
    assert.match(report, /El Torito boot img.*UEFI/);
    // The appended efiboot.img is a GPT partition of type EFI System (C12A7328-…, stored mixed-endian).
    assert.match(report, /GPT type GUID\s*:\s*2\s+28732ac11ff8d211ba4b00a0c93ec93b/, report);
    const files = await isoFiles(path);
    for (const f of [
      "/boot/vmlinuz",
      "/boot/initramfs.xz",
      "/boot/grub/grub.cfg",
      "/EFI/BOOT/BOOTX64.EFI",
      "/EFI/Linux/Talos-v1.10.3.efi",
      "/loader/loader.conf",
    ])
      assert.ok(files.includes(f), `${f} in ${files.join(" ")}`);
    const cfg = join(dir, "grub.cfg");
    await isoExtract(path, "/boot/grub/grub.cfg", cfg);
    const linux = (await readFile(cfg, "utf8")).split("\n").find((l) => l.trim().startsWith("linux "));
    const args = (linux ?? "").trim().split(/\s+/);
    assert.equal(args[1], "/boot/vmlinuz");
    for (const arg of ["talos.platform=metal", "talos.halt_if_installed=1", "selinux=1", "testbed.extra=yes"])
      assert.ok(args.includes(arg), `${arg} in ${linux}`);
    assert.ok(!args.some((a) => a.startsWith("consoleblank")), linux);
    // ISOs carry META on the command line: base64 of "0xc=<value>".
    const env = `talos.environment=INSTALLER_META_BASE64=${Buffer.from(`0xc=${metaValue}`).toString("base64")}`;
    assert.ok(args.includes(env), `${env} in ${linux}`);
    // The UKI in the ISO embeds the same ISO command line, then (Talos ≥ 1.10) the profiles main and "reset"
    // with that command line + talos.experimental.wipe=system (pkg/imager/imager.go buildUKI for ISOs).
    const uki = join(dir, "uki.efi");
    await isoExtract(path, "/EFI/Linux/Talos-v1.10.3.efi", uki);
    const ukiBytes = await readFile(uki);
    const sections = (await objdumpSections(uki)).slice(-9);
    const text = (i: number) => {
      const s = sections[i] as ObjdumpSection;
      return ukiBytes.subarray(s.fileOffset, s.fileOffset + s.size).toString("utf8");
    };
    assert.deepEqual(
      sections.map((s) => s.name),
      [".osrel", ".cmdline", ".uname", ".splash", ".linux", ".initrd", ".profile", ".profile", ".cmdline"],
    );
    const ukiCmdline = text(1);
    assert.ok(ukiCmdline.split(" ").includes("talos.halt_if_installed=1"), ukiCmdline);
    assert.ok(ukiCmdline.includes(env), ukiCmdline);
    assert.equal(text(6), "ID=main");
    assert.equal(text(7), "ID=reset\nTITLE=Reset system disk");
    assert.equal(text(8), `${ukiCmdline} talos.experimental.wipe=system`);
  });

  test("Talos 1.8 metal-amd64.iso: GRUB ISO (grub-mkrescue: BIOS and UEFI El Torito), volume id", async () => {
    const dir = join(out, "iso-1.8");
    await mkdir(dir);
    const { path } = await buildAsset(v("v1.8.2"), schematic, "metal-amd64.iso", dir, { mtime: epoch });
    assert.match(await isoToc(path), /Volume id\s*:\s*'TALOS_V1_8_2'/);
    const report = await isoBootReport(path);
    assert.match(report, /El Torito boot img.*BIOS/);
    assert.match(report, /El Torito boot img.*UEFI/);
    const files = await isoFiles(path);
    assert.ok(!files.some((f) => f.startsWith("/EFI/Linux/")), "no UKI before 1.10");
    const cfg = join(dir, "grub.cfg");
    await isoExtract(path, "/boot/grub/grub.cfg", cfg);
    const text = await readFile(cfg, "utf8");
    assert.match(text, /menuentry "Talos ISO"/);
    assert.match(text, /menuentry "Reset Talos installation"/);
    assert.match(text, /linux \/boot\/vmlinuz talos\.platform=metal console=tty0 .*talos\.halt_if_installed=1/);
  });

  async function checkDisk(
    version: string,
    expected: { names: string[]; efiMiB: number; meta: Record<string, string> },
  ) {
    const built = await rawOf(version);
    const dir = built.dir;
    console.log(`${version} raw: ${built.seconds} s`);
    const image = built.path;
    assert.match(await sgdiskVerify(image), /No problems found/);
    const table = await sfdiskJson(image);
    assert.equal(table.label, "gpt");
    assert.deepEqual(
      table.partitions.map((p) => p.name),
      expected.names,
    );
    assert.equal(partition(table, "EFI").size * sector, expected.efiMiB * mib);
    assert.equal(partition(table, "META").size * sector, mib);
    if (expected.names.includes("BOOT")) {
      assert.equal(partition(table, "BOOT").size * sector, 1000 * mib);
      assert.equal(partition(table, "BIOS").size * sector, mib);
      await xfsRepairCheck(cutPartition(image, table, "BOOT", join(dir, "boot.img")));
    }
    await fsckVfat(cutPartition(image, table, "EFI", join(dir, "efi.img")));
    const efiListing = await mdirRecursive(join(dir, "efi.img"));
    assert.ok(
      efiListing.some((l) => /EFI\/boot\/BOOTX64\.efi$/i.test(l)),
      efiListing.join("\n"),
    );
    const meta = partition(table, "META");
    const records = decodeMetaPartition(await readRange(image, meta.start * sector, meta.size * sector));
    assert.deepEqual(
      Object.fromEntries(records.map((r) => [`0x${r.tag.toString(16)}`, Buffer.from(r.value).toString()])),
      expected.meta,
    );
    assert.equal(records.length, Object.keys(expected.meta).length, "no tag twice");
    return { image, table, efiListing, dir };
  }

  test("Talos 1.10 metal-amd64.raw: dual-boot layout, checked by sgdisk/sfdisk/fsck.vfat/xfs_repair; META with 0x11", async () => {
    const { efiListing, dir } = await checkDisk("v1.10.3", {
      names: ["EFI", "BIOS", "BOOT", "META"],
      efiMiB: 1101,
      meta: { "0xc": metaValue, "0x11": "dual-boot" },
    });
    assert.ok(efiListing.some((l) => /EFI\/Linux\/Talos-v1\.10\.3\.efi$/.test(l)));
    assert.match(await mtype(join(dir, "efi.img"), "loader/loader.conf"), /^timeout 10$/m);
    // Its UKI: the main profile, then "reset-maintenance" with the main command line + the STATE/EPHEMERAL
    // wipe (pkg/imager/imager.go buildUKI for disk images).
    const uki = join(dir, "disk-uki.efi");
    sh("mcopy", ["-i", join(dir, "efi.img"), "::EFI/Linux/Talos-v1.10.3.efi", uki]);
    const ukiBytes = await readFile(uki);
    const sections = (await objdumpSections(uki)).slice(-4);
    const text = (s: ObjdumpSection) => ukiBytes.subarray(s.fileOffset, s.fileOffset + s.size).toString("utf8");
    const main = (await objdumpSections(uki)).find((s) => s.name === ".cmdline") as ObjdumpSection;
    assert.deepEqual(
      sections.map((s) => s.name),
      [".initrd", ".profile", ".profile", ".cmdline"],
    );
    assert.deepEqual(sections.slice(1).map(text), [
      "ID=main",
      "ID=reset-maintenance\nTITLE=Reset to maintenance mode",
      `${text(main)} talos.experimental.wipe=system:EPHEMERAL,STATE`,
    ]);
  });

  test("Talos 1.8 metal-amd64.raw: GRUB layout (EFI 100 MiB), META from the schematic", async () => {
    await checkDisk("v1.8.2", { names: ["EFI", "BIOS", "BOOT", "META"], efiMiB: 100, meta: { "0xc": metaValue } });
  });

  test("reproducible: GPT, META and the EFI FAT are byte-identical across two builds", async () => {
    // The first build is the one the 1.10 layout test reads (built once); the second is made here.
    const digests: string[][] = [];
    const again = join(out, "repro");
    await mkdir(again);
    for (const path of [
      (await rawOf("v1.10.3")).path,
      (await buildAsset(v("v1.10.3"), schematic, "metal-amd64.raw", again, { mtime: epoch })).path,
    ]) {
      const table = await sfdiskJson(path);
      const size = Number(sh("stat", ["-c", "%s", path]).trim());
      const part = (name: string) => partition(table, name);
      digests.push([
        // Protective MBR minus GRUB's boot code (fixed too, but the MBR's table is what matters) + primary GPT.
        await sha256(path, 0, 34 * sector - 1),
        await sha256(path, size - 33 * sector, size - 1),
        await sha256(path, part("META").start * sector, (part("META").start + part("META").size) * sector - 1),
        await sha256(path, part("EFI").start * sector, (part("EFI").start + part("EFI").size) * sector - 1),
      ]);
    }
    await rm(again, { recursive: true });
    assert.deepEqual(digests[0], digests[1]);
  });

  test("formats: .raw.zst, .qcow2, .raw.tar.gz, .qcow2.tar.gz and .ova.xz from the 1.8 image", async () => {
    const dir = join(out, "formats");
    await mkdir(dir);
    const rawSize = 1246 * mib;
    const formatBuild = async (path: string) => {
      const built = await buildAsset(v("v1.8.2"), schematic, path, dir, { mtime: epoch });
      console.log(`v1.8.2 ${path}: ${built.seconds} s`);
      return built;
    };
    const zst = await formatBuild("metal-amd64.raw.zst");
    const unpacked = join(dir, "unpacked.raw");
    sh("zstd", ["-d", "-q", "-o", unpacked, zst.path]);
    assert.equal(Number(sh("stat", ["-c", "%s", unpacked]).trim()), rawSize);
    assert.match(await sgdiskVerify(unpacked), /No problems found/);
    await rm(unpacked);
    const qcow2 = await formatBuild("exoscale-amd64.qcow2");
    await qemuImgCheck(qcow2.path, { format: "qcow2" });
    const qInfo = await qemuImgInfo(qcow2.path);
    assert.equal(qInfo.format, "qcow2");
    assert.equal(qInfo["cluster-size"], 8192);
    assert.equal(qInfo["virtual-size"], 10 * 1024 * mib);
    const tgz = await formatBuild("gcp-amd64.raw.tar.gz");
    assert.match(
      sh("tar", ["-tvzf", tgz.path]).trim(),
      new RegExp(`^-\\S+ (?:root/root|0/0)\\s+${8192 * mib} 2023-11-14 \\d\\d:\\d\\d disk\\.raw$`),
    );
    // Compressed formats other than raw, as upstream builds them (image-factory ParseFromPath takes any
    // compression with any format; Talos pkg/imager/post.go tars whatever image it made as disk.raw).
    const qtgz = await formatBuild("metal-amd64.qcow2.tar.gz");
    assert.match(sh("tar", ["-tzf", qtgz.path]).trim(), /^disk\.raw$/);
    const member = join(dir, "member");
    await mkdir(member);
    sh("tar", ["-xzf", qtgz.path, "-C", member]);
    const mInfo = await qemuImgInfo(join(member, "disk.raw"));
    assert.equal(mInfo.format, "qcow2", "the member named disk.raw holds the qcow2");
    assert.equal(mInfo["cluster-size"], 8192, "every qcow2 gets cluster_size=8k");
    await rm(member, { recursive: true });
    // An OVA (its members checked) and, compressed, one of a format other than raw; metal's 1246 MiB disk.
    const ovaXz = await formatBuild("metal-amd64.ova.xz");
    assert.deepEqual(
      sh("sh", ["-c", `xz -dc '${ovaXz.path}' | tar -tf -`])
        .trim()
        .split("\n"),
      ["disk.ovf", "disk.mf", "disk.vmdk"],
    );
    assert.deepEqual(
      (await readdir(dir)).sort(),
      [
        "exoscale-amd64.qcow2",
        "gcp-amd64.raw.tar.gz",
        "metal-amd64.ova.xz",
        "metal-amd64.qcow2.tar.gz",
        "metal-amd64.raw.zst",
      ],
      "nothing but the outputs is left behind",
    );
  });

  test("Talos 1.8 secure boot: an sd-boot disk and an installer with vmlinuz.efi.signed, systemd-boot and UKI signed", async () => {
    // talos pkg/imager/out.go: buildImage (ImageSecureboot → sd-boot, v1.8 bootloader.New) and outInstaller
    // (SecureBootEnabled without quirks UseSDBootForUEFI: the UKI as `vmlinuz.efi.signed`); imager.go signs both.
    const dir = join(out, "secureboot-1.8");
    await mkdir(dir);
    const { key, cert } = await opensslKeyPair(dir, "uki-signing");
    const pcrKey = join(dir, "pcr.key");
    await runTool(openssl, ["genrsa", "-out", pcrKey, "2048"]);
    const secureBoot = { uki: await fileDigestSigner(key, cert), pcr: await fileKeySigner(pcrKey) };
    const other = await opensslKeyPair(dir, "someone-else");
    const signedBy = (file: string, certificate: string) =>
      spawnSync("sbverify", ["--cert", certificate, file]).status === 0;
    const assertSigned = (file: string, what: string) => {
      assert.ok(signedBy(file, cert), `${what}: sbverify --cert <the signing certificate>`);
      assert.equal(signedBy(file, other.cert), false, `${what}: another certificate is refused`);
    };

    const disk = await buildAsset(v("v1.8.2"), schematic, "metal-amd64-secureboot.raw", dir, { secureBoot });
    assert.equal(disk.profile.bootloader, "sd-boot");
    assert.match(await sgdiskVerify(disk.path), /No problems found/);
    const table = await sfdiskJson(disk.path);
    assert.deepEqual(
      table.partitions.map((p) => p.name),
      ["EFI", "META"],
    );
    const efi = cutPartition(disk.path, table, "EFI", join(dir, "efi.img"));
    await fsckVfat(efi);
    const listing = (await mdirRecursive(efi)).filter((l) => !l.endsWith("/"));
    for (const path of ["EFI/boot/BOOTX64.efi", "EFI/Linux/Talos-v1.8.2.efi", "loader/loader.conf"]) {
      assert.ok(
        listing.some((l) => l.toLowerCase().endsWith(path.toLowerCase())),
        `${path} in ${listing.join(" ")}`,
      );
      if (path.endsWith(".efi")) {
        const copy = join(dir, path.replaceAll("/", "_"));
        sh("mcopy", ["-i", efi, `::${path}`, copy]);
        assertSigned(copy, `disk ${path}`);
      }
    }
    assert.ok(!listing.some((l) => /loader\/keys/i.test(l)), "no enrollment keys on a disk image");
    await rm(disk.path);

    const installer = await buildAsset(v("v1.8.2"), schematic, "installer-amd64-secureboot.tar", dir, { secureBoot });
    const unpacked = join(dir, "installer");
    await mkdir(unpacked);
    sh("tar", ["-xf", installer.path, "-C", unpacked]);
    const [entry] = JSON.parse(await readFile(join(unpacked, "manifest.json"), "utf8")) as { Layers: string[] }[];
    const layer = join(unpacked, entry?.Layers.at(-1) as string);
    const files = sh("tar", ["-tzf", layer])
      .trim()
      .split("\n")
      .filter((p) => !p.endsWith("/"));
    assert.deepEqual(files, ["usr/install/amd64/systemd-boot.efi", "usr/install/amd64/vmlinuz.efi.signed"]);
    sh("tar", ["-xzf", layer, "-C", unpacked]);
    for (const file of files) assertSigned(join(unpacked, file), `installer ${file}`);
  });

  test("secure boot: an ISO, a disk image or an installer without signing keys is refused (400)", async () => {
    const dir = join(out, "secureboot");
    await mkdir(dir);
    await assert.rejects(
      buildAsset(v("v1.10.3"), schematic, "metal-amd64-secureboot.iso", dir),
      (err: unknown) => isAppError(err, "BadRequest") && /secure boot is disabled/.test(err.message),
    );
    for (const path of ["metal-amd64-secureboot.raw.xz", "installer-amd64-secureboot.tar"])
      await assert.rejects(
        buildAsset(v("v1.10.3"), schematic, path, dir),
        (err: unknown) => isAppError(err, "BadRequest") && /secure boot is disabled/.test(err.message),
        path,
      );
    assert.deepEqual(await readdir(dir), [], "nothing is left behind");
  });
});
