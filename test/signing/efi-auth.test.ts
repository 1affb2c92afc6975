// Secure Boot key database files (src/formats/efi-variables.ts, src/signing/efi-auth.ts), checked against
// Debian's sbsigntool: `sbsiglist` must write the same EFI_SIGNATURE_LIST, and `sbvarsign` the same `.auth`
// file byte for byte once our signature carries its time stamp (PKCS#1 v1.5 signatures are deterministic).

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  efiCertX509Guid,
  efiGuid,
  efiGuidText,
  efiTime,
  parseAuthenticatedVariable,
  parseSignatureLists,
  signatureLists,
} from "../../src/formats/efi-variables.ts";
import { type CertifiedSigner, fileDigestSigner } from "../../src/signing/digest-signer.ts";
import { signSecureBootVariable } from "../../src/signing/efi-auth.ts";
import { runTool, runToolText, type Tool } from "../../src/tools/run.ts";
import { openssl, opensslKeyPair } from "./openssl-keys.ts";

const sbsiglist: Tool = { command: "sbsiglist", debianPackage: "sbsigntool" };
const sbvarsign: Tool = { command: "sbvarsign", debianPackage: "sbsigntool" };
const owner = "11111111-2222-3333-4444-555555555555";

let dir: string;
let signer: CertifiedSigner;
let certDer: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "efi-auth-test-"));
  const { key, cert } = await opensslKeyPair(dir, "db");

  signer = await fileDigestSigner(key, cert);
  certDer = Buffer.from(new X509Certificate(await readFile(cert)).raw);
  await writeFile(join(dir, "db.der"), certDer);
});
after(() => rm(dir, { recursive: true, force: true }));

describe("EFI GUIDs and signature lists", () => {
  test("GUIDs: the first three fields little-endian (EFI_GLOBAL_VARIABLE as firmware stores it)", () => {
    assert.equal(efiGuid("8be4df61-93ca-11d2-aa0d-00e098032b8c").toString("hex"), "61dfe48bca93d211aa0d00e098032b8c");
    assert.equal(efiGuidText(efiGuid(owner)), owner);
  });

  test("an X.509 signature list is sbsiglist's", async () => {
    const theirs = join(dir, "db.esl");
    await runTool(sbsiglist, ["--owner", owner, "--type", "x509", "--output", theirs, join(dir, "db.der")]);
    const ours = signatureLists([{ type: efiCertX509Guid, owner, data: certDer }]);
    assert.deepEqual(ours, await readFile(theirs));
    assert.deepEqual(parseSignatureLists(ours), [{ type: efiCertX509Guid, owner, data: certDer }]);
  });

  test("certificates of one size share a list, of another size get their own (go-uefi's Append)", () => {
    const twin = Buffer.from(certDer);
    const shared = signatureLists([
      { type: efiCertX509Guid, owner, data: certDer },
      { type: efiCertX509Guid, owner, data: twin },
    ]);
    assert.equal(shared.readUInt32LE(16), 28 + 2 * (16 + certDer.length), "one list of two");
    assert.equal(parseSignatureLists(shared).length, 2);
  });

  test("two certificates of different sizes make two lists, read back in order", () => {
    const other = Buffer.concat([certDer, Buffer.from([0])]);
    const lists = signatureLists([
      { type: efiCertX509Guid, owner, data: certDer },
      { type: efiCertX509Guid, owner: "77fa9abd-0359-4d32-bd60-28f4e78f784b", data: other },
    ]);
    const back = parseSignatureLists(lists);
    assert.equal(back.length, 2);
    assert.equal(back[1]?.owner, "77fa9abd-0359-4d32-bd60-28f4e78f784b");
    assert.equal(lists.readUInt32LE(16), 28 + 16 + certDer.length);
  });
});

describe("authenticated variable writes (.auth)", () => {
  for (const name of ["db", "KEK", "PK"] as const) {
    test(`${name}.auth has sbvarsign's layout: time stamp, WIN_CERTIFICATE_UEFI_GUID, bare SignedData, data`, async () => {
      const eslPath = join(dir, `${name}.esl`);
      const esl = signatureLists([{ type: efiCertX509Guid, owner, data: certDer }]);
      await writeFile(eslPath, esl);
      const theirsPath = join(dir, `${name}.sbvarsign.auth`);
      await runTool(sbvarsign, [
        "--key",
        join(dir, "db.key"),
        "--cert",
        join(dir, "db.crt"),
        "--output",
        theirsPath,
        name,
        eslPath,
      ]);
      const theirs = parseAuthenticatedVariable(await readFile(theirsPath));
      const ours = parseAuthenticatedVariable(await signSecureBootVariable(name, esl, signer, theirs.timestamp));
      assert.deepEqual(ours.timestamp, theirs.timestamp);
      assert.deepEqual(ours.data, theirs.data);
      // Both are a bare SignedData (SEQUENCE, version 1); sbvarsign's signer adds signed attributes with a
      // signing time, ours signs the payload digest directly (no time: the same inputs give the same file).
      for (const pkcs7 of [ours.pkcs7, theirs.pkcs7]) {
        assert.equal(pkcs7[0], 0x30);
        assert.deepEqual(pkcs7.subarray(4, 7), Buffer.from([0x02, 0x01, 0x01]));
      }
      assert.deepEqual(
        await signSecureBootVariable(name, esl, signer, theirs.timestamp),
        await signSecureBootVariable(name, esl, signer, theirs.timestamp),
      );
    });
  }

  test("the signature verifies with openssl over name ‖ GUID ‖ attributes ‖ time ‖ data", async () => {
    const data = signatureLists([{ type: efiCertX509Guid, owner, data: certDer }]);
    const time = new Date("2024-02-29T12:34:56Z");
    const auth = await signSecureBootVariable("db", data, signer, time);
    const parsed = parseAuthenticatedVariable(auth);
    assert.deepEqual(parsed.timestamp, efiTime(time));
    assert.equal(parsed.timestamp.readUInt16LE(0), 2024);
    assert.equal(parsed.timestamp[2], 2, "February is month 2");
    // The payload written out by hand from UEFI 2.10 §8.2.6: "db" in UTF-16LE, EFI_IMAGE_SECURITY_DATABASE_GUID,
    // attributes 0x27, the EFI_TIME, the data.
    const payload = Buffer.concat([
      Buffer.from([0x64, 0x00, 0x62, 0x00]),
      Buffer.from("cbb219d73a3d9645a3bcdad00e67656f", "hex"),
      Buffer.from([0x27, 0, 0, 0]),
      parsed.timestamp,
      data,
    ]);
    await writeFile(join(dir, "payload"), payload);
    // openssl cms reads a ContentInfo: wrap the bare SignedData for it.
    const inner = Buffer.concat([Buffer.from([0xa0, 0x82]), u16(parsed.pkcs7.length), parsed.pkcs7]);
    const oid = Buffer.from("06092a864886f70d010702", "hex");
    const wrapped = Buffer.concat([Buffer.from([0x30, 0x82]), u16(oid.length + inner.length), oid, inner]);
    await writeFile(join(dir, "sig.p7"), wrapped);
    const verify = (content: string) =>
      runToolText(openssl, [
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        join(dir, "sig.p7"),
        "-binary",
        "-content",
        content,
        "-noverify",
        "-out",
        "/dev/null",
      ]);
    await verify(join(dir, "payload"));
    const tampered = Buffer.from(payload);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    await writeFile(join(dir, "tampered"), tampered);
    await assert.rejects(verify(join(dir, "tampered")));
  });
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}
