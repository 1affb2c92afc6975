// Disk image building blocks checked with the real tools: fsck.vfat and mtools for the EFI FAT,
// xfs_repair for BOOT, sgdisk/sfdisk for the assembled disk, META read back at its partition offset, the
// GRUB BIOS embedding by its bytes, and the output formats with qemu-img / tar / the decompressors.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { GptType, guidFromLabel } from "../../src/formats/gpt.ts";
import { decodeMetaPartition, MetaTag } from "../../src/formats/meta-partition.ts";
import { parseVhdFooter } from "../../src/formats/vhd.ts";
import { readEmbeddedDescriptor } from "../../src/formats/vmdk.ts";
import { xfsProtofile } from "../../src/formats/xfs-protofile.ts";
import { assembleDisk, readDiskBytes, readDiskGpt } from "../../src/imager/disk/assemble.ts";
import { buildFatImage, directoriesFor } from "../../src/imager/disk/fat.ts";
import { buildGrubCoreImage, grubBootImagePath } from "../../src/imager/disk/grub-bios.ts";
import { buildOva, compressDiskImage, convertDiskImage } from "../../src/imager/disk/outputs.ts";
import { buildXfsImage } from "../../src/imager/disk/xfs.ts";
import { diskImageBytes, diskImageDefaults, diskLayoutFor } from "../../src/talos/disk-layout.ts";
import { bootloaderFor, rulesFor } from "../../src/talos/version-rules.ts";
import { fsckVfat } from "../../src/tools/dosfstools.ts";
import { sfdiskJson, sgdiskVerify } from "../../src/tools/gdisk.ts";
import { mdirRecursive, mtype } from "../../src/tools/mtools.ts";
import { qemuImgCheck, qemuImgInfo } from "../../src/tools/qemu-img.ts";
import { xfsRepairCheck } from "../../src/tools/xfsprogs.ts";
import { buildLocalTalosDisk, cutOut, writeStandInBootFiles } from "./local-disk.ts";

const mib = 1024 * 1024;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "disk-test-"));
});
after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const sha256 = async (path: string) => {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
};

describe("partition layouts per version and boot loader", () => {
  const mibs = (v: string, b: "grub" | "sd-boot" | "dual-boot") =>
    diskLayoutFor(rulesFor(v), b).map((p) => [p.label, p.sizeBytes === undefined ? "rest" : p.sizeBytes / mib]);
  test("GRUB: EFI 100 MiB, BIOS 1 MiB, BOOT 1000 MiB, META 1 MiB (Talos 1.8)", () => {
    assert.deepEqual(mibs("v1.8.2", "grub"), [
      ["EFI", 100],
      ["BIOS", 1],
      ["BOOT", 1000],
      ["META", 1],
    ]);
  });
  test("BOOT is 2000 MiB from 1.11; sd-boot's EFI is 100 + 1 + BOOT", () => {
    assert.deepEqual(mibs("v1.11.0", "sd-boot"), [
      ["EFI", 2101],
      ["META", 1],
    ]);
    assert.deepEqual(mibs("v1.10.3", "dual-boot"), [
      ["EFI", 1101],
      ["BIOS", 1],
      ["BOOT", 1000],
      ["META", 1],
    ]);
  });
  // arm64 rows: the layout is the boot loader's (grub.go / sdboot.go / dual.go PrepareBootPartitions in talos
  // internal/app/machined/pkg/runtime/v1alpha1/bootloader), whatever the arch; the arch only picks the boot
  // loader (pkg/imager/profile/output.go selectBootloader): GRUB before UseSDBootForUEFI (1.10), sd-boot from
  // it, never dual-boot. GRUB's BIOS partition stays on arm64 disks, empty (test/imager/arm64-media.test.ts).
  const arm64Disk = (v: string) =>
    mibs(v, bootloaderFor(rulesFor(v), { arch: "arm64", secureBoot: false, output: "disk" }));
  for (const [version, layout] of [
    [
      "v1.8.2",
      [
        ["EFI", 100],
        ["BIOS", 1],
        ["BOOT", 1000],
        ["META", 1],
      ],
    ],
    [
      "v1.10.3",
      [
        ["EFI", 1101],
        ["META", 1],
      ],
    ],
    [
      "v1.11.0",
      [
        ["EFI", 2101],
        ["META", 1],
      ],
    ],
  ] as const)
    test(`arm64 ${version}: ${layout.map(([label, size]) => `${label} ${size} MiB`).join(", ")}`, () => {
      assert.deepEqual(arm64Disk(version), layout);
    });
  test("before 1.8 images carry STATE (100 MiB) and EPHEMERAL (the rest), without file systems", () => {
    assert.deepEqual(mibs("v1.7.6", "grub").slice(4), [
      ["STATE", 100],
      ["EPHEMERAL", "rest"],
    ]);
    assert.deepEqual(
      diskLayoutFor(rulesFor("v1.7.6"), "grub")
        .slice(4)
        .map((p) => p.content),
      ["none", "none"],
    );
  });
  test("image size: metal 1246 MiB, plus BOOT growth, plus BIOS + BOOT for dual-boot", () => {
    const base = diskImageDefaults("metal").baseBytes;
    assert.equal(diskImageBytes(base, rulesFor("v1.8.2"), "grub") / mib, 1246);
    assert.equal(diskImageBytes(base, rulesFor("v1.11.0"), "dual-boot") / mib, 1246 + 1000 + 1 + 2000);
    assert.deepEqual(diskImageDefaults("azure"), {
      baseBytes: 8192 * mib,
      format: "vpc",
      formatOptions: "subformat=fixed,force_size",
    });
  });
});

