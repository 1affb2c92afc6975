// The well-known UEFI CA certificates of `secureboot.includeWellKnownCertificates` (src/imager/well-known-certificates.ts):
// found in Debian sid's python3-virt-firmware (fetched with the real apt through the project's own configuration)
// or in an operator's directory, by fingerprint; then enrolled as talos internal/pkg/secureboot/database/database.go
// Generate does: KEK = [ours, KEK CA 2011, KEK 2K CA 2023], db = [ours, UEFI CA 2011, Option ROM UEFI CA 2023,
// UEFI CA 2023] (the DER files of its certs/{kek,db}, in file-name order), the well-known ones owned by Microsoft's
// GUID. The signature lists are checked against Debian's `sbsiglist`.

import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { httpStatusOf, isAppError } from "../../src/errors.ts";
import { efiCertX509Guid, parseAuthenticatedVariable, parseSignatureLists } from "../../src/formats/efi-variables.ts";
import {
  wellKnownCertificatesFromDebian,
  wellKnownCertificatesFromDirectory,
  wellKnownCertificatesLoader,
} from "../../src/imager/well-known-certificates.ts";
import { type CertifiedSigner, fileDigestSigner } from "../../src/signing/digest-signer.ts";
import {
  enrollmentDatabase,
  enrollmentOwnerGuid,
  type WellKnownCertificates,
} from "../../src/talos/secureboot-database.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { runTool, type Tool } from "../../src/tools/run.ts";
import { opensslKeyPair } from "../signing/openssl-keys.ts";

const sbsiglist: Tool = { command: "sbsiglist", debianPackage: "sbsigntool" };
const microsoftOwner = "77fa9abd-0359-4d32-bd60-28f4e78f784b";

// SHA-256 of upstream's DER files (siderolabs/talos internal/pkg/secureboot/database/certs), with their subjects' CN.
const expected = {
  kek: [
    ["a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503", "Microsoft Corporation KEK CA 2011"],
    ["3cd3f0309edae228767a976dd40d9f4affc4fbd5218f2e8cc3c9dd97e8ac6f9d", "Microsoft Corporation KEK 2K CA 2023"],
  ],
  db: [
    ["48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507", "Microsoft Corporation UEFI CA 2011"],
    ["e5be3e64c6e66a281457ecdece0d6d0787577aad2a3a0144262c10c14ba8d8f1", "Microsoft Option ROM UEFI CA 2023"],
    ["f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901", "Microsoft UEFI CA 2023"],
  ],
} as const;

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const commonName = (der: Uint8Array) => /^CN=(.*)$/m.exec(new X509Certificate(der).subject)?.[1];
const describeCerts = (certs: readonly Uint8Array[]) => certs.map((c) => [sha256(c), commonName(c)]);

let dir: string;
let debian: WellKnownCertificates;
let signer: CertifiedSigner;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "well-known-certs-test-"));
  debian = await wellKnownCertificatesFromDebian(bootAssetsCacheDir(), { log: (line) => console.log(line) });
  const { key, cert } = await opensslKeyPair(dir, "uki");
  signer = await fileDigestSigner(key, cert);
});
after(() => rm(dir, { recursive: true, force: true }));

