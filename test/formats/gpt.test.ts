// The GPT writer checked against the spec's numbers and against sgdisk and sfdisk reading what it wrote.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  decodeGuid,
  encodeGpt,
  encodeGuid,
  GptAttribute,
  GptType,
  guidFromLabel,
  parseGptEntries,
  parseGptHeader,
  planGpt,
} from "../../src/formats/gpt.ts";
import { assembleDisk, readDiskBytes, readDiskGpt } from "../../src/imager/disk/assemble.ts";
import { sfdiskJson, sfdiskTool, sgdiskInfo, sgdiskTool, sgdiskVerify } from "../../src/tools/gdisk.ts";
import { findTool } from "../../src/tools/run.ts";

const mib = 1024 * 1024;
const layoutSpec = [
  { name: "EFI", typeGuid: GptType.EfiSystem, sizeBytes: 100 * mib },
  { name: "BIOS", typeGuid: GptType.BiosBoot, sizeBytes: 1 * mib, attributes: GptAttribute.LegacyBiosBootable },
  { name: "BOOT", typeGuid: GptType.LinuxFilesystem, sizeBytes: 1000 * mib },
  { name: "META", typeGuid: GptType.LinuxFilesystem, sizeBytes: 1 * mib },
];

describe("GPT format", () => {
  test("deterministic GUIDs: SHA-256(16 zero bytes ‖ label), version 8, RFC 4122 variant", () => {
    // Computed independently (Python hashlib) for these labels.
    assert.equal(guidFromLabel("EFI"), "BCA5174B-0118-8A6A-AF0B-2C6E1585ACAE");
    assert.equal(guidFromLabel("META"), "CF04F137-101E-8EC6-9627-FA3F51CDABB8");
    assert.equal(guidFromLabel("talos-image-disk"), "D92D45B3-CDE9-8760-BE9F-A2A71FAC8D11");
  });

  test("GUIDs are stored mixed-endian: the first three fields little-endian", () => {
    const stored = encodeGuid(GptType.EfiSystem);
    assert.equal(stored.toString("hex"), "28732ac11ff8d211ba4b00a0c93ec93b");
    assert.equal(decodeGuid(stored), GptType.EfiSystem);
  });

  test("128 entries at LBA 2, first usable LBA aligned to 1 MiB, backup at the end, partitions packed and aligned", () => {
    const layout = planGpt({ diskSizeBytes: 1246 * mib, partitions: layoutSpec, diskGuid: guidFromLabel("x") });
    const sectors = (1246 * mib) / 512;
    assert.equal(layout.primaryEntriesLba, 2);
    assert.equal(layout.firstUsableLba, 2048);
    assert.equal(layout.backupHeaderLba, sectors - 1);
    assert.equal(layout.backupEntriesLba, sectors - 1 - 32);
    assert.equal(layout.lastUsableLba, sectors - 34);
    assert.deepEqual(
      layout.partitions.map((p) => [p.name, p.firstLba, p.lastLba]),
      [
        ["EFI", 2048, 2048 + 204800 - 1],
        ["BIOS", 206848, 206848 + 2048 - 1],
        ["BOOT", 208896, 208896 + 2048000 - 1],
        ["META", 2256896, 2256896 + 2048 - 1],
      ],
    );
  });

  test("the rest of the disk goes to a partition without a size, aligned down to 1 MiB", () => {
    const layout = planGpt({
      diskSizeBytes: 64 * mib,
      partitions: [
        { name: "A", typeGuid: GptType.LinuxFilesystem, sizeBytes: 8 * mib },
        { name: "REST", typeGuid: GptType.LinuxFilesystem },
      ],
      diskGuid: guidFromLabel("x"),
    });
    const rest = layout.partitions[1];
    assert.equal(rest?.firstLba, 2048 + 16384);
    // The last usable LBA is 131038; aligned down to 129024, so the partition ends at 129023.
    assert.equal(rest?.lastLba, 129023);
  });

  test("a partition that does not fit and a name over 36 UTF-16 units are refused", () => {
    const diskGuid = guidFromLabel("x");
    assert.throws(
      () =>
        planGpt({
          diskSizeBytes: 8 * mib,
          partitions: [{ name: "BIG", typeGuid: GptType.EfiSystem, sizeBytes: 8 * mib }],
          diskGuid,
        }),
      /does not fit/,
    );
    assert.throws(
      () =>
        planGpt({
          diskSizeBytes: 8 * mib,
          partitions: [{ name: "x".repeat(37), typeGuid: GptType.EfiSystem, sizeBytes: mib }],
          diskGuid,
        }),
      /longer than 36/,
    );
  });

  test("headers and entries round-trip with valid CRCs; a flipped byte is caught", () => {
    const layout = planGpt({
      diskSizeBytes: 1246 * mib,
      partitions: layoutSpec,
      diskGuid: guidFromLabel("talos-image-disk"),
    });
    const writes = encodeGpt(layout);
    const header = parseGptHeader(writes[1]?.data as Buffer);
    assert.equal(header.diskGuid, guidFromLabel("talos-image-disk"));
    assert.equal(header.entryCount, 128);
    const partitions = parseGptEntries(writes[2]?.data as Buffer, header);
    assert.deepEqual(partitions, layout.partitions);
    const backup = parseGptHeader(writes[4]?.data as Buffer);
    assert.equal(backup.currentLba, layout.backupHeaderLba);
    assert.equal(backup.backupLba, 1);
    const bad = Buffer.from(writes[1]?.data as Buffer);
    bad[60] = (bad[60] as number) ^ 1;
    assert.throws(() => parseGptHeader(bad), /CRC/);
    const mbr = writes[0]?.data as Buffer;
    assert.equal(mbr[450], 0xee);
    assert.equal(mbr.readUInt32LE(454), 1);
    assert.equal(mbr.readUInt32LE(458), (1246 * mib) / 512 - 1);
    assert.equal(mbr.readUInt16LE(510), 0xaa55);
  });
});

