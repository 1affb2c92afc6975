// Keyless signatures whose signing time comes from an RFC 3161 timestamp authority instead of (or as well as)
// a Rekor SET: legacy `.sig` layers with cosign's `rfc3161timestamp` annotation and v0.3 bundles with
// `timestampVerificationData`, verified through the embedded registry against a trusted root listing the test
// TSA. Also checks that the test TSA's tokens are what sigstore-js and OpenSSL accept on their own.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, X509Certificate as NodeCertificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { bundleFromJSON } from "@sigstore/bundle";
import { RFC3161Timestamp, crypto as sigstoreCrypto, X509Certificate } from "@sigstore/core";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import type { RegistryClient } from "../../src/oci/client/index.ts";
import type { RemoteRepository } from "../../src/oci/client/remote-repository.ts";
import type { Digest } from "../../src/oci/digest.ts";
import type { Descriptor } from "../../src/oci/manifest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import {
  Annotation,
  cosignSignStatement,
  formatLegacyTimestampAnnotation,
  simpleSigningPayload,
} from "../../src/signing/cosign-format.ts";
import type { IdentityMatcher } from "../../src/signing/policy.ts";
import { derInteger, derSequence } from "../../src/signing/testing/der.ts";
import {
  createTestSigstore,
  OidTimeStamping,
  type TestSigstore,
  TestTimestampAuthority,
} from "../../src/signing/testing/index.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { expectIntegrity, pushBundleReferrer, pushLegacySignatures, sha256, testClient } from "./verify-fixtures.ts";

const run = promisify(execFile);

const githubIssuer = "https://token.actions.githubusercontent.com";
const workflow = "https://github.com/OWNER/REPO/.github/workflows/release.yaml@refs/heads/main";
const ciIdentity: IdentityMatcher = { issuer: githubIssuer, subject: workflow };
const signer = { issuer: githubIssuer, subject: workflow };

let sigstore: TestSigstore;
let dir: string;
let trustedRootFile: string;

before(async () => {
  sigstore = await createTestSigstore({ tsa: true });
  dir = await mkdtemp(join(tmpdir(), "verify-tsa-"));
  trustedRootFile = join(dir, "trusted_root.json");
  await sigstore.writeTrustedRoot(trustedRootFile);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the test TSA's tokens", () => {
  test("sigstore-js parses and verifies a token over the given bytes, and refuses other bytes", () => {
    const tsa = sigstore.tsa as TestTimestampAuthority;
    const data = Buffer.from("the raw signature bytes");
    const genTime = new Date("2030-01-02T03:04:05.678Z");
    const timestamp = RFC3161Timestamp.parse(Buffer.from(tsa.timestamp(data, { genTime })));
    assert.equal(timestamp.status, 0n);
    // Whole seconds: DER has no trailing zeros in fractions, so the test TSA leaves milliseconds out.
    assert.equal(timestamp.signingTime.toISOString(), "2030-01-02T03:04:05.000Z");
    assert.equal(timestamp.tstInfo.messageImprintHashAlgorithm, "sha256");
    assert.deepEqual(timestamp.tstInfo.messageImprintHashedMessage, createHash("sha256").update(data).digest());
    const tsaLeaf = X509Certificate.parse(Buffer.from(tsa.leaf.der));
    assert.deepEqual(timestamp.signerSerialNumber, tsaLeaf.serialNumber);
    assert.deepEqual(timestamp.signerIssuer, tsaLeaf.issuer);
    const key = sigstoreCrypto.createPublicKey(tsaLeaf.publicKey);
    timestamp.verify(data, key);
    assert.throws(() => timestamp.verify(Buffer.from("other bytes"), key), /message imprint does not match/);
  });

  test("the TSA certificate carries only the timeStamping EKU, critical, and chains to the TSA root", () => {
    const tsa = sigstore.tsa as TestTimestampAuthority;
    const leaf = new NodeCertificate(tsa.leaf.der);
    const root = new NodeCertificate(tsa.root.der);
    assert.deepEqual(leaf.keyUsage, [OidTimeStamping]);
    assert.ok(leaf.verify(root.publicKey), "TSA certificate signed by the TSA root");
    assert.ok(leaf.checkIssued(root));
    assert.equal(tsa.leaf.certificate.getExtension("2.5.29.37")?.critical, true);
  });

  test("sigstore-js's Verifier accepts a TSA-only bundle against the trusted root", async () => {
    const { bundle } = await sigstore.keylessBundleTimestamped(cosignSignStatement(sha256("x")), signer);
    const root = sigstore.trustedRoot();
    assert.equal(root.timestampAuthorities.length, 1);
    const material = toTrustMaterial(TrustedRoot.fromJSON(root));
    const entity = toSignedEntity(bundleFromJSON(bundle));
    assert.equal(entity.tlogEntries.length, 0);
    const result = new Verifier(material, { ctlogThreshold: 0, tlogThreshold: 0, timestampThreshold: 1 }).verify(
      entity,
    );
    assert.equal(result.identity?.subjectAlternativeName, workflow);
  });

  test("OpenSSL verifies the response on its own (an independent RFC 3161 implementation)", async (t) => {
    try {
      await run("openssl", ["version"]);
    } catch {
      t.skip("openssl is not installed");
      return;
    }
    const tsa = sigstore.tsa as TestTimestampAuthority;
    const work = await mkdtemp(join(tmpdir(), "tsa-openssl-"));
    t.after(() => rm(work, { recursive: true, force: true }));
    const data = Buffer.from("signature bytes for openssl");
    await writeFile(join(work, "data"), data);
    await writeFile(join(work, "other"), "something else");
    await writeFile(join(work, "resp.tsr"), tsa.timestamp(data));
    await writeFile(join(work, "root.pem"), tsa.root.pem);
    await writeFile(join(work, "tsa.pem"), tsa.leaf.pem);
    const verifyArgs = (file: string) => [
      "ts",
      "-verify",
      "-data",
      join(work, file),
      "-in",
      join(work, "resp.tsr"),
      "-CAfile",
      join(work, "root.pem"),
      "-untrusted",
      join(work, "tsa.pem"),
    ];
    const ok = await run("openssl", verifyArgs("data"));
    assert.match(ok.stdout, /Verification: OK/);
    await assert.rejects(run("openssl", verifyArgs("other")));
    const text = await run("openssl", ["ts", "-reply", "-in", join(work, "resp.tsr"), "-text"]);
    assert.match(text.stdout, /Status: Granted/);
    assert.match(text.stdout, new RegExp(`Policy OID: ${tsa.policy.replaceAll(".", "\\.")}`));
    assert.match(text.stdout, /Hash Algorithm: sha256/);
  });
});

