// The VMDK CID fix-up checked against qemu-img: two streamOptimized conversions of one raw image (with the
// options Talos used for its OVA, pkg/imager/ova/ova.go before 1.11) made equal, then read back by
// `qemu-img info` (its CID), `qemu-img check` and `qemu-img compare`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { descriptorCid, readEmbeddedDescriptor, setVmdkCid, withDescriptorCid } from "../../src/formats/vmdk.ts";
import { qemuImgCheck, qemuImgConvert, qemuImgInfo } from "../../src/tools/qemu-img.ts";
import { sameBytes, scratchRawImage } from "./scratch-raw.ts";

const scratch = scratchRawImage("vmdk-test-");

const cidOf = async (path: string) =>
  ((await qemuImgInfo(path, { format: "vmdk" }))["format-specific"]?.data as { cid?: number } | undefined)?.cid;

describe("streamOptimized VMDK", () => {
  let first: string;
  let second: string;
  before(async () => {
    // The same file name in both: the descriptor's extent line names the file.
    for (const name of ["first", "second"]) {
      await qemuImgConvert(scratch.raw, join(scratch.dir, "disk.vmdk"), {
        from: "raw",
        to: "vmdk",
        formatOptions: "compat6,subformat=streamOptimized,adapter_type=lsilogic",
      });
      execFileSync("mkdir", ["-p", join(scratch.dir, name)]);
      execFileSync("mv", [join(scratch.dir, "disk.vmdk"), join(scratch.dir, name, "disk.vmdk")]);
    }
    first = join(scratch.dir, "first", "disk.vmdk");
    second = join(scratch.dir, "second", "disk.vmdk");
  });

  test("two conversions differ (random CID) until both get the same CID; qemu-img reads it", async () => {
    assert.ok(!sameBytes(first, second), "qemu-img's CID is random");
    assert.equal(descriptorCid(await readEmbeddedDescriptor(first)), await cidOf(first));
    await setVmdkCid(first, 0x1234abcd);
    await setVmdkCid(second, 0x1234abcd);
    assert.ok(sameBytes(first, second), "the same bytes");
    assert.equal(await cidOf(first), 0x1234abcd);
    const descriptor = await readEmbeddedDescriptor(first);
    assert.match(descriptor, /^CID=1234abcd$/m);
    assert.match(descriptor, /^parentCID=ffffffff$/m);
    assert.match(descriptor, /^createType="streamOptimized"$/m);
    assert.equal(((await qemuImgCheck(first, { format: "vmdk" })).corruptions as number | undefined) ?? 0, 0);
    execFileSync("qemu-img", ["compare", "-q", "-f", "raw", "-F", "vmdk", scratch.raw, first]);
  });

  test("a shorter CID (fewer hex digits) leaves no trace of the longer one", async () => {
    await setVmdkCid(first, 0xffff_ffee);
    await setVmdkCid(first, 0x1a);
    assert.equal(await cidOf(first), 0x1a);
    const descriptor = await readEmbeddedDescriptor(first);
    assert.match(descriptor, /^CID=1a$/m);
    assert.doesNotMatch(descriptor, /ffee/);
    await setVmdkCid(first, 0x1234abcd);
    assert.ok(sameBytes(first, second), "back to the same bytes");
  });

  test("a file that is not a sparse VMDK is refused and left alone", async () => {
    const before = await readFile(scratch.raw);
    await assert.rejects(setVmdkCid(scratch.raw, 1), /not a sparse VMDK/);
    assert.ok((await readFile(scratch.raw)).equals(before));
  });
});

test("withDescriptorCid replaces the one CID line, not parentCID", () => {
  const text = '# Disk DescriptorFile\nversion=1\nCID=9d69c043\nparentCID=ffffffff\ncreateType="streamOptimized"\n';
  assert.equal(
    withDescriptorCid(text, 0xbeef),
    '# Disk DescriptorFile\nversion=1\nCID=beef\nparentCID=ffffffff\ncreateType="streamOptimized"\n',
  );
  assert.equal(descriptorCid(text), 0x9d69c043);
  assert.throws(() => withDescriptorCid("version=1\nparentCID=ffffffff\n", 1), /0 CID lines/);
  assert.throws(() => withDescriptorCid(text, 2 ** 32), /32 bits/);
});
