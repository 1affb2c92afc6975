// Proof by boot that what the project signs is what Secure Boot firmware runs, and that it refuses the rest:
// OVMF built with Secure Boot starts in setup mode (Debian's empty OVMF_VARS_4M.fd); systemd-boot (trixie's 257,
// signed here) finds loader/keys/auto/{PK,KEK,db}.auth (src/talos/secureboot-database.ts, as Talos generates
// them) with `secure-boot-enroll force`, enrolls them and resets; the same machine then boots the signed UKI
// with Secure Boot enforced — the guest reads the SecureBoot variable and reports it. With those keys enrolled
// the firmware must refuse a UKI with one byte of its .cmdline changed, a UKI signed by another key and an
// unsigned systemd-boot; the refusal is read from the console. A secure-boot disk image from the imager, signed
// with the enrolled key, boots enforced on that machine.

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { parsePe } from "../../src/formats/pe.ts";
import { assembleUki, osReleaseFor } from "../../src/formats/uki.ts";
import { bootSplash } from "../../src/imager/splash.ts";
import { signPeFile } from "../../src/signing/authenticode.ts";
import { type CertifiedSigner, fileDigestSigner, fileKeySigner } from "../../src/signing/digest-signer.ts";
import { enrollmentDatabase } from "../../src/talos/secureboot-database.ts";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { type BaseBootAssets, buildBaseBootAssets, layoutForTalosVersion } from "../../src/testbed/initramfs.ts";
import { runTool } from "../../src/tools/run.ts";
import { openReleaseFixture, type ReleaseFixture } from "../imager/fixture.ts";
import { buildAsset, prepareVersion, testSchematic } from "../imager/helpers.ts";
import { openssl, opensslKeyPair } from "../signing/openssl-keys.ts";
import { BootError, boot, bootUnavailable } from "./harness.ts";

const skip = bootUnavailable("uefi-secureboot");
const version = "v1.10.3";
const cmdline = "talos.platform=metal console=ttyS0 printk.devkmsg=on lockdown=confidentiality";
/** What OVMF and systemd-boot print when an image fails verification. */
const refused = /Access Denied|Security Violation|Security violation/;

