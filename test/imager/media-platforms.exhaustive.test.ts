// The exhaustive tier's share of the imager's disk formats (media.test.ts has the rest): the 8 GiB platform
// images built from the test bed's 1.8 release and read back with qemu-img and tar: azure's fixed VHD
// (`subformat=fixed,force_size`, upstream pkg/imager/profile/default.go) and vmware's OVA.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { qemuImgInfo } from "../../src/tools/qemu-img.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import { buildAsset, compatibleExtensions, type PreparedVersion, prepareVersion, testSchematic } from "./helpers.ts";

const mib = 1024 * 1024;

describe("imager: the 8 GiB platform disk images", () => {
  let fixture: ReleaseFixture;
  let prepared: PreparedVersion;
  let out: string;
  const schematic = testSchematic(compatibleExtensions, { extraKernelArgs: ["testbed.extra=yes"] });
  const build = async (path: string) => {
    const dir = join(out, path);
    await mkdir(dir);
    const built = await buildAsset(prepared, schematic, path, dir, { mtime: 1700000000 });
    console.log(`v1.8.2 ${path}: ${built.seconds} s`);
    return built;
  };

  before(async () => {
    fixture = await openReleaseFixture(["v1.8.2"]);
    prepared = await prepareVersion(fixture, "v1.8.2", compatibleExtensions);
    out = await mkdtemp(join(fixture.scratch, "media-platforms-"));
  });
  after(async () => {
    await fixture?.close();
  });

  test("azure-amd64.vhd: a VHD (qemu's vpc) of 8192 MiB", async () => {
    const vhd = await build("azure-amd64.vhd");
    const info = await qemuImgInfo(vhd.path, { format: "vpc" });
    assert.equal(info.format, "vpc");
    assert.equal(info["virtual-size"], 8192 * mib);
  });

  test("vmware-amd64.ova: disk.ovf, disk.mf and disk.vmdk, in that order", async () => {
    const ova = await build("vmware-amd64.ova");
    assert.deepEqual(execFileSync("tar", ["-tf", ova.path], { encoding: "utf8" }).trim().split("\n"), [
      "disk.ovf",
      "disk.mf",
      "disk.vmdk",
    ]);
  });
});
