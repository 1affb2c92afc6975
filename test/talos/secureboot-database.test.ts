// The Secure Boot enrollment database (src/talos/secureboot-database.ts): the owner GUID computed by Go's own
// google/uuid and encoding/pem (test/talos/go-uuid/main.go, Debian's golang-go and golang-github-google-uuid-dev,
// built offline) as talos internal/pkg/secureboot/database/database.go computes it; the three files read back.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path, { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { efiCertX509Guid, parseAuthenticatedVariable, parseSignatureLists } from "../../src/formats/efi-variables.ts";
import { type CertifiedSigner, fileDigestSigner } from "../../src/signing/digest-signer.ts";
import {
  enrollmentDatabase,
  enrollmentOwnerGuid,
  microsoftSignatureOwnerGuid,
} from "../../src/talos/secureboot-database.ts";
import { opensslKeyPair } from "../signing/openssl-keys.ts";

const here = path.dirname(new URL(import.meta.url).pathname);

let dir: string;
let signer: CertifiedSigner;

function goOwnerGuid(der: Buffer): string {
  return execFileSync("go", ["run", join(here, "go-uuid", "main.go")], {
    input: der,
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      GO111MODULE: "off",
      GOPATH: "/usr/share/gocode",
      GOCACHE: join(dir, "go-build"),
      GOFLAGS: "",
      GOPROXY: "off",
      CGO_ENABLED: "0",
    },
  })
    .toString()
    .trim();
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "secureboot-db-test-"));
  const { key, cert } = await opensslKeyPair(dir, "uki");

  signer = await fileDigestSigner(key, cert);
});
after(() => rm(dir, { recursive: true, force: true }));

describe("Secure Boot enrollment database (talos database.go Generate)", () => {
  test("the owner GUID is google/uuid's NewHash(sha256, NameSpaceX500, PEM, 4), as Go computes it", () => {
    assert.equal(enrollmentOwnerGuid(signer.certificate), goOwnerGuid(signer.certificate));
    const other = Buffer.from(signer.certificate);
    other[other.length - 1] = (other[other.length - 1] as number) ^ 1;
    assert.equal(enrollmentOwnerGuid(other), goOwnerGuid(other));
  });

  test("db, KEK and PK carry the certificate (DER) under that owner; well-known ones under Microsoft's", async () => {
    const wellKnown = { kek: [Buffer.from("kek-cert")], db: [Buffer.from("db-cert-1"), Buffer.from("db-cert-22")] };
    const files = await enrollmentDatabase(signer, { time: new Date("2025-01-02T03:04:05Z"), wellKnown });
    assert.deepEqual(
      files.map((f) => f.name),
      ["db.auth", "KEK.auth", "PK.auth"],
    );
    const owner = enrollmentOwnerGuid(signer.certificate);
    const entries = Object.fromEntries(
      files.map((f) => [f.name, parseSignatureLists(parseAuthenticatedVariable(f.contents).data)]),
    );
    const own = { type: efiCertX509Guid, owner, data: signer.certificate };
    const ms = (data: Buffer) => ({ type: efiCertX509Guid, owner: microsoftSignatureOwnerGuid, data });
    const plain = (list: { type: string; owner: string; data: Uint8Array }[] | undefined) =>
      list?.map((e) => ({ ...e, data: Buffer.from(e.data) }));
    assert.deepEqual(plain(entries["PK.auth"]), [own]);
    assert.deepEqual(plain(entries["KEK.auth"]), [own, ms(Buffer.from("kek-cert"))]);
    assert.deepEqual(plain(entries["db.auth"]), [own, ms(Buffer.from("db-cert-1")), ms(Buffer.from("db-cert-22"))]);
    const time = parseAuthenticatedVariable(files[0]?.contents as Buffer).timestamp;
    assert.deepEqual([time.readUInt16LE(0), time[2], time[3], time[4], time[5], time[6]], [2025, 1, 2, 3, 4, 5]);
  });

  test("without well-known certificates each database holds only the certificate", async () => {
    const files = await enrollmentDatabase(signer, { time: new Date(0) });
    for (const f of files) assert.equal(parseSignatureLists(parseAuthenticatedVariable(f.contents).data).length, 1);
    assert.ok((await readFile(join(dir, "uki.crt"), "utf8")).includes("BEGIN CERTIFICATE"));
  });
});
