import assert from "node:assert/strict";
import { createHash, createPublicKey, verify as cryptoVerify, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { bundleFromJSON } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import {
  Annotation,
  cosignSignStatement,
  parseLegacyRekorBundle,
  simpleSigningPayload,
} from "../../src/signing/cosign-format.ts";
import {
  createAttackerCa,
  createTestSigstore,
  OidCodeSigning,
  OidFulcioIssuerV1,
  OidFulcioIssuerV2,
  type TestSigstore,
} from "../../src/signing/testing/index.ts";
import { legacyLayerAsBundle } from "./helpers.ts";

const digest = `sha256:${"ab".repeat(32)}` as const;

function verifier(sigstore: TestSigstore): Verifier {
  const root = sigstore.trustedRoot();
  const material = toTrustMaterial(TrustedRoot.fromJSON(root));
  return new Verifier(material, { ctlogThreshold: root.ctlogs.length > 0 ? 1 : 0 });
}

describe("test sigstore", () => {
  it("writes a trusted root whose chain, log ID and media type are what sigstore-js expects", async (t) => {
    const sigstore = await createTestSigstore();
    const dir = await mkdtemp(join(tmpdir(), "trusted-root-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "trusted_root.json");
    await sigstore.writeTrustedRoot(file);
    const root = JSON.parse(await readFile(file, "utf8"));
    assert.equal(root.mediaType, "application/vnd.dev.sigstore.trustedroot+json;version=0.1");
    const spki = Buffer.from(root.tlogs[0].publicKey.rawBytes, "base64");
    assert.equal(root.tlogs[0].logId.keyId, createHash("sha256").update(spki).digest("base64"));
    const [intermediate, rootCert] = root.certificateAuthorities[0].certChain.certificates.map(
      (c: { rawBytes: string }) => new X509Certificate(Buffer.from(c.rawBytes, "base64")),
    );
    assert.ok(intermediate.verify(rootCert.publicKey), "intermediate is signed by the root");
    assert.ok(rootCert.verify(rootCert.publicKey), "root is self-signed");
    assert.deepEqual(TrustedRoot.toJSON(TrustedRoot.fromJSON(root)), TrustedRoot.toJSON(TrustedRoot.fromJSON(root)));
  });

  it("issues Fulcio-style leaves with identity extensions", async () => {
    const sigstore = await createTestSigstore();
    const sig = await sigstore.keylessSign(simpleSigningPayload("r.test/a", digest), {
      issuer: "https://token.actions.githubusercontent.com",
      subject: "https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main",
    });
    const leaf = new X509Certificate(sig.certificatePem);
    assert.equal(leaf.subjectAltName, "URI:https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main");
    assert.deepEqual(leaf.keyUsage, [OidCodeSigning]);
    assert.ok(leaf.checkIssued(new X509Certificate(sigstore.ca.intermediate.pem)));
    const der = leaf.raw.toString("hex");
    const oidHex = (oid: string) => {
      const parts = oid.split(".").map(Number);
      const bytes = [40 * (parts[0] as number) + (parts[1] as number)];
      for (const p of parts.slice(2)) {
        const chunk: number[] = [p & 0x7f];
        for (let v = p >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
        bytes.push(...chunk);
      }
      return Buffer.from(bytes).toString("hex");
    };
    const issuerHex = Buffer.from("https://token.actions.githubusercontent.com").toString("hex");
    assert.ok(der.includes(`${oidHex(OidFulcioIssuerV1)}04${(issuerHex.length / 2).toString(16)}${issuerHex}`));
    assert.ok(der.includes(`${oidHex(OidFulcioIssuerV2)}04${(issuerHex.length / 2 + 2).toString(16)}0c`));
    assert.ok(cryptoVerify("sha256", sig.payload, createPublicKey(sig.certificatePem), sig.signature));
  });

  it("makes a legacy keyless signature that sigstore-js verifies (SET, chain, hashedrekord body)", async () => {
    const sigstore = await createTestSigstore();
    const payload = simpleSigningPayload("r.test/a", digest);
    const sig = await sigstore.keylessSign(payload, {
      issuer: "https://accounts.google.com",
      subject: "me@example.com",
    });
    const signer = verifier(sigstore).verify(toSignedEntity(legacyLayerAsBundle(payload, sig.annotations), payload));
    assert.equal(signer.identity?.subjectAlternativeName, "me@example.com");
    assert.equal(signer.identity?.extensions?.issuer, "https://accounts.google.com");

    // A flipped SET bit, another payload, or a leaf from a CA outside the root all fail.
    const tampered = { ...sig.annotations };
    const rekor = parseLegacyRekorBundle(tampered[Annotation.bundle] as string);
    rekor.Payload.integratedTime += 1;
    tampered[Annotation.bundle] = JSON.stringify(rekor);
    assert.throws(() => verifier(sigstore).verify(toSignedEntity(legacyLayerAsBundle(payload, tampered), payload)));
    const other = simpleSigningPayload("r.test/a", `sha256:${"cd".repeat(32)}`);
    assert.throws(() => verifier(sigstore).verify(toSignedEntity(legacyLayerAsBundle(other, sig.annotations), other)));
    const attacker = await sigstore.keylessSign(payload, { ca: await createAttackerCa() });
    assert.throws(
      () => verifier(sigstore).verify(toSignedEntity(legacyLayerAsBundle(payload, attacker.annotations), payload)),
      /certificate/i,
    );
  });

  it("makes a v0.3 DSSE bundle with SET and inclusion proof that sigstore-js verifies", async () => {
    const sigstore = await createTestSigstore();
    // Earlier entries make the Merkle proof non-trivial.
    for (let i = 0; i < 4; i++) await sigstore.keylessSign(Buffer.from(`filler ${i}`));
    const { bundle } = await sigstore.keylessBundle(cosignSignStatement(digest), { subject: "me@example.com" });
    const parsed = bundleFromJSON(bundle);
    const signer = verifier(sigstore).verify(toSignedEntity(parsed));
    assert.equal(signer.identity?.subjectAlternativeName, "me@example.com");

    // sigstore-js checks the inclusion proof as well as the SET when both are present: a bad audit path fails.
    assert.ok(bundle.verificationMaterial.tlogEntries[0]?.inclusionProof);
    const badProof = structuredClone(bundle);
    const entry = badProof.verificationMaterial.tlogEntries[0];
    const hashes = entry?.inclusionProof?.hashes ?? [];
    assert.equal(hashes.length, 1, "entry 4 of 5 has one sibling: the root of the first four");
    hashes[0] = Buffer.alloc(32).toString("base64");
    assert.throws(() => verifier(sigstore).verify(toSignedEntity(bundleFromJSON(badProof))), /root hash|inclusion/);
  });

  it("embeds SCTs that sigstore-js verifies when the trusted root lists a CT log", async () => {
    const sigstore = await createTestSigstore({ ctlog: true });
    const { bundle } = await sigstore.keylessBundle(cosignSignStatement(digest));
    verifier(sigstore).verify(toSignedEntity(bundleFromJSON(bundle)));
    // A leaf without an SCT fails the threshold of one.
    const noSct = await createTestSigstore();
    const unlogged = await noSct.keylessBundle(cosignSignStatement(digest));
    const root = sigstore.trustedRoot();
    root.certificateAuthorities = noSct.trustedRoot().certificateAuthorities;
    root.tlogs = noSct.trustedRoot().tlogs;
    const strict = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(root)), { ctlogThreshold: 1 });
    assert.throws(() => strict.verify(toSignedEntity(bundleFromJSON(unlogged.bundle))), /SCT/);
  });

  it("makes expired, EKU-less and issuer-less leaves on request", async () => {
    const sigstore = await createTestSigstore();
    const now = Math.floor(Date.now() / 1000);
    const expired = await sigstore.keylessBundle(cosignSignStatement(digest), {
      integratedTime: now,
      leaf: { notBefore: new Date((now - 3600) * 1000), notAfter: new Date((now - 1800) * 1000) },
    });
    assert.throws(
      () => verifier(sigstore).verify(toSignedEntity(bundleFromJSON(expired.bundle))),
      (err: Error) => /expired/.test(String((err.cause as Error | undefined)?.message)),
    );
    const noEku = await sigstore.keylessSign(Buffer.from("x"), { leaf: { extendedKeyUsages: null } });
    assert.equal(new X509Certificate(noEku.certificatePem).keyUsage, undefined);
    const disagree = await sigstore.keylessSign(Buffer.from("x"), {
      leaf: { issuerV1: "https://a", issuerV2: "https://b" },
    });
    const raw = new X509Certificate(disagree.certificatePem).raw;
    assert.ok(raw.includes(Buffer.from("https://a")) && raw.includes(Buffer.from("https://b")));
  });
});