describe("keyless signatures timestamped by a TSA (embedded registry)", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let counter = 0;

  before(async () => {
    registry = await startEmbeddedRegistry();
    client = testClient(registry.host);
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
  });

  async function freshImage(): Promise<{
    repo: RemoteRepository;
    name: string;
    digest: Digest;
    descriptor: Descriptor;
  }> {
    const name = `${registry.host}/tsa/image-${++counter}`;
    const repo = client.repository(name);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: counter }));
    await repo.putBlob(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
        layers: [],
      }),
    );
    const digest = await repo.putManifest(manifest, MediaType.ociManifest, "v1");
    return { repo, name, digest, descriptor: { mediaType: MediaType.ociManifest, size: manifest.length, digest } };
  }

  const verifier = (identities: IdentityMatcher[] = [ciIdentity], rootFile = trustedRootFile) =>
    SignatureVerifier.create(client, { disabled: false, trustedRootFile: rootFile, identities });

  type LegacyArgs = Parameters<TestSigstore["keylessSignTimestamped"]>;
  type BundleArgs = Parameters<TestSigstore["keylessBundleTimestamped"]>;

  async function legacyImage(identity: LegacyArgs[1] = signer, options: LegacyArgs[2] = {}) {
    const image = await freshImage();
    const payload = simpleSigningPayload(image.name, image.digest);
    const signed = await sigstore.keylessSignTimestamped(payload, identity, options);
    await pushLegacySignatures(image.repo, image.digest, [{ payload, annotations: signed.annotations }]);
    return { ...image, signed };
  }

  async function bundleImage(identity: BundleArgs[1] = signer, options: BundleArgs[2] = {}) {
    const image = await freshImage();
    const made = await sigstore.keylessBundleTimestamped(cosignSignStatement(image.digest), identity, options);
    await pushBundleReferrer(image.repo, image.descriptor, Buffer.from(JSON.stringify(made.bundle)));
    return { ...image, made };
  }

  test("legacy: the rfc3161timestamp annotation alone proves the signing time", async () => {
    const genTime = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000);
    const { name, digest, signed } = await legacyImage(signer, { genTime });
    // What cosign writes: JSON {"SignedRFC3161Timestamp": base64 DER response}, and no Rekor bundle.
    assert.equal(signed.annotations[Annotation.bundle], undefined);
    assert.deepEqual(JSON.parse(signed.annotations[Annotation.rfc3161Timestamp] as string), {
      SignedRFC3161Timestamp: signed.timestamp.toString("base64"),
    });
    const verified = await (await verifier()).verify(`${name}:v1`);
    assert.equal(verified.digest, digest);
    const [only] = verified.signatures;
    assert.equal(verified.signatures.length, 1);
    assert.equal(only?.kind, "legacy");
    assert.ok(only?.signer.mode === "keyless");
    assert.equal(only.signer.subject, workflow);
    assert.equal(only.signer.integratedTime, undefined);
    assert.equal(only.signer.timestampAuthorityTime?.getTime(), genTime.getTime());
  });

  test("bundle: rfc3161Timestamps alone, no tlog entry", async () => {
    const { name, digest, made } = await bundleImage();
    assert.equal(made.bundle.verificationMaterial.tlogEntries.length, 0);
    const verified = await (await verifier()).verify(`${name}:v1`);
    assert.equal(verified.digest, digest);
    assert.deepEqual(
      verified.signatures.map((s) => [s.kind, s.signer.mode, s.signer.mode === "keyless" && s.signer.subject]),
      [["bundle", "keyless", workflow]],
    );
  });

  test("both a Rekor SET and a TSA timestamp: both times reported", async () => {
    const legacy = await legacyImage(signer, { rekor: true });
    assert.ok(legacy.signed.annotations[Annotation.bundle]);
    const [a] = (await (await verifier()).verify(`${legacy.name}:v1`)).signatures;
    assert.ok(a?.signer.mode === "keyless" && a.signer.integratedTime && a.signer.timestampAuthorityTime);
    const bundle = await bundleImage(signer, { rekor: true });
    assert.equal(bundle.made.bundle.verificationMaterial.tlogEntries.length, 1);
    const [b] = (await (await verifier()).verify(`${bundle.name}:v1`)).signatures;
    assert.ok(b?.signer.mode === "keyless" && b.signer.integratedTime && b.signer.timestampAuthorityTime);
  });

  test("a wrong identity fails", async () => {
    const other: IdentityMatcher = {
      issuer: githubIssuer,
      subject: "https://github.com/OWNER/OTHER/.github/workflows/release.yaml@refs/heads/main",
    };
    const legacy = await legacyImage();
    await expectIntegrity((await verifier([other])).verify(`${legacy.name}:v1`), /does not match/);
    const bundle = await bundleImage();
    await expectIntegrity((await verifier([other])).verify(`${bundle.name}:v1`), /does not match/);
  });

  test("a timestamp over other bytes (not this signature) fails", async () => {
    const legacy = await legacyImage(signer, { over: Buffer.from("another signature") });
    await expectIntegrity((await verifier()).verify(`${legacy.name}:v1`), /timestamp could not be verified/);
    const bundle = await bundleImage(signer, { over: Buffer.from("another signature") });
    await expectIntegrity((await verifier()).verify(`${bundle.name}:v1`), /timestamp could not be verified/);
  });

  test("a timestamp moved from another signature fails", async () => {
    const image = await freshImage();
    const payload = simpleSigningPayload(image.name, image.digest);
    const first = await sigstore.keylessSignTimestamped(payload, signer);
    const second = await sigstore.keylessSignTimestamped(payload, signer);
    const annotations = {
      ...second.annotations,
      [Annotation.rfc3161Timestamp]: first.annotations[Annotation.rfc3161Timestamp] as string,
    };
    await pushLegacySignatures(image.repo, image.digest, [{ payload, annotations }]);
    await expectIntegrity((await verifier()).verify(`${image.name}:v1`), /timestamp could not be verified/);
  });

  test("a TSA that is not in the trusted root fails", async () => {
    const stranger = await TestTimestampAuthority.create({ name: "stranger-tsa" });
    const legacy = await legacyImage(signer, { authority: stranger });
    await expectIntegrity((await verifier()).verify(`${legacy.name}:v1`), /timestamp could not be verified/);
    const bundle = await bundleImage(signer, { authority: stranger });
    await expectIntegrity((await verifier()).verify(`${bundle.name}:v1`), /timestamp could not be verified/);
    // The same signatures verify once the trusted root lists that TSA: the failure was the trust, not the shape.
    const root = sigstore.trustedRoot();
    root.timestampAuthorities = [stranger.trustedRootEntry()];
    const strangerRoot = join(dir, "stranger-root.json");
    await writeFile(strangerRoot, JSON.stringify(root));
    assert.equal((await (await verifier([ciIdentity], strangerRoot)).verify(`${legacy.name}:v1`)).verified, true);
  });

  test("a trusted-root TSA whose certificate lacks the critical timeStamping-only EKU is not trusted", async () => {
    const variants = [
      { name: "eku-not-critical", extendedKeyUsage: { usages: [OidTimeStamping], critical: false } },
      { name: "eku-code-signing", extendedKeyUsage: { usages: ["1.3.6.1.5.5.7.3.3"], critical: true } },
      { name: "eku-two-usages", extendedKeyUsage: { usages: [OidTimeStamping, "1.3.6.1.5.5.7.3.3"], critical: true } },
      { name: "eku-absent", extendedKeyUsage: null },
    ];
    for (const variant of variants) {
      const authority = await TestTimestampAuthority.create(variant);
      const root = sigstore.trustedRoot();
      root.timestampAuthorities = [authority.trustedRootEntry()];
      const rootFile = join(dir, `${variant.name}-root.json`);
      await writeFile(rootFile, JSON.stringify(root));
      const legacy = await legacyImage(signer, { authority });
      await expectIntegrity(
        (await verifier([ciIdentity], rootFile)).verify(`${legacy.name}:v1`),
        /timestamp could not be verified/,
      );
    }
  });

  test("a certificate expired at the TSA's genTime fails; valid at genTime passes though expired now", async () => {
    const hour = 3600_000;
    const leaf = { notBefore: new Date(Date.now() - 2 * hour), notAfter: new Date(Date.now() - hour) };
    const expired = await legacyImage({ ...signer, leaf }, { genTime: new Date() });
    await expectIntegrity(
      (await verifier()).verify(`${expired.name}:v1`),
      /certificate is not valid or expired at the specified date/,
    );
    const expiredBundle = await bundleImage({ ...signer, leaf }, { genTime: new Date() });
    await expectIntegrity(
      (await verifier()).verify(`${expiredBundle.name}:v1`),
      /certificate is not valid or expired at the specified date/,
    );
    // Signed and timestamped while the certificate was valid: the TSA's time is the one that counts.
    const inTime = await legacyImage({ ...signer, leaf }, { genTime: new Date(Date.now() - 1.5 * hour) });
    assert.equal((await (await verifier()).verify(`${inTime.name}:v1`)).verified, true);
  });

  test("neither a Rekor entry nor a timestamp fails", async () => {
    const image = await freshImage();
    const payload = simpleSigningPayload(image.name, image.digest);
    const signed = await sigstore.keylessSignTimestamped(payload, signer);
    const { [Annotation.rfc3161Timestamp]: _dropped, ...annotations } = signed.annotations;
    await pushLegacySignatures(image.repo, image.digest, [{ payload, annotations }]);
    await expectIntegrity(
      (await verifier()).verify(`${image.name}:v1`),
      /no Rekor bundle annotation and no RFC 3161 timestamp annotation/,
    );

    const bare = await freshImage();
    const made = await sigstore.keylessBundleTimestamped(cosignSignStatement(bare.digest), signer);
    made.bundle.verificationMaterial.timestampVerificationData = {};
    assert.equal(made.bundle.verificationMaterial.tlogEntries.length, 0);
    await pushBundleReferrer(bare.repo, bare.descriptor, Buffer.from(JSON.stringify(made.bundle)));
    await expectIntegrity((await verifier()).verify(`${bare.name}:v1`), /expected 1 timestamps, got 0/);
  });

  test("a response whose status is not granted, or an oversized timestamp, is refused", async () => {
    const tsa = sigstore.tsa as TestTimestampAuthority;
    const image = await freshImage();
    const payload = simpleSigningPayload(image.name, image.digest);
    const signed = await sigstore.keylessSignTimestamped(payload, signer);
    // Status 2 (rejection) around an otherwise valid token over this very signature.
    const response = (status: number) => derSequence(derSequence(derInteger(status)), tsa.token(signed.signature));
    const withTimestamp = (annotation: string) => ({
      payload,
      annotations: { ...signed.annotations, [Annotation.rfc3161Timestamp]: annotation },
    });
    const huge = formatLegacyTimestampAnnotation(Buffer.alloc(65 * 1024, 0x30));
    await pushLegacySignatures(image.repo, image.digest, [
      withTimestamp(formatLegacyTimestampAnnotation(response(2))),
      withTimestamp(huge),
    ]);
    await expectIntegrity(
      (await verifier()).verify(`${image.name}:v1`),
      /layer 0: an RFC 3161 timestamp response has status 2.*layer 1: .*(too large|over the 65536 byte limit)/,
    );
    // The same construction with status granted verifies: what failed was only the status.
    const granted = await freshImage();
    const grantedPayload = simpleSigningPayload(granted.name, granted.digest);
    const grantedSigned = await sigstore.keylessSignTimestamped(grantedPayload, signer);
    const grantedResponse = derSequence(derSequence(derInteger(0)), tsa.token(grantedSigned.signature));
    await pushLegacySignatures(granted.repo, granted.digest, [
      {
        payload: grantedPayload,
        annotations: {
          ...grantedSigned.annotations,
          [Annotation.rfc3161Timestamp]: formatLegacyTimestampAnnotation(grantedResponse),
        },
      },
    ]);
    assert.equal((await (await verifier()).verify(`${granted.name}:v1`)).verified, true);
  });
});