describe("the well-known UEFI CA certificates", () => {
  test("Debian sid's python3-virt-firmware holds all five, picked by fingerprint, in upstream's order", () => {
    assert.deepEqual(describeCerts(debian.kek), expected.kek);
    assert.deepEqual(describeCerts(debian.db), expected.db);
  });

  test("KEK.auth and db.auth: ours first under its own GUID, then Microsoft's in order — as sbsiglist lists them", async () => {
    const files = await enrollmentDatabase(signer, { time: new Date("2026-01-01T00:00:00Z"), wellKnown: debian });
    const own = enrollmentOwnerGuid(signer.certificate);
    await writeFile(join(dir, "own.der"), signer.certificate);
    const esl = async (owner: string, der: Uint8Array, name: string): Promise<Buffer> => {
      await writeFile(join(dir, `${name}.der`), der);
      await runTool(sbsiglist, [
        "--owner",
        owner,
        "--type",
        "x509",
        "--output",
        join(dir, `${name}.esl`),
        join(dir, `${name}.der`),
      ]);
      return await readFile(join(dir, `${name}.esl`));
    };
    for (const [name, certs, pins] of [
      ["KEK.auth", debian.kek, expected.kek],
      ["db.auth", debian.db, expected.db],
    ] as const) {
      const data = parseAuthenticatedVariable(files.find((f) => f.name === name)?.contents ?? Buffer.alloc(0)).data;
      const entries = parseSignatureLists(data);
      assert.deepEqual(
        entries.map((e) => [e.type, e.owner, sha256(e.data)]),
        [
          [efiCertX509Guid, own, sha256(signer.certificate)],
          ...pins.map(([fingerprint]) => [efiCertX509Guid, microsoftOwner, fingerprint]),
        ],
        name,
      );
      // Every certificate has its own size, so each is its own list, and the lists are sbsiglist's.
      const theirs = [await esl(own, signer.certificate, `${name}-own`)];
      for (const [i, c] of certs.entries()) theirs.push(await esl(microsoftOwner, c, `${name}-${i}`));
      assert.deepEqual(data, Buffer.concat(theirs), `${name}: the signature lists sbsiglist writes`);
    }
    const pk = parseSignatureLists(
      parseAuthenticatedVariable(files.find((f) => f.name === "PK.auth")?.contents ?? Buffer.alloc(0)).data,
    );
    assert.deepEqual(
      pk.map((e) => e.owner),
      [own],
      "PK holds only ours",
    );
  });

  test("an operator's directory: DER and PEM files of any name, other files ignored", async () => {
    const ours = join(dir, "ours");
    await mkdir(join(ours, "nested"), { recursive: true });
    const pem = (der: Uint8Array) => new X509Certificate(der).toString();
    await writeFile(join(ours, "a.cer"), debian.kek[1] as Buffer);
    await writeFile(
      join(ours, "bundle.pem"),
      `notes\n${pem(debian.db[2] as Buffer)}text\n${pem(debian.kek[0] as Buffer)}`,
    );
    await writeFile(join(ours, "z.crt"), pem(debian.db[0] as Buffer));
    await writeFile(join(ours, "rom.der"), debian.db[1] as Buffer);
    await writeFile(join(ours, "README"), "not a certificate\n");
    await writeFile(join(ours, "own.der"), signer.certificate);
    const found = await wellKnownCertificatesFromDirectory(ours);
    assert.deepEqual(describeCerts(found.kek), expected.kek);
    assert.deepEqual(describeCerts(found.db), expected.db);
  });

  test("a directory lacking one is a 503 naming it; a changed byte is a missing certificate too", async () => {
    const lacking = join(dir, "lacking");
    await mkdir(lacking);
    for (const [i, c] of [...debian.kek, debian.db[0], debian.db[2]].entries())
      await writeFile(join(lacking, `${i}.der`), c as Buffer);
    const tampered = Buffer.from(debian.db[1] as Buffer);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    await writeFile(join(lacking, "rom.der"), tampered);
    await assert.rejects(wellKnownCertificatesFromDirectory(lacking), (err: unknown) => {
      assert.ok(isAppError(err, "Upstream"));
      assert.equal(httpStatusOf(err), 503);
      assert.match(
        err.message,
        new RegExp(
          `${lacking}.* lacks the well-known UEFI certificate "Microsoft Option ROM UEFI CA 2023" \\(DER SHA-256 ${expected.db[1][0]}\\)`,
        ),
      );
      assert.doesNotMatch(err.message, /KEK CA 2011/);
      return true;
    });
    await assert.rejects(wellKnownCertificatesFromDirectory(join(dir, "absent")), (err: unknown) => {
      assert.ok(isAppError(err, "Upstream"));
      assert.match(err.message, /absent.*ENOENT/);
      return true;
    });
  });

  test("the loader keeps what it found for the process, and does not keep a failure", async () => {
    const later = join(dir, "later");
    const load = wellKnownCertificatesLoader({ kind: "directory", directory: later });
    await assert.rejects(load(), /later/);
    await mkdir(later);
    for (const [i, c] of [...debian.kek, ...debian.db].entries()) await writeFile(join(later, `${i}.der`), c);
    const first = await load();
    await rm(later, { recursive: true });
    assert.equal(await load(), first, "the same certificates, without reading the directory again");
  });
});
