// Boot proof for multi-profile UKIs (Talos ≥ 1.10): the UKI a disk image carries — main profile, then
// "reset-maintenance" with talos.experimental.wipe=system:EPHEMERAL,STATE in its own .cmdline (siderolabs/talos
// pkg/imager/imager.go buildUKI, internal/pkg/uki/generate.go generateProfiles) — on trixie's systemd-stub,
// started by trixie's systemd-boot from EFI/Linux with the disk's loader.conf (timeout 10, no default entry:
// src/formats/boot-config.ts), as the test bed's ≥ 1.10 imagers ship them. The guest must report the main profile (StubProfile
// 0) and the main command line. (With Debian 12's systemd-boot 252 the same ESP boots profile 0 with the reset
// command line: 252 hands the stub the last .cmdline section — why both come from trixie from 1.10.)

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { loaderConf } from "../../src/formats/boot-config.ts";
import { assembleUki, osReleaseFor } from "../../src/formats/uki.ts";
import { bootSplash } from "../../src/imager/splash.ts";
import { talosUkiProfiles } from "../../src/talos/uki-profiles.ts";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { type BaseBootAssets, buildBaseBootAssets, layoutForTalosVersion } from "../../src/testbed/initramfs.ts";
import { boot, bootUnavailable } from "../boot/harness.ts";

const skip = bootUnavailable("uefi");
const version = "v1.10.3";
const cmdline = "talos.platform=metal console=ttyS0 printk.devkmsg=on";

describe("a multi-profile UKI boots its main profile", { skip }, () => {
  let packages: TestbedPackages;
  let base: BaseBootAssets;
  let work: string;

  before(async () => {
    packages = await fetchTestbedPackages();
    base = await buildBaseBootAssets({ layout: layoutForTalosVersion(version), packages });
    work = await mkdtemp(join(tmpdir(), "uki-profiles-boot-"));
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("systemd-boot 257 + systemd-stub 257: main profile, main command line", async () => {
    const uki = join(work, `Talos-${version}.efi`);
    const out = createWriteStream(uki);
    const assembled = await assembleUki(
      await readFile(packages.systemdBootProfiles.stubEfi),
      {
        osRelease: osReleaseFor("Talos", version),
        cmdline,
        uname: base.kernelRelease,
        splash: { content: bootSplash() },
        linux: { path: base.vmlinuz },
        initrd: { path: base.initramfs },
        profiles: talosUkiProfiles("disk", cmdline),
      },
      { wantProfiles: true },
      out,
    );
    out.end();
    await finished(out);
    assert.equal(assembled.profiles, true);
    const conf = join(work, "loader.conf");
    await writeFile(conf, loaderConf({ medium: "disk" }));

    const { report, seconds } = await boot({
      uki: packages.systemdBootProfiles.bootEfi,
      espFiles: { [`EFI/Linux/Talos-${version}.efi`]: uki, "loader/loader.conf": conf },
      firmware: "uefi",
    });
    console.log(`systemd-boot → multi-profile UKI: ${seconds} s, stub ${JSON.stringify(report.stub)}`);
    assert.equal(report.firmware, "uefi");
    assert.deepEqual(report.errors, []);
    assert.equal(report.stub?.info, `systemd-stub ${packages.systemdBootProfiles.version}`);
    assert.equal(report.stub?.profile, 0);
    assert.equal(report.cmdline, cmdline);
  });
});