const toolsMissing = [sgdiskTool, sfdiskTool].filter((t) => findTool(t) === undefined).map((t) => t.debianPackage);

describe("GPT on a disk image, read by sgdisk and sfdisk", {
  skip: toolsMissing.length > 0 ? `apt-get install ${toolsMissing.join(" ")}` : undefined,
}, () => {
  let dir: string;
  let disk: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "gpt-test-"));
    disk = join(dir, "disk.raw");
    await assembleDisk({ path: disk, sizeBytes: 1246 * mib, partitions: layoutSpec });
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("sgdisk -v finds no problems", async () => {
    assert.match(await sgdiskVerify(disk), /No problems found/);
  });

  test("sfdisk --json sees the names, types, GUIDs, alignment and the BIOS partition's attribute", async () => {
    const table = await sfdiskJson(disk);
    assert.equal(table.label, "gpt");
    assert.equal(table.id, "D92D45B3-CDE9-8760-BE9F-A2A71FAC8D11");
    assert.equal(table.firstlba, 2048);
    assert.deepEqual(
      table.partitions.map((p) => [p.name, p.type, p.uuid, p.start % 2048, p.size * 512, p.attrs]),
      [
        ["EFI", GptType.EfiSystem, "BCA5174B-0118-8A6A-AF0B-2C6E1585ACAE", 0, 100 * mib, undefined],
        ["BIOS", GptType.BiosBoot, guidFromLabel("BIOS"), 0, mib, "LegacyBIOSBootable"],
        ["BOOT", GptType.LinuxFilesystem, guidFromLabel("BOOT"), 0, 1000 * mib, undefined],
        ["META", GptType.LinuxFilesystem, "CF04F137-101E-8EC6-9627-FA3F51CDABB8", 0, mib, undefined],
      ],
    );
    assert.match(await sgdiskInfo(disk, 2), /Partition name: 'BIOS'/);
  });

  test("our reader reads it back, backup included; the file is sparse", async () => {
    const table = await readDiskGpt(disk);
    assert.equal(table.backupValid, true);
    assert.equal(table.protectiveMbr, true);
    assert.deepEqual(
      table.partitions.map((p) => p.name),
      ["EFI", "BIOS", "BOOT", "META"],
    );
    const st = await stat(disk);
    assert.equal(st.size, 1246 * mib);
    assert.ok(st.blocks * 512 < mib, `only the tables are allocated (${st.blocks * 512} bytes)`);
  });

  test("byte-identical across builds", async () => {
    const again = join(dir, "again.raw");
    await assembleDisk({ path: again, sizeBytes: 1246 * mib, partitions: layoutSpec });
    // Everything the GPT writes: the first MiB and the last 33 sectors (the rest are holes in both).
    const sha = async (p: string, offset: number, length: number) =>
      createHash("sha256")
        .update(await readDiskBytes(p, offset, length))
        .digest("hex");
    assert.equal(await sha(again, 0, mib), await sha(disk, 0, mib));
    assert.equal(
      await sha(again, 1246 * mib - 64 * 1024, 64 * 1024),
      await sha(disk, 1246 * mib - 64 * 1024, 64 * 1024),
    );
  });
});