describe("EFI FAT image", () => {
  test("made with mkfs.vfat, filled with mtools: fsck.vfat -n clean, files listed and readable, byte-identical", async () => {
    const payload = join(dir, "payload.bin");
    await writeFile(payload, randomBytes(300_000));
    const files = new Map<string, string | Uint8Array>([
      ["EFI/boot/BOOTX64.efi", payload],
      ["loader/loader.conf", Buffer.from("timeout 10\n")],
    ]);
    const a = join(dir, "a.img");
    const b = join(dir, "b.img");
    await buildFatImage(a, { sizeBytes: 100 * mib, label: "EFI", files, mtime: 1700000000 });
    await buildFatImage(b, { sizeBytes: 100 * mib, label: "EFI", files, mtime: 1700000000 });
    await fsckVfat(a);
    const listing = await mdirRecursive(a);
    assert.ok(
      listing.some((l) => /EFI\/boot\/BOOTX64\.efi$/i.test(l)),
      listing.join("\n"),
    );
    assert.equal(await mtype(a, "loader/loader.conf"), "timeout 10\n");
    assert.equal(await sha256(a), await sha256(b));
    assert.deepEqual(directoriesFor(["EFI/Linux/x.efi", "EFI/boot/y", "loader/z"]), [
      "EFI",
      "loader",
      "EFI/Linux",
      "EFI/boot",
    ]);
  });
});

describe("BOOT XFS image from a protofile", () => {
  test("the protofile lists files before directories, owners 0:0, modes and symlink targets", async () => {
    const tree = join(dir, "proto-tree");
    await mkdir(join(tree, "grub"), { recursive: true });
    await writeFile(join(tree, "grub", "grub.cfg"), "x", { mode: 0o600 });
    await writeFile(join(tree, "z.txt"), "z", { mode: 0o644 });
    await symlink("z.txt", join(tree, "link"));
    const text = await xfsProtofile(tree);
    assert.equal(
      text,
      [
        "/",
        "0 0",
        "d--755 0 0",
        "link l--777 0 0 z.txt".replace(/^/, " "),
        ` z.txt ---644 0 0 ${tree}/z.txt`,
        " grub d--755 0 0",
        `  grub.cfg ---600 0 0 ${tree}/grub/grub.cfg`,
        " $",
        "$",
        "",
      ].join("\n"),
    );
    await assert.rejects(async () => {
      await writeFile(join(tree, "has space"), "");
      await xfsProtofile(tree);
    }, /whitespace/);
    await rm(join(tree, "has space"));
  });

  test("given a timestamp, the XFS image is byte-identical across builds (mkfs.xfs under a stopped clock)", async () => {
    const tree = join(dir, "repro-tree");
    await mkdir(join(tree, "A"), { recursive: true });
    await writeFile(join(tree, "A", "vmlinuz"), randomBytes(mib));
    const build = async (name: string, mtime: number) => {
      const image = join(dir, name);
      await buildXfsImage(image, { sizeBytes: 300 * mib, label: "BOOT", sourceDir: tree, mtime });
      return image;
    };
    const one = await build("repro-1.img", 1700000000);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the wall clock moves on between the builds
    const two = await build("repro-2.img", 1700000000);
    const other = await build("repro-3.img", 1700000600);
    assert.equal(await sha256(one), await sha256(two));
    assert.notEqual(await sha256(one), await sha256(other), "another timestamp, other bytes");
    await xfsRepairCheck(one);
    for (const image of [one, two, other]) await rm(image);
  });

  test("mkfs.xfs -p builds it without a mount; xfs_repair -n is clean; label and UUID as upstream", async () => {
    const tree = join(dir, "boot-tree");
    await mkdir(join(tree, "A"), { recursive: true });
    await writeFile(join(tree, "A", "vmlinuz"), randomBytes(2 * mib));
    const image = join(dir, "boot.img");
    const result = await buildXfsImage(image, {
      sizeBytes: 1000 * mib,
      label: "BOOT",
      sourceDir: tree,
      configFile: rulesFor("v1.10.3").xfsMkfsConfig,
    });
    await xfsRepairCheck(image);
    assert.equal(result.uuid, guidFromLabel("BOOT"));
    // lts_6.12.conf is not in xfsprogs 6.1: the closest older LTS config is used.
    assert.match(result.configFile ?? "", /lts_6\.1\.conf$/);
    // Debian's mkfs.xfs 6.1 rejects the nrext64 line of its own config files; it is left out.
    assert.deepEqual(result.droppedOptions, ["metadata.nrext64=0"]);
    const blkid = execFileSync("blkid", ["-o", "export", image]).toString();
    assert.match(blkid, /LABEL=BOOT/);
    assert.match(blkid, new RegExp(`UUID=${guidFromLabel("BOOT").toLowerCase()}`));
    assert.ok((await stat(image)).blocks * 512 < 200 * mib, "the image stays sparse");
  });
});

