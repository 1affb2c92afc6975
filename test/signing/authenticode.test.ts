// Authenticode signing of PE files in TypeScript (src/signing/authenticode.ts), checked by Debian's sbsigntool:
// `sbverify --cert` must accept what is signed with that certificate's key and refuse another certificate or a
// changed byte; `sbsign` with the same key must name the same PE image hash (src/formats/authenticode.ts).

import "reflect-metadata";
import assert from "node:assert/strict";
import { randomBytes, webcrypto } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import * as x509 from "@peculiar/x509";
import { isAppError } from "../../src/errors.ts";
import { authenticodeDigest, parseCertificateTable } from "../../src/formats/authenticode.ts";
import { parsePe } from "../../src/formats/pe.ts";
import { assembleNative } from "../../src/formats/pe-native.ts";
import { signPeFile } from "../../src/signing/authenticode.ts";
import { type CertifiedSigner, fileDigestSigner } from "../../src/signing/digest-signer.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { runTool, runToolText, type Tool } from "../../src/tools/run.ts";
import { openssl, opensslKeyPair } from "./openssl-keys.ts";

const sbverify: Tool = { command: "sbverify", debianPackage: "sbsigntool" };
const sbsign: Tool = { command: "sbsign", debianPackage: "sbsigntool" };
const systemBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const systemStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

let dir: string;
let efi: string;
let signer: CertifiedSigner;

async function keyPair(name: string, keyArgs?: string[]): Promise<[string, string]> {
  const { key, cert } = await opensslKeyPair(dir, name, keyArgs);
  return [key, cert];
}

async function verifies(file: string, cert: string): Promise<boolean> {
  try {
    await runTool(sbverify, ["--cert", cert, file]);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "authenticode-test-"));
  efi = join(dir, "systemd-bootx64.efi");
  await copyFile(existsSync(systemBoot) ? systemBoot : (await fetchTestbedPackages()).systemdBoot.bootEfi, efi);
  const [key, cert] = await keyPair("uki-signing");
  signer = await fileDigestSigner(key, cert);
});
after(() => rm(dir, { recursive: true, force: true }));

