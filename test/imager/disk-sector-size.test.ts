// The schematic's disk image sector size, customization.diskImage.sectorSize (image-factory
// pkg/schematic/schematic.go DiskImageCustomization: "Defaults to 512 if not set").
//
// Upstream's rules, as this project follows them:
//   - image-factory internal/profile/profile.go EnhanceFromSchematic hands a non-zero sectorSize to disk images
//     only (OutKindImage → ImageOptions.DiskSectorSize), for every Talos version; ISOs, UKIs, installers,
//     kernels and initramfs ignore it (internal/profile/profile_test.go "disk_image_4k_sector").
//   - talos pkg/imager/out.go passes DiskSectorSize to the installer's image mode (cmd/installer/pkg/install
//     install.go): the GPT in that unit (go-blockdevice gpt: header at LBA 1, 1 MiB alignment), and every
//     partition formatted with it (internal/pkg/partition/format.go → pkg/makefs: mkfs.vfat -S, mkfs.xfs
//     -s size=).
//   - upstream checks no value; a size its tools cannot make fails its build (a 500). Here those are a 400
//     (src/talos/disk-layout.ts diskSectorSize; docs/upstream.md).
// Then a 4096-byte-sector disk is read back by fdisk at that sector size, and its file systems by their tools.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { GptType } from "../../src/formats/gpt.ts";
import { decodeMetaPartition, MetaTag } from "../../src/formats/meta-partition.ts";
import { readDiskBytes } from "../../src/imager/disk/assemble.ts";
import { type BuildProfile, createBuildProfile, profileHash } from "../../src/imager/profile.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import { parseSchematic, type Schematic, schematicId } from "../../src/talos/schematic.ts";
import { fsckVfat } from "../../src/tools/dosfstools.ts";
import { fdiskList } from "../../src/tools/gdisk.ts";
import { mdirRecursive } from "../../src/tools/mtools.ts";
import { xfsRepairCheck } from "../../src/tools/xfsprogs.ts";
import { buildLocalTalosDisk, cutOut, writeStandInBootFiles } from "./local-disk.ts";

const mib = 1024 * 1024;
const digest = (c: string) => `sha256:${c.repeat(64)}`;

function profile(version: string, path: string, schematic: Schematic): BuildProfile {
  return createBuildProfile(parseAssetRequest(schematicId(schematic), version, path), schematic, {
    imager: digest("a"),
    installerBase: digest("b"),
    extensions: [],
  });
}

const withSectorSize = (sectorSize: number, extra: Schematic["customization"] = {}): Schematic => ({
  customization: { ...extra, diskImage: { sectorSize } },
});

describe("customization.diskImage.sectorSize: which assets take it, which sizes are made", () => {
  test("upstream's 4k schematic reads back with upstream's ID (image-factory pkg/schematic/schematic_test.go)", () => {
    const s = parseSchematic("customization:\n  diskImage:\n    sectorSize: 4096\n");
    assert.equal(schematicId(s), "92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea");
  });

  const rows: {
    rule: string;
    version: string;
    path: string;
    schematic: Schematic;
    /** The profile's disk sector size (undefined: 512, not recorded), or the refusal. */
    expect: number | undefined | RegExp;
  }[] = [
    {
      rule: "a disk image takes it (EnhanceFromSchematic, OutKindImage; download_test.go builds v1.13.0 metal-amd64.raw.zst)",
      version: "v1.13.0",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(4096),
      expect: 4096,
    },
    {
      rule: "every disk format and platform (qcow2, vhd, ova are the same raw disk converted)",
      version: "v1.10.3",
      path: "nocloud-amd64.qcow2",
      schematic: withSectorSize(4096),
      expect: 4096,
    },
    {
      rule: "arm64 disk images (sd-boot: EFI 2101 MiB) take it too",
      version: "v1.11.0",
      path: "metal-arm64.raw.xz",
      schematic: withSectorSize(4096),
      expect: 4096,
    },
    {
      rule: "no Talos version rule: older versions' disk images take it as well (profile_test.go runs every version)",
      version: "v1.7.6",
      path: "metal-amd64.raw",
      schematic: withSectorSize(1024),
      expect: 1024,
    },
    {
      rule: "512 is the default: the same image as without it",
      version: "v1.10.3",
      path: "metal-amd64.raw",
      schematic: withSectorSize(512),
      expect: undefined,
    },
    {
      rule: "ISOs ignore it",
      version: "v1.10.3",
      path: "metal-amd64.iso",
      schematic: withSectorSize(4096),
      expect: undefined,
    },
    {
      rule: "ISOs ignore even a size no disk could have",
      version: "v1.10.3",
      path: "metal-amd64.iso",
      schematic: withSectorSize(1000),
      expect: undefined,
    },
    {
      rule: "not a power of two: refused (upstream: mkfs fails, 500)",
      version: "v1.10.3",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(1000),
      expect: /sectorSize 1000 is not supported: disk images are made with 512, 1024, 2048, 4096-byte sectors/,
    },
    {
      rule: "above the 4 KiB page Linux limits logical blocks to: refused",
      version: "v1.10.3",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(8192),
      expect: /sectorSize 8192 is not supported/,
    },
    {
      rule: "GRUB's 100 MiB EFI (Talos < 1.10 amd64) cannot be FAT32 with 4096-byte sectors: refused",
      version: "v1.9.5",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(4096),
      expect: /100 MiB EFI partition would hold 25600 sectors, too few for FAT32/,
    },
    {
      rule: "the same for the schematic's bootloader: grub on a dual-boot version",
      version: "v1.10.3",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(2048, { bootloader: "grub" }),
      expect: /100 MiB EFI partition would hold 51200 sectors/,
    },
    {
      rule: "GRUB's EFI holds FAT32 with 1024-byte sectors",
      version: "v1.9.5",
      path: "metal-amd64.raw.zst",
      schematic: withSectorSize(1024),
      expect: 1024,
    },
  ];
  for (const row of rows)
    test(`${row.rule}: ${row.version} ${row.path}`, () => {
      if (row.expect instanceof RegExp) {
        const expected = row.expect;
        assert.throws(
          () => profile(row.version, row.path, row.schematic),
          (err: unknown) => isAppError(err, "BadRequest") && expected.test(err.message),
        );
        return;
      }
      const p = profile(row.version, row.path, row.schematic);
      assert.equal(p.disk?.sectorSize, row.expect);
    });

  test("the sector size is part of the profile hash (the cache key)", () => {
    const p = profile("v1.10.3", "metal-amd64.raw.zst", withSectorSize(4096));
    assert.ok(p.disk !== undefined);
    const { sectorSize: _sectorSize, ...without } = p.disk;
    assert.notEqual(profileHash(p), profileHash({ ...p, disk: without }));
    assert.notEqual(profileHash(p), profileHash({ ...p, disk: { ...p.disk, sectorSize: 2048 } }));
  });
});