describe("assembled disk", () => {
  test("META readback at the partition offset; GRUB's core.img and boot code embedded with the blocklists patched", async () => {
    const core = join(dir, "core.img");
    await buildGrubCoreImage(core);
    const disk = join(dir, "meta-disk.raw");
    const { encodeMetaPartition } = await import("../../src/formats/meta-partition.ts");
    const layout = await assembleDisk({
      path: disk,
      sizeBytes: 16 * mib,
      partitions: [
        { name: "BIOS", typeGuid: GptType.BiosBoot, sizeBytes: mib },
        {
          name: "META",
          typeGuid: GptType.LinuxFilesystem,
          sizeBytes: mib,
          content: { data: encodeMetaPartition([{ tag: 0xc, value: Buffer.from("hello") }]) },
        },
      ],
      grubBios: { coreImage: core },
    });
    const meta = layout.partitions[1];
    assert.ok(meta);
    const records = decodeMetaPartition(await readDiskBytes(disk, meta.offsetBytes, meta.sizeBytes));
    assert.deepEqual(
      records.map((r) => [r.tag, Buffer.from(r.value).toString()]),
      [[0xc, "hello"]],
    );
    const bios = layout.partitions[0];
    assert.ok(bios);
    const coreBytes = await readFile(core);
    const embedded = await readDiskBytes(disk, bios.offsetBytes, coreBytes.length);
    assert.equal(embedded.readBigUInt64LE(0x1f4), BigInt(bios.firstLba + 1));
    assert.equal(embedded.readUInt16LE(0x1fc), Math.ceil(coreBytes.length / 512) - 1);
    assert.ok(embedded.subarray(0x200).equals(coreBytes.subarray(0x200)), "the rest of core.img is unchanged");
    const mbr = await readDiskBytes(disk, 0, 512);
    const bootImg = await readFile(grubBootImagePath());
    assert.ok(mbr.subarray(0, 3).equals(bootImg.subarray(0, 3)), "jump");
    assert.ok(mbr.subarray(0x68, 0x1b8).equals(bootImg.subarray(0x68, 0x1b8)), "boot code");
    assert.equal(mbr.readBigUInt64LE(0x5c), BigInt(bios.firstLba));
    assert.equal(mbr[0x64], 0xff);
    assert.deepEqual([mbr[0x66], mbr[0x67]], [0x90, 0x90]);
    assert.equal(mbr[0x1be + 4], 0xee, "the protective partition entry is kept");
    assert.match(await sgdiskVerify(disk), /No problems found/);
  });

  test("a GRUB disk (Talos 1.8) and a dual-boot disk (1.10) from local assets: partitions, file systems, META", async () => {
    const files = await writeStandInBootFiles(dir, { kernel: 3, initramfs: 5, uki: 8 });
    for (const [version, bootloader] of [
      ["v1.8.2", "grub"],
      ["v1.10.3", "dual-boot"],
    ] as const) {
      const out = join(dir, `${bootloader}.raw`);
      const started = performance.now();
      await buildLocalTalosDisk(
        files,
        { out, version, bootloader, scratchDir: dir },
        {
          cmdline: "talos.platform=metal console=ttyS0",
          meta: [{ tag: MetaTag.UserReserved1, value: Buffer.from("from-schematic") }],
        },
      );
      console.log(`${bootloader} disk ${version}: ${Math.round(performance.now() - started)} ms`);
      assert.match(await sgdiskVerify(out), /No problems found/);
      const table = await sfdiskJson(out);
      assert.deepEqual(
        table.partitions.map((p) => p.name),
        ["EFI", "BIOS", "BOOT", "META"],
      );
      const gpt = await readDiskGpt(out);
      const part = (name: string) => gpt.partitions.find((p) => p.name === name) as (typeof gpt.partitions)[number];
      const efi = part("EFI");
      const efiListing = await mdirRecursive(out, { offset: efi.offsetBytes });
      const meta = decodeMetaPartition(await readDiskBytes(out, part("META").offsetBytes, part("META").sizeBytes));
      const metaText = Object.fromEntries(meta.map((r) => [r.tag, Buffer.from(r.value).toString()]));
      if (bootloader === "grub") {
        assert.ok(efiListing.some((l) => /EFI\/boot\/BOOTX64\.efi$/i.test(l)));
        assert.deepEqual(metaText, { [MetaTag.UserReserved1]: "from-schematic" });
      } else {
        assert.ok(
          efiListing.some((l) => /EFI\/Linux\/Talos-v1\.10\.3\.efi$/.test(l)),
          efiListing.join("\n"),
        );
        assert.match(await mtype(out, "loader/loader.conf", { offset: efi.offsetBytes }), /^timeout 10$/m);
        assert.deepEqual(metaText, {
          [MetaTag.UserReserved1]: "from-schematic",
          [MetaTag.DiskImageBootloader]: "dual-boot",
        });
      }
      // BOOT checked by xfs_repair on a copy of the partition.
      const boot = part("BOOT");
      const bootCopy = cutOut(out, { offset: boot.offsetBytes, size: boot.sizeBytes }, join(dir, "boot-copy.img"));
      await xfsRepairCheck(bootCopy);
      await rm(bootCopy);
      const efiCopy = cutOut(out, { offset: efi.offsetBytes, size: efi.sizeBytes }, join(dir, "efi-copy.img"));
      await fsckVfat(efiCopy);
      await rm(efiCopy);
    }
  });
});

