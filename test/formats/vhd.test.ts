// The VHD footer fix-up checked against qemu-img: its own footers (whose checksums it computed), two
// conversions of one raw image made equal, and `qemu-img info -f vpc` (which refuses a footer whose checksum
// is wrong) and `qemu-img compare` reading the result.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFile, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { parseVhdFooter, setVhdIdentity, VhdDiskType, vhdFooterSize, withVhdIdentity } from "../../src/formats/vhd.ts";
import { qemuImgConvert, qemuImgInfo } from "../../src/tools/qemu-img.ts";
import { sameBytes, scratchRawImage } from "./scratch-raw.ts";

const scratch = scratchRawImage("vhd-test-");

async function bytesAt(path: string, offset: number, length: number): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, offset);
    return buffer;
  } finally {
    await file.close();
  }
}

const footerOf = async (path: string) => bytesAt(path, (await stat(path)).size - vhdFooterSize, vhdFooterSize);

const identity = { timestamp: 1_700_000_000, uniqueId: Buffer.from("00112233445566778899aabbccddeeff", "hex") };

for (const [kind, options, diskType] of [
  ["fixed (subformat=fixed,force_size)", "subformat=fixed,force_size", VhdDiskType.fixed],
  ["dynamic (qemu's default)", undefined, VhdDiskType.dynamic],
] as const)
  describe(`${kind} VHD`, () => {
    let first: string;
    let second: string;
    before(async () => {
      first = join(scratch.dir, `first-${diskType}.vhd`);
      second = join(scratch.dir, `second-${diskType}.vhd`);
      await qemuImgConvert(scratch.raw, first, { from: "raw", to: "vpc", formatOptions: options });
      await qemuImgConvert(scratch.raw, second, { from: "raw", to: "vpc", formatOptions: options });
    });

    test("qemu-img's footer parses, with the checksum qemu-img computed", async () => {
      const footer = parseVhdFooter(await footerOf(first));
      assert.ok(footer !== undefined);
      assert.equal(footer.diskType, diskType);
      assert.ok(footer.checksumValid, "our checksum of qemu-img's footer is qemu-img's");
      // Made a moment ago: qemu-img stamps the conversion time.
      assert.ok(Math.abs(footer.timestamp - Date.now() / 1000) < 600, `${footer.timestamp}`);
      if (diskType === VhdDiskType.dynamic)
        assert.ok((await bytesAt(first, 0, vhdFooterSize)).equals(await footerOf(first)), "the copy at the start");
    });

    test("two conversions differ (random unique id) until both get the same identity; qemu-img reads them", async () => {
      assert.ok(!sameBytes(first, second), "qemu-img's unique id is random");
      await setVhdIdentity(first, identity);
      await setVhdIdentity(second, identity);
      assert.ok(sameBytes(first, second), "the same bytes");
      const footer = parseVhdFooter(await footerOf(first));
      assert.ok(footer?.checksumValid);
      assert.equal(footer.timestamp, identity.timestamp);
      assert.ok(footer.uniqueId.equals(identity.uniqueId));
      if (diskType === VhdDiskType.dynamic)
        assert.ok((await bytesAt(first, 0, vhdFooterSize)).equals(await footerOf(first)), "the copy at the start");
      // qemu-img opens a VHD only when its footer checksum holds ("Incorrect header checksum").
      assert.equal((await qemuImgInfo(first, { format: "vpc" })).format, "vpc");
      execFileSync("qemu-img", ["compare", "-q", "-f", "raw", "-F", "vpc", scratch.raw, first]);
    });

    test("a wrong checksum is refused by qemu-img and by setVhdIdentity, which then changes nothing", async () => {
      const broken = join(scratch.dir, `broken-${diskType}.vhd`);
      await copyFile(first, broken);
      const size = (await stat(broken)).size;
      const footer = await footerOf(broken);
      footer[64] = (footer[64] as number) ^ 0xff;
      const file = await open(broken, "r+");
      await file.write(footer, 0, vhdFooterSize, size - vhdFooterSize);
      if (diskType === VhdDiskType.dynamic) await file.write(footer, 0, vhdFooterSize, 0);
      await file.close();
      assert.notEqual(spawnSync("qemu-img", ["info", "-f", "vpc", broken]).status, 0);
      const before = await readFile(broken);
      await assert.rejects(setVhdIdentity(broken, identity), /checksum/);
      assert.ok((await readFile(broken)).equals(before));
    });
  });

test("times before 2000 (SOURCE_DATE_EPOCH=0) are recorded as 2000-01-01; other bytes stay", async () => {
  const footer = await footerOf(join(scratch.dir, "first-2.vhd"));
  const early = withVhdIdentity(footer, { timestamp: 0, uniqueId: identity.uniqueId });
  assert.equal(early.readUInt32BE(24), 0);
  assert.equal(parseVhdFooter(early)?.checksumValid, true);
  const changed = [...early.keys()].filter((i) => early[i] !== footer[i]);
  assert.ok(
    changed.every((i) => (i >= 24 && i < 28) || (i >= 64 && i < 84)),
    `changed bytes: ${changed.join(" ")}`,
  );
});

test("a file that is not a VHD is refused", async () => {
  await assert.rejects(setVhdIdentity(scratch.raw, identity), /not a VHD/);
});
