// An overlay's PartitionOptions.Offset on a real disk image (talos cmd/installer/pkg/install/install.go →
// go-blockdevice gpt.WithSkipLBAs: the primary entries start `offset` LBAs later, the partitions after them,
// aligned), read back by sgdisk and sfdisk, the tools a board's users check their images with.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { GptType } from "../../src/formats/gpt.ts";
import { assembleDisk, readDiskGpt } from "../../src/imager/disk/assemble.ts";
import { sfdiskJson, sgdiskVerify } from "../../src/tools/gdisk.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "overlay-disk-"));
});
after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const mib = 1024 * 1024;

test("a partition offset of 4096 LBAs: entries at LBA 4098, EFI from LBA 6144; sgdisk finds no problem", async () => {
  const path = join(dir, "offset.raw");
  const layout = await assembleDisk({
    path,
    sizeBytes: 64 * mib,
    partitions: [
      { name: "EFI", typeGuid: GptType.EfiSystem, sizeBytes: 8 * mib },
      { name: "META", typeGuid: GptType.LinuxFilesystem, sizeBytes: mib },
    ],
    skipLbas: 4096,
  });
  assert.equal(layout.primaryEntriesLba, 4098);
  const read = await readDiskGpt(path);
  assert.equal(read.header.entriesLba, 4098);
  assert.equal(read.header.firstUsableLba, 6144);
  assert.ok(read.backupValid);
  assert.match(await sgdiskVerify(path), /No problems found/);
  const table = await sfdiskJson(path);
  assert.equal(table.firstlba, 6144);
  assert.deepEqual(
    table.partitions.map((p) => [p.name, p.start]),
    [
      ["EFI", 6144],
      ["META", 6144 + 16384],
    ],
  );
});