describe("disk image outputs", () => {
  let raw: string;
  let rawSha: string;
  before(async () => {
    raw = join(dir, "small.raw");
    await assembleDisk({
      path: raw,
      sizeBytes: 32 * mib,
      partitions: [
        { name: "DATA", typeGuid: GptType.LinuxFilesystem, sizeBytes: 8 * mib, content: { data: randomBytes(mib) } },
      ],
    });
    rawSha = await sha256(raw);
  });

  test("without META values META stays zeroed before 1.13 and is written from 1.13; before 1.8 STATE and EPHEMERAL have no file system", async () => {
    // talos cmd/installer/pkg/install/install.go: META written only with values (v1.7–v1.12), always from
    // v1.13 (image mode's meta.img); v1.7 manifest.go: STATE FilesystemTypeNone, EPHEMERAL NoFilesystem.
    const files = await writeStandInBootFiles(dir, { kernel: 1, initramfs: 1, uki: 2 }, "-nometa");
    const cases = [
      ["v1.7.6", "grub", false],
      ["v1.12.0", "sd-boot", false],
      ["v1.13.0", "sd-boot", true],
    ] as const;
    for (const [version, bootloader, written] of cases) {
      const out = join(dir, `nometa-${version}.raw`);
      await buildLocalTalosDisk(
        files,
        { out, version, bootloader, scratchDir: dir },
        { cmdline: "talos.platform=metal", meta: [] },
      );
      const part = async (name: string) => {
        const found = (await readDiskGpt(out)).partitions.find((p) => p.name === name);
        assert.ok(found, `${version}: no ${name} partition`);
        return found;
      };
      const meta = await part("META");
      const metaBytes = await readDiskBytes(out, meta.offsetBytes, meta.sizeBytes);
      assert.equal(
        metaBytes.some((b) => b !== 0),
        written,
        `${version}: META ${written ? "written" : "zeroed"}`,
      );
      if (written) assert.deepEqual(decodeMetaPartition(metaBytes), []);
      if (version === "v1.7.6")
        for (const name of ["STATE", "EPHEMERAL"]) {
          const p = await part(name);
          const head = await readDiskBytes(out, p.offsetBytes, Math.min(p.sizeBytes, mib));
          assert.ok(
            head.every((b) => b === 0),
            `${name} has no file system`,
          );
        }
      await rm(out);
    }
  });

  test(".xz, .zst and .gz decompress to the raw image", async () => {
    for (const [kind, command] of [
      ["xz", ["xz", "-dc"]],
      ["zst", ["zstd", "-dcq"]],
      ["gz", ["gzip", "-dc"]],
    ] as const) {
      const out = join(dir, `small.raw.${kind}`);
      await compressDiskImage(raw, out, kind);
      const back = join(dir, `back-${kind}.raw`);
      execFileSync("sh", ["-c", `${command.join(" ")} "$1" > "$2"`, "sh", out, back]);
      assert.equal(await sha256(back), rawSha, kind);
    }
    // gzip --no-time: no timestamp in the header.
    assert.equal((await readDiskBytes(join(dir, "small.raw.gz"), 4, 4)).readUInt32LE(0), 0);
  });

  test(".tar.gz holds disk.raw, root-owned, with the given mtime", async () => {
    const out = join(dir, "small.raw.tar.gz");
    await compressDiskImage(raw, out, "tar.gz", { mtime: 1700000000 });
    const listing = execFileSync("tar", [
      "--list",
      "--verbose",
      "--numeric-owner",
      "--full-time",
      "-zf",
      out,
    ]).toString();
    assert.match(listing, /^-rw-r--r-- 0\/0 +33554432 2023-11-14 22:13:20 disk\.raw$/m);
    const extracted = join(dir, "untar");
    await mkdir(extracted);
    execFileSync("tar", ["-xzf", out, "-C", extracted]);
    assert.equal(await sha256(join(extracted, "disk.raw")), rawSha);
  });

  test("qcow2 (cluster_size=8k) and VHD (fixed) pass qemu-img check / info", async () => {
    const qcow2 = join(dir, "small.qcow2");
    await convertDiskImage(raw, qcow2, "qcow2", "cluster_size=8k");
    const info = await qemuImgInfo(qcow2);
    assert.equal(info.format, "qcow2");
    assert.equal(info["cluster-size"], 8192);
    assert.equal(info["virtual-size"], 32 * mib);
    const check = await qemuImgCheck(qcow2);
    assert.equal(check.corruptions ?? 0, 0);
    const vhd = join(dir, "small.vhd");
    await convertDiskImage(raw, vhd, "vpc", "subformat=fixed,force_size");
    const vinfo = await qemuImgInfo(vhd, { format: "vpc" });
    assert.equal(vinfo["virtual-size"], 32 * mib);
    assert.equal((await stat(vhd)).size, 32 * mib + 512, "fixed VHD: the data plus a 512-byte footer");
  });

  test("OVA: disk.ovf, disk.mf, disk.vmdk (streamOptimized) with matching SHA-256 lines", async () => {
    const out = join(dir, "small.ova");
    await buildOva(raw, out, {
      diskSizeBytes: 32 * mib,
      scratchDir: dir,
      mtime: 1700000000,
      rules: rulesFor("v1.12.0"),
    });
    const names = execFileSync("tar", ["-tf", out]).toString().trim().split("\n");
    assert.deepEqual(names, ["disk.ovf", "disk.mf", "disk.vmdk"]);
    const x = join(dir, "ova-x");
    await mkdir(x);
    execFileSync("tar", ["-xf", out, "-C", x]);
    const mf = await readFile(join(x, "disk.mf"), "utf8");
    assert.equal(
      mf,
      `SHA256(disk.vmdk)= ${await sha256(join(x, "disk.vmdk"))}\nSHA256(disk.ovf)= ${await sha256(join(x, "disk.ovf"))}\n`,
    );
    const info = await qemuImgInfo(join(x, "disk.vmdk"));
    assert.equal(info.format, "vmdk");
    assert.equal(
      (info["format-specific"]?.data as { "create-type"?: string } | undefined)?.["create-type"],
      "streamOptimized",
    );
    const ovf = await readFile(join(x, "disk.ovf"), "utf8");
    assert.match(ovf, /ovf:capacity="32"/);
    assert.match(ovf, new RegExp(`ovf:size="${(await stat(join(x, "disk.vmdk"))).size}"`));
  });

  test("qcow2, VHD (fixed and dynamic) and OVA: the same raw image and mtime give the same bytes", async () => {
    const twice = async (name: string, make: (out: string) => Promise<void>) => {
      const [a, b] = [join(dir, `a-${name}`), join(dir, `b-${name}`)];
      await make(a);
      // qemu-img stamps VHDs to the second: let a second pass between the conversions.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await make(b);
      assert.equal(await sha256(a), await sha256(b), name);
      return a;
    };
    const mtime = 1700000000;
    await twice("small.qcow2", (out) => convertDiskImage(raw, out, "qcow2", "cluster_size=8k", { mtime }));
    const fixed = await twice("fixed.vhd", (out) =>
      convertDiskImage(raw, out, "vpc", "subformat=fixed,force_size", { mtime }),
    );
    const dynamic = await twice("dynamic.vhd", (out) => convertDiskImage(raw, out, "vpc", undefined, { mtime }));
    for (const vhd of [fixed, dynamic]) {
      const footer = parseVhdFooter(await readDiskBytes(vhd, (await stat(vhd)).size - 512, 512));
      assert.equal(footer?.timestamp, mtime, "the VHD's time stamp is the mtime");
      assert.ok(footer.checksumValid);
      assert.equal((await qemuImgInfo(vhd, { format: "vpc" })).format, "vpc", "qemu-img accepts the footer");
    }
    const ova = await twice("small.ova", (out) =>
      buildOva(raw, out, { diskSizeBytes: 32 * mib, scratchDir: dir, mtime, rules: rulesFor("v1.12.0") }),
    );
    const x = join(dir, "ova-same");
    await mkdir(x);
    execFileSync("tar", ["-xf", ova, "-C", x]);
    const vmdk = join(x, "disk.vmdk");
    assert.equal(((await qemuImgCheck(vmdk, { format: "vmdk" })).corruptions as number | undefined) ?? 0, 0);
    // Talos's OVA options before 1.11 (pkg/imager/ova/ova.go): compat6,subformat=streamOptimized,adapter_type=lsilogic.
    const descriptor = await readEmbeddedDescriptor(vmdk);
    assert.match(descriptor, /^ddb\.virtualHWVersion = "6"$/m);
    assert.match(descriptor, /^ddb\.adapterType = "lsilogic"$/m);
    assert.match(descriptor, /^createType="streamOptimized"$/m);
    assert.match(
      execFileSync("tar", ["--list", "--verbose", "--numeric-owner", "--full-time", "-f", ova]).toString(),
      /^-rw-r--r-- 0\/0 +\d+ 2023-11-14 22:13:20 disk\.ovf$/m,
    );
  });

  test("the VHD unique id and the VMDK CID follow the raw image's content", async () => {
    const other = join(dir, "other.raw");
    await writeFile(other, randomBytes(mib));
    const ids = async (image: string, name: string) => {
      const vhd = join(dir, `${name}.vhd`);
      await convertDiskImage(image, vhd, "vpc", "subformat=fixed,force_size", { mtime: 0 });
      const footer = parseVhdFooter(await readDiskBytes(vhd, (await stat(vhd)).size - 512, 512));
      const ova = join(dir, `${name}.ova`);
      await buildOva(image, ova, { diskSizeBytes: 32 * mib, scratchDir: dir, mtime: 0, rules: rulesFor("v1.12.0") });
      const x = join(dir, `${name}-x`);
      await mkdir(x);
      execFileSync("tar", ["-xf", ova, "-C", x]);
      const info = await qemuImgInfo(join(x, "disk.vmdk"), { format: "vmdk" });
      return {
        uniqueId: footer?.uniqueId.toString("hex"),
        cid: (info["format-specific"]?.data as { cid?: number } | undefined)?.cid,
      };
    };
    const [mine, theirs] = [await ids(raw, "mine"), await ids(other, "theirs")];
    assert.notEqual(mine.uniqueId, theirs.uniqueId);
    assert.notEqual(mine.cid, theirs.cid);
    // An RFC 9562 version 8 UUID.
    assert.match(mine.uniqueId ?? "", /^[0-9a-f]{12}8[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  });
});
