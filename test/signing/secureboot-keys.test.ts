// `boot-assets secureboot gen-keys DIR` (src/signing/secureboot-keys.ts): the key set `talosctl gen secureboot
// uki` and `pcr` make (siderolabs/talos cmd/talosctl/cmd/mgmt/gen/secureboot.go: uki-signing-{key,cert}.pem,
// uki-signing-cert.der, pcr-signing-key.pem; RSA 4096 and 2048; a self-signed CA certificate O=<common name>,
// sha512WithRSA, valid 87600 hours, without upstream's TLS extended key usage; files 0600; existing files refused without --force), read by openssl, taken
// by the factory's start-up key checks, and signing a PE file that `sbverify --cert` accepts.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { signPeFile } from "../../src/signing/authenticode.ts";
import { fileDigestSigner } from "../../src/signing/digest-signer.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { runTool, runToolText, type Tool } from "../../src/tools/run.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { openssl } from "./openssl-keys.ts";

const sbverify: Tool = { command: "sbverify", debianPackage: "sbsigntool" };
const systemBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const names = ["uki-signing-cert.pem", "uki-signing-cert.der", "uki-signing-key.pem", "pcr-signing-key.pem"];

let home: string;
let dir: string;
let firstRun: { code: number | null; stdout: string; stderr: string };

before(async () => {
  home = await mkdtemp(join(tmpdir(), "secureboot-keys-test-"));
  dir = join(home, "keys", "set");
  const result = await runCli(["secureboot", "gen-keys", dir], isolatedEnv(home), 180_000);
  firstRun = { ...result, stdout: result.stdout.toString("utf8") };
});
after(() => rm(home, { recursive: true, force: true }));

describe("boot-assets secureboot gen-keys (talosctl gen secureboot uki + pcr)", () => {
  test("writes the four files with upstream's names, says so, keys and certificates 0600 in a 0700 directory", async () => {
    assert.equal(firstRun.code, 0, firstRun.stderr);
    const lines = firstRun.stdout.trim().split("\n");
    assert.deepEqual(
      lines.map((l) => /^wrote (\S+): /.exec(l)?.[1]),
      names.map((n) => join(dir, n)),
    );
    for (const name of names) assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
  });

  test("openssl reads them: O=Test UKI Signing Key, sha512WithRSA, 4096-bit, CA, 87600 hours; both keys check", async () => {
    const cert = join(dir, "uki-signing-cert.pem");
    assert.equal(
      (await runToolText(openssl, ["x509", "-in", cert, "-noout", "-subject"])).trim(),
      "subject=O = Test UKI Signing Key",
    );
    const text = await runToolText(openssl, ["x509", "-in", cert, "-noout", "-text"]);
    assert.match(text, /Signature Algorithm: sha512WithRSAEncryption/);
    assert.match(text, /Public-Key: \(4096 bit\)/);
    assert.match(text, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(text, /Key Usage: critical\s+Digital Signature, Certificate Sign/);
    // Upstream's serverAuth + clientAuth extended key usage is left out: sbverify refuses signers restricted so.
    assert.doesNotMatch(text, /Extended Key Usage/);
    const parsed = new X509Certificate(await readFile(cert));
    assert.equal(Date.parse(parsed.validTo) - Date.parse(parsed.validFrom), 87_600 * 3600 * 1000);
    assert.deepEqual(
      await readFile(join(dir, "uki-signing-cert.der")),
      parsed.raw,
      "the DER file is the same certificate",
    );
    for (const [key, bits] of [
      ["uki-signing-key.pem", 4096],
      ["pcr-signing-key.pem", 2048],
    ] as const) {
      const pem = await readFile(join(dir, key), "utf8");
      assert.ok(pem.startsWith("-----BEGIN RSA PRIVATE KEY-----\n"), `${key}: PKCS#1, as Go's x509 writes it`);
      assert.match(await runToolText(openssl, ["rsa", "-in", join(dir, key), "-check", "-noout"]), /RSA key ok/);
      assert.match(
        await runToolText(openssl, ["rsa", "-in", join(dir, key), "-noout", "-text"]),
        new RegExp(`Private-Key: \\(${bits} bit`),
      );
    }
  });

  test("the factory's start-up checks take them", async () => {
    const config = await parseFactoryCommandLine(
      [
        "-secureboot",
        "-secureboot-signing-key-path",
        join(dir, "uki-signing-key.pem"),
        "-secureboot-signing-cert-path",
        join(dir, "uki-signing-cert.pem"),
        "-secureboot-pcr-key-path",
        join(dir, "pcr-signing-key.pem"),
        "--data-dir",
        join(home, "data"),
      ],
      {},
    );
    assert.equal(config.secureBoot.enabled, true);
  });

  test("a PE file signed with them is accepted by sbverify --cert", async () => {
    const efi = join(home, "systemd-bootx64.efi");
    await copyFile(existsSync(systemBoot) ? systemBoot : (await fetchTestbedPackages()).systemdBoot.bootEfi, efi);
    const signer = await fileDigestSigner(join(dir, "uki-signing-key.pem"), join(dir, "uki-signing-cert.pem"));
    await signPeFile(efi, join(home, "signed.efi"), signer);
    await runTool(sbverify, ["--cert", join(dir, "uki-signing-cert.pem"), join(home, "signed.efi")]);
  });

  test("existing files are refused, naming them, and left as they were; --force replaces them; --common-name", async () => {
    const before = await readFile(join(dir, "uki-signing-key.pem"));
    const refused = await runCli(["secureboot", "gen-keys", dir], isolatedEnv(home), 180_000);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /uki-signing-key\.pem.*already exist.*--force/);
    assert.deepEqual(await readFile(join(dir, "uki-signing-key.pem")), before);
    const forced = await runCli(
      ["secureboot", "gen-keys", dir, "--force", "--common-name", "Acme UKI"],
      isolatedEnv(home),
      180_000,
    );
    assert.equal(forced.code, 0, forced.stderr);
    assert.notDeepEqual(await readFile(join(dir, "uki-signing-key.pem")), before);
    assert.equal(
      (await runToolText(openssl, ["x509", "-in", join(dir, "uki-signing-cert.pem"), "-noout", "-subject"])).trim(),
      "subject=O = Acme UKI",
    );
  });
});