describe("a disk image with 4096-byte sectors, read by the real tools", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "disk-4k-"));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("Talos 1.10 dual-boot: fdisk -b 4096 finds the GPT in 4096-byte LBAs; FAT, XFS, META and GRUB's LBAs follow", async () => {
    const sector = 4096;
    const files = await writeStandInBootFiles(dir, { kernel: 2, initramfs: 3, uki: 4 });
    const out = join(dir, "disk.raw");
    await buildLocalTalosDisk(
      files,
      { out, version: "v1.10.3", bootloader: "dual-boot", scratchDir: dir },
      {
        cmdline: "talos.platform=metal console=ttyS0",
        meta: [{ tag: MetaTag.UserReserved1, value: Buffer.from("from-schematic") }],
        sectorSize: sector,
      },
    );

    // fdisk (util-linux) reads the file as a disk of 4096-byte sectors and checks both headers' CRCs.
    const table = await fdiskList(out, sector);
    assert.equal(table.label, "gpt");
    assert.equal(table.sectorSize, sector);
    // Upstream's layout for 1.10 dual-boot (talos internal/pkg/partition, quirks PartitionSizes): EFI 1101 MiB,
    // BIOS 1 MiB, BOOT 1000 MiB, META 1 MiB, one after the other from 1 MiB (go-blockdevice: 2048 × 512
    // bytes alignment), in 4096-byte sectors: 256 per MiB.
    const perMib = mib / sector;
    const sizesMib = [1101, 1, 1000, 1];
    let start = perMib;
    const expected = sizesMib.map((size) => {
      const row = { start, end: start + size * perMib - 1, sectors: size * perMib };
      start += size * perMib;
      return row;
    });
    assert.deepEqual(
      table.partitions.map((p) => ({ start: p.start, end: p.end, sectors: p.sectors })),
      expected,
    );
    assert.deepEqual(
      table.partitions.map((p) => [p.name, p.type]),
      [
        ["EFI", GptType.EfiSystem],
        ["BIOS", GptType.BiosBoot],
        ["BOOT", GptType.LinuxFilesystem],
        ["META", GptType.LinuxFilesystem],
      ],
    );
    // Read as a 512-byte-sector disk there is no GPT (its header is not at byte 512), only the protective MBR.
    assert.equal((await fdiskList(out, 512)).label, "dos");

    const byteRange = (i: number) => {
      const p = table.partitions[i] as (typeof table.partitions)[number];
      return { offset: p.start * sector, size: p.sectors * sector };
    };
    const copy = (i: number, name: string) => cutOut(out, byteRange(i), join(dir, name));

    // EFI: FAT32 with 4096-byte logical sectors (mkfs.vfat -S 4096), clean, holding the UKI.
    const efi = copy(0, "efi.img");
    assert.match(execFileSync("minfo", ["-i", efi, "::"], { encoding: "utf8" }), /^sector size: 4096 bytes$/m);
    await fsckVfat(efi);
    const listing = await mdirRecursive(efi);
    assert.ok(
      listing.some((l) => /EFI\/Linux\/Talos-v1\.10\.3\.efi$/.test(l)),
      listing.join("\n"),
    );
    await rm(efi);

    // BOOT: XFS with 4096-byte sectors (mkfs.xfs -s size=4096), clean.
    const boot = copy(2, "boot.img");
    const sb = execFileSync("xfs_db", ["-r", "-c", "sb 0", "-c", "p sectsize", boot], { encoding: "utf8" });
    assert.match(sb, /^sectsize = 4096$/m);
    await xfsRepairCheck(boot);
    await rm(boot);

    // META at its byte offset; GRUB's boot code and core.img carry the BIOS partition's LBA in 4096-byte
    // units (talos bootloader/grub PatchBlocklistsForDiskImage writes the partition's FirstLBA).
    const meta = byteRange(3);
    const records = decodeMetaPartition(await readDiskBytes(out, meta.offset, meta.size));
    assert.equal(
      Buffer.from(records.find((r) => r.tag === MetaTag.UserReserved1)?.value ?? []).toString(),
      "from-schematic",
    );
    const bios = table.partitions[1] as (typeof table.partitions)[number];
    const mbr = await readDiskBytes(out, 0, 512);
    assert.equal(mbr.readBigUInt64LE(0x5c), BigInt(bios.start));
    const core = await readDiskBytes(out, bios.start * sector, 512);
    assert.equal(core.readBigUInt64LE(0x1f4), BigInt(bios.start + 1));
  });
});