describe("Authenticode signatures, checked by sbsigntool", () => {
  test("sbverify accepts the signed file with the signing certificate and refuses another", async () => {
    const signed = join(dir, "signed.efi");
    await signPeFile(efi, signed, signer);
    assert.ok(await verifies(signed, join(dir, "uki-signing.crt")));
    const [, other] = await keyPair("other");
    assert.equal(await verifies(signed, other), false);
    assert.equal(await verifies(efi, join(dir, "uki-signing.crt")), false, "the unsigned file is refused");
  });

  test("a changed byte in a section is refused", async () => {
    const signed = join(dir, "tampered.efi");
    await signPeFile(efi, signed, signer);
    const bytes = await readFile(signed);
    const text = parsePe(bytes).sections.find((s) => s.name === ".text");
    assert.ok(text);
    bytes[text.pointerToRawData + 100] = (bytes[text.pointerToRawData + 100] as number) ^ 0xff;
    await writeFile(signed, bytes);
    assert.equal(await verifies(signed, join(dir, "uki-signing.crt")), false);
  });

  test("the image hash is sbsign's: the digest in its SpcIndirectDataContent equals ours", async () => {
    const detached = join(dir, "sbsign.p7");
    await runTool(sbsign, [
      "--key",
      join(dir, "uki-signing.key"),
      "--cert",
      join(dir, "uki-signing.crt"),
      "--detached",
      "--output",
      detached,
      efi,
    ]);
    const dump = await runToolText(openssl, ["asn1parse", "-inform", "DER", "-in", detached]);
    // The first OCTET STRING of the content is SpcIndirectDataContent's messageDigest (the signed attributes
    // come after the certificate).
    const first = /OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]+)/.exec(dump);
    assert.ok(first, dump.slice(0, 2000));
    // Both hash the file padded to 8 bytes (this one is 140891 bytes on Debian 12), the padding included.
    const { digest } = await signPeFile(efi, join(dir, "for-sbsign.efi"), signer);
    assert.equal((first[1] as string).toLowerCase(), digest.toString("hex"));
  });

  test("the signed file hashes as the padded unsigned one did (certificate table excluded), and signing is deterministic", async () => {
    const a = join(dir, "a.efi");
    const b = join(dir, "b.efi");
    const { digest } = await signPeFile(efi, a, signer);
    await signPeFile(efi, b, signer);
    assert.deepEqual(await readFile(a), await readFile(b));
    assert.deepEqual((await authenticodeDigest(a)).digest, digest);
    const layout = (await authenticodeDigest(a)).layout;
    assert.ok(layout.certificateTable);
    assert.equal(layout.certificateTable.offset % 8, 0);
    const table = (await readFile(a)).subarray(layout.certificateTable.offset);
    assert.equal(parseCertificateTable(table).length, 1);
  });

  test("a signed file is not signed again", async () => {
    const signed = join(dir, "twice.efi");
    await signPeFile(efi, signed, signer);
    await assert.rejects(
      signPeFile(signed, join(dir, "thrice.efi"), signer),
      (e) => isAppError(e, "BadRequest") && /already signed/.test(e.message),
    );
    assert.equal(existsSync(join(dir, "thrice.efi")), false);
  });

  test("a UKI assembled as Talos 1.10+ does (headers written anew, a 3 MiB section) is signed and verified", async () => {
    const stubPath = existsSync(systemStub) ? systemStub : (await fetchTestbedPackages()).systemdBoot.stubEfi;
    const initrd = join(dir, "initrd");
    await writeFile(initrd, randomBytes(3 * 1024 * 1024 + 5));
    const uki = join(dir, "uki.efi");
    const out = createWriteStream(uki);
    await assembleNative(
      await readFile(stubPath),
      [
        { name: ".cmdline", source: { content: Buffer.from("console=ttyS0") } },
        { name: ".initrd", source: { path: initrd } },
      ],
      1559424892,
      out,
    );
    out.end();
    await finished(out);
    const signed = join(dir, "uki-signed.efi");
    await signPeFile(uki, signed, signer);
    assert.ok(await verifies(signed, join(dir, "uki-signing.crt")));
  });

  test("a PKCS#1 key file signs too", async () => {
    const [key, cert] = await keyPair("pkcs1");
    const pkcs1 = join(dir, "pkcs1-traditional.key");
    await runTool(openssl, ["rsa", "-in", key, "-traditional", "-out", pkcs1]);
    assert.match(await readFile(pkcs1, "utf8"), /BEGIN RSA PRIVATE KEY/);
    const signed = join(dir, "pkcs1.efi");
    await signPeFile(efi, signed, await fileDigestSigner(pkcs1, cert));
    assert.ok(await verifies(signed, cert));
  });
});

describe("signing keys are checked when loaded", () => {
  test("every problem of a key and certificate is reported at once", async () => {
    const [ecKey] = await keyPair("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    await assert.rejects(
      fileDigestSigner(ecKey, join(dir, "uki-signing.crt")),
      (e) => isAppError(e, "BadRequest") && /not RSA/.test(e.message) && /does not certify the key of/.test(e.message),
    );
    const [smallKey, smallCert] = await keyPair("small", ["-newkey", "rsa:1024"]);
    await assert.rejects(fileDigestSigner(smallKey, smallCert), /1024 bits, fewer than 2048/);
    await assert.rejects(fileDigestSigner(join(dir, "missing.key"), join(dir, "missing.crt")), (e) => {
      const message = (e as Error).message;
      return /missing\.key/.test(message) && /missing\.crt/.test(message);
    });
  });

  test("an expired certificate is refused", async () => {
    const keys = await webcrypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    );
    const certificate = await x509.X509CertificateGenerator.createSelfSigned(
      {
        name: "CN=expired",
        notBefore: new Date("2020-01-01T00:00:00Z"),
        notAfter: new Date("2021-01-01T00:00:00Z"),
        keys,
        signingAlgorithm: { name: "RSASSA-PKCS1-v1_5" },
      },
      webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1],
    );
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    const keyPath = join(dir, "expired.key");
    const certPath = join(dir, "expired.crt");
    await writeFile(keyPath, x509.PemConverter.encode(pkcs8, "PRIVATE KEY"));
    await writeFile(certPath, certificate.toString("pem"));
    await assert.rejects(fileDigestSigner(keyPath, certPath), /certificate expired/);
  });
});