describe("Secure Boot: enrollment, then an enforced boot of what is signed here", { skip }, () => {
  let packages: TestbedPackages;
  let base: BaseBootAssets;
  let work: string;
  let signer: CertifiedSigner;
  let other: CertifiedSigner;
  let enrolledVars: string;
  const esp: Record<string, string> = {};

  async function keyPair(name: string): Promise<CertifiedSigner> {
    const { key, cert } = await opensslKeyPair(work, name);
    return fileDigestSigner(key, cert);
  }

  async function uki(name: string, ukiCmdline: string): Promise<string> {
    const path = join(work, name);
    const out = createWriteStream(path);
    await assembleUki(
      await readFile(packages.systemdBootProfiles.stubEfi),
      {
        osRelease: osReleaseFor("Talos", version),
        cmdline: ukiCmdline,
        uname: base.kernelRelease,
        splash: { content: bootSplash() },
        linux: { path: base.vmlinuz },
        initrd: { path: base.initramfs },
      },
      { wantProfiles: false, rewriteHeaders: { timestamp: 1559424892 } },
      out,
    );
    out.end();
    await finished(out);
    return path;
  }

  before(async () => {
    packages = await fetchTestbedPackages();
    base = await buildBaseBootAssets({ layout: layoutForTalosVersion(version), packages });
    work = await mkdtemp(join(tmpdir(), "secureboot-boot-"));
    signer = await keyPair("uki-signing");
    other = await keyPair("someone-else");
    enrolledVars = join(work, "OVMF_VARS.enrolled.fd");
    await signPeFile(packages.systemdBootProfiles.bootEfi, join(work, "BOOTX64.EFI"), signer);
    await signPeFile(await uki("unsigned.efi", cmdline), join(work, "Talos.efi"), signer);
    await writeFile(join(work, "loader.conf"), "timeout 0\nsecure-boot-enroll force\n");
    for (const file of await enrollmentDatabase(signer, { time: new Date("2026-01-01T00:00:00Z") })) {
      await writeFile(join(work, file.name), file.contents);
      esp[`loader/keys/auto/${file.name}`] = join(work, file.name);
    }
    esp["loader/loader.conf"] = join(work, "loader.conf");
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("systemd-boot enrolls PK, KEK and db in setup mode; the next boot is enforced and reaches the guest", async () => {
    const { report, seconds } = await boot({
      uki: join(work, "BOOTX64.EFI"),
      espFiles: { ...esp, [`EFI/Linux/Talos-${version}.efi`]: join(work, "Talos.efi") },
      firmware: "uefi-secureboot",
      allowReset: true,
      varsTo: enrolledVars,
      timeoutMs: 300_000,
    });
    console.log(`enrollment + enforced boot: ${seconds} s`);
    assert.deepEqual(report.errors, []);
    assert.equal(report.firmware, "uefi");
    assert.equal(report.secureBoot, true);
    assert.equal(report.cmdline, cmdline);
  });

  test("metal-amd64-secureboot.raw from the imager, signed with the enrolled key, boots enforced", async () => {
    // The disk upstream makes for Secure Boot: sd-boot, its systemd-boot and UKI signed, no keys to enroll
    // (talos pkg/imager/out.go buildImage with ImageSecureboot; bootloader/sdboot/sdboot.go install).
    const fixture = await openReleaseFixture([version]);
    try {
      const pcrKey = join(work, "disk-pcr.key");
      await runTool(openssl, ["genrsa", "-out", pcrKey, "2048"]);
      const prepared = await prepareVersion(fixture, version, ["testbed-dummy"]);
      const schematic = testSchematic(["testbed-dummy"], { extraKernelArgs: ["testbed.extra=yes"] });
      const built = await buildAsset(prepared, schematic, "metal-amd64-secureboot.raw", work, {
        secureBoot: { uki: signer, pcr: await fileKeySigner(pcrKey) },
      });
      const { report, seconds } = await boot({
        disk: built.path,
        firmware: "uefi-secureboot",
        varsFrom: enrolledVars,
        timeoutMs: 300_000,
      });
      console.log(`secure boot disk image, enforced boot: ${seconds} s`);
      assert.deepEqual(report.errors, []);
      assert.equal(report.firmware, "uefi");
      assert.equal(report.secureBoot, true);
      assert.ok(report.cmdline.split(" ").includes("testbed.extra=yes"), report.cmdline);
      assert.ok(report.cmdline.split(" ").includes("lockdown=confidentiality"), report.cmdline);
      await rm(built.path, { force: true });
    } finally {
      await fixture.close();
    }
  });

  const refusal = async (why: string, files: { boot: string; uki: string }) => {
    const error = await boot({
      uki: files.boot,
      espFiles: {
        "loader/loader.conf": esp["loader/loader.conf"] as string,
        [`EFI/Linux/Talos-${version}.efi`]: files.uki,
      },
      firmware: "uefi-secureboot",
      varsFrom: enrolledVars,
      stopOn: refused,
      timeoutMs: 180_000,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof BootError, `${why}: the guest must not boot`);
    assert.match(error.serialLog, refused, `${why}: the firmware's refusal on the console`);
  };

  test("the enforced firmware refuses a UKI with one byte of .cmdline changed", async () => {
    const tampered = join(work, "tampered.efi");
    const bytes = await readFile(join(work, "Talos.efi"));
    const section = parsePe(bytes).sections.find((s) => s.name === ".cmdline");
    assert.ok(section);
    const at = section.pointerToRawData + cmdline.indexOf("metal");
    bytes[at] = "M".charCodeAt(0);
    await writeFile(tampered, bytes);
    await refusal("tampered .cmdline", { boot: join(work, "BOOTX64.EFI"), uki: tampered });
  });

  test("the enforced firmware refuses a UKI signed by another key", async () => {
    const foreign = join(work, "foreign.efi");
    await signPeFile(await uki("foreign-unsigned.efi", cmdline), foreign, other);
    await refusal("foreign signature", { boot: join(work, "BOOTX64.EFI"), uki: foreign });
  });

  test("the enforced firmware refuses an unsigned systemd-boot", async () => {
    const unsigned = join(work, "unsigned-boot.efi");
    await copyFile(packages.systemdBootProfiles.bootEfi, unsigned);
    await refusal("unsigned systemd-boot", { boot: unsigned, uki: join(work, "Talos.efi") });
  });
});

describe("a Secure Boot ISO from the imager enrolls its own keys and boots enforced", { skip }, () => {
  let work: string;
  let fixture: ReleaseFixture;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "secureboot-iso-boot-"));
    fixture = await openReleaseFixture([version]);
  });
  after(async () => {
    await fixture?.close();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("metal-amd64-secureboot.iso: systemd-boot enrolls (if-safe, in a VM), the UKI boots with Secure Boot on", async () => {
    const { key, cert } = await opensslKeyPair(work, "iso-signing");
    const pcrKey = join(work, "pcr.key");
    await runTool(openssl, ["genrsa", "-out", pcrKey, "2048"]);
    const secureBoot = { uki: await fileDigestSigner(key, cert), pcr: await fileKeySigner(pcrKey) };
    const prepared = await prepareVersion(fixture, version, ["testbed-dummy"]);
    const schematic = testSchematic(["testbed-dummy"], { extraKernelArgs: ["testbed.extra=yes"] });
    const built = await buildAsset(prepared, schematic, "metal-amd64-secureboot.iso", work, { secureBoot });
    const { report, seconds } = await boot({
      iso: built.path,
      firmware: "uefi-secureboot",
      allowReset: true,
      timeoutMs: 300_000,
    });
    console.log(`secure boot ISO, enrollment + enforced boot: ${seconds} s`);
    assert.deepEqual(report.errors, []);
    assert.equal(report.secureBoot, true);
    assert.ok(report.cmdline.split(" ").includes("testbed.extra=yes"), report.cmdline);
    assert.ok(report.cmdline.split(" ").includes("lockdown=confidentiality"), report.cmdline);
    assert.deepEqual(
      report.extensions.map((e) => e.name),
      ["testbed-dummy", "schematic", "modules.dep"],
    );
  });
});
