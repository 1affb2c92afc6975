// Round trips and attacks with a self-made Sigstore (Fulcio-like CA, Rekor-like log, CT log) in the embedded
// registry and in real distribution: key and keyless, legacy `.sig` and v3 bundles; then what a verified image
// lets a caller read.

import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { RegistryClient } from "../../src/oci/client/index.ts";
import type { RemoteRepository } from "../../src/oci/client/remote-repository.ts";
import type { Digest } from "../../src/oci/digest.ts";
import type { Descriptor } from "../../src/oci/manifest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import type { ImageReference } from "../../src/oci/reference.ts";
import type { Repository } from "../../src/oci/repository.ts";
import { openStore } from "../../src/registry/store.ts";
import {
  Annotation,
  cosignSignStatement,
  InTotoPayloadType,
  SimpleSigningMediaType,
  signatureImageConfig,
  signatureTag,
  simpleSigningPayload,
} from "../../src/signing/cosign-format.ts";
import type { IdentityMatcher } from "../../src/signing/policy.ts";
import { dsseBundle, dsseEnvelope, preAuthEncoding, publicKeyHint } from "../../src/signing/sigstore-bundle.ts";
import { createAttackerCa, createTestSigstore, type TestSigstore } from "../../src/signing/testing/index.ts";
import { SignatureVerifier, VerifiedImage } from "../../src/signing/verify.ts";
import type { VerificationOptions } from "../../src/signing/verify-options.ts";
import { startDistribution } from "../harness/distribution.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { expectIntegrity, pushBundleReferrer, pushLegacySignatures, sha256, testClient } from "./verify-fixtures.ts";

const githubIssuer = "https://token.actions.githubusercontent.com";
const workflow = "https://github.com/OWNER/REPO/.github/workflows/release.yaml@refs/heads/main";
const ciIdentity: IdentityMatcher = {
  issuer: githubIssuer,
  subjectRegExp: "https://github\\.com/OWNER/REPO/\\.github/workflows/release\\.yaml@refs/heads/.+",
};
// The talos-boot-assets seed's flags, as the program receives them.
const seedIdentity: IdentityMatcher = {
  issuerRegExp: "(https://token\\.actions\\.githubusercontent\\.com)|(https://accounts\\.google.com)",
  subjectRegExp:
    "(https://github.com/jfroy/talos-boot-assets/\\.github/workflows/assets\\.yaml@refs/heads/release-.+)|(.+@siderolabs\\.com)",
};

interface PushedImage {
  digest: Digest;
  descriptor: Descriptor;
  config: Buffer;
  layer: Buffer;
}

/** A small real image: config + one layer, tagged. */
async function pushImage(repo: RemoteRepository, tag: string, content: string): Promise<PushedImage> {
  const layer = Buffer.from(`layer ${content}`);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", content }));
  await repo.putBlob(layer);
  await repo.putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: MediaType.ociLayerGzip, size: layer.length, digest: sha256(layer) }],
    }),
  );
  const digest = await repo.putManifest(manifest, MediaType.ociManifest, tag);
  return { digest, descriptor: { mediaType: MediaType.ociManifest, size: manifest.length, digest }, config, layer };
}

function keyPair(type: "ec-p256" | "ec-p384" | "rsa" | "ed25519"): { privateKey: KeyObject; publicKey: KeyObject } {
  if (type === "rsa") return generateKeyPairSync("rsa", { modulusLength: 2048 });
  if (type === "ed25519") return generateKeyPairSync("ed25519");
  return generateKeyPairSync("ec", { namedCurve: type === "ec-p256" ? "prime256v1" : "secp384r1" });
}

const hashOf = { "ec-p256": "sha256", "ec-p384": "sha384", rsa: "sha256", ed25519: null } as const;

let sigstore: TestSigstore;
let dir: string;
let trustedRootFile: string;

before(async () => {
  sigstore = await createTestSigstore({ ctlog: true });
  dir = await mkdtemp(join(tmpdir(), "verify-sigstore-"));
  trustedRootFile = join(dir, "trusted_root.json");
  await sigstore.writeTrustedRoot(trustedRootFile);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const kind of ["embedded", "distribution"] as const) {
  describe(`verification with a test Sigstore (${kind} registry)`, () => {
    let registry: RunningRegistry;
    let client: RegistryClient;
    let counter = 0;

    before(async () => {
      registry = kind === "embedded" ? await startEmbeddedRegistry() : await startDistribution();
      client = testClient(registry.host);
    });
    after(async () => {
      await client?.close();
      await registry?.stop();
    });

    /** A fresh repository with one image in it. */
    async function freshImage(): Promise<{ repo: RemoteRepository; name: string; image: PushedImage }> {
      const name = `${registry.host}/test/image-${++counter}`;
      const repo = client.repository(name);
      return { repo, name, image: await pushImage(repo, "v1", `image ${counter}`) };
    }

    const keyless = (identities: IdentityMatcher[], extra: Partial<VerificationOptions> = {}) =>
      SignatureVerifier.create(client, { disabled: false, trustedRootFile, identities, ...extra });

    async function keyFile(publicKey: KeyObject): Promise<string> {
      const file = join(dir, `key-${kind}-${++counter}.pub`);
      await writeFile(file, publicKey.export({ type: "spki", format: "pem" }));
      return file;
    }

    test("legacy keyless round trip: verify by tag, then read by the verified digest", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      await pushLegacySignatures(repo, image.digest, [{ payload, annotations: signed.annotations }]);

      const verified = await (await keyless([ciIdentity])).verify(`${name}:v1`);
      assert.equal(verified.digest, image.digest);
      assert.equal(verified.reference.tag, "v1");
      assert.deepEqual(
        verified.signatures.map((s) => [s.kind, s.signer.mode, s.signer.mode === "keyless" && s.signer.subject]),
        [["legacy", "keyless", workflow]],
      );
      // The tag moves after verification: the verified image still reads what was verified.
      await pushImage(repo, "v1", "replacement");
      const { record, manifest } = await verified.manifest();
      assert.equal(record.digest, image.digest);
      assert.ok(!("manifests" in manifest));
      const configDescriptor = manifest.config;
      const reader = await verified.blob(configDescriptor);
      const chunks: Buffer[] = [];
      for await (const chunk of reader.stream) chunks.push(chunk as Buffer);
      assert.deepEqual(Buffer.concat(chunks), image.config);
    });

    test("a verified image reads no blob that its manifest does not reference", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      await pushLegacySignatures(repo, image.digest, [{ payload, annotations: signed.annotations }]);
      const other = await pushImage(repo, "other", "unrelated");
      const verified = await (await keyless([ciIdentity])).verify(`${name}@${image.digest}`);
      const stranger: Descriptor = {
        mediaType: MediaType.ociConfig,
        size: other.config.length,
        digest: sha256(other.config),
      };
      await expectIntegrity(verified.blob(stranger), /not reachable from the verified image/);
      // Right digest, wrong size: refused too.
      const { manifest } = await verified.manifest();
      assert.ok("config" in manifest);
      await expectIntegrity(verified.blob({ ...manifest.config, size: manifest.config.size + 1 }), /not reachable/);
    });

    test("bundle keyless round trip (referrers API or fallback index)", async () => {
      const { repo, name, image } = await freshImage();
      const { bundle } = await sigstore.keylessBundle(cosignSignStatement(image.digest), {
        issuer: githubIssuer,
        subject: workflow,
      });
      await pushBundleReferrer(repo, image.descriptor, Buffer.from(JSON.stringify(bundle)));
      const verified = await (await keyless([ciIdentity])).verify(`${name}:v1`);
      assert.equal(verified.digest, image.digest);
      assert.deepEqual(
        verified.signatures.map((s) => [s.kind, s.signer.mode]),
        [["bundle", "keyless"]],
      );
    });

    test("a bad bundle referrer beside a good legacy signature: the legacy one verifies, the bundle is reported", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const good = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      await pushLegacySignatures(repo, image.digest, [{ payload, annotations: good.annotations }]);
      const { bundle } = await sigstore.keylessBundle(cosignSignStatement(image.digest), {
        issuer: githubIssuer,
        subject: "https://github.com/someone/else/.github/workflows/x.yaml@refs/heads/main",
      });
      await pushBundleReferrer(repo, image.descriptor, Buffer.from(JSON.stringify(bundle)));
      const verified = await (await keyless([ciIdentity])).verify(`${name}:v1`);
      assert.deepEqual(
        verified.signatures.map((sig) => sig.kind),
        ["legacy"],
      );
      assert.equal(verified.rejected.length, 1);
      assert.match(verified.rejected[0] ?? "", /^bundle sha256:.*does not match/);
    });

    test("junk does not block a good signature: a garbage bundle referrer and 199 garbage .sig layers", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const good = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      await pushBundleReferrer(repo, image.descriptor, Buffer.from("{ this is not a bundle"));
      const junk = Array.from({ length: 199 }, (_, i) => ({ payload: Buffer.from(`junk ${i}`), annotations: {} }));
      await pushLegacySignatures(repo, image.digest, [...junk, { payload, annotations: good.annotations }]);
      const rssBefore = process.memoryUsage().rss;
      const started = performance.now();
      const verified = await (await keyless([ciIdentity])).verify(`${name}:v1`);
      const ms = performance.now() - started;
      assert.deepEqual(
        verified.signatures.map((sig) => sig.source),
        [`${signatureTag(image.digest)} layer 199`],
      );
      assert.equal(verified.rejected.length, 200, "the referrer and every junk layer are reported");
      assert.match(verified.rejected[1] ?? "", /layer 0: no signature annotation/);
      assert.ok(ms < 5000, `verified in ${ms.toFixed(0)} ms`);
      assert.ok((process.memoryUsage().rss - rssBefore) / 1024 ** 2 < 100, "memory stays bounded");
    });

    test("junk never makes a bad signature pass: only junk and a stranger's signature is refused, reasons summarized", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const stranger = await sigstore.keylessSign(payload, {
        issuer: githubIssuer,
        subject: "https://github.com/x/y/.github/workflows/a.yaml@refs/heads/main",
      });
      await pushBundleReferrer(repo, image.descriptor, Buffer.from("[]"));
      const junk = Array.from({ length: 20 }, (_, i) => ({ payload: Buffer.from(`junk ${i}`), annotations: {} }));
      await pushLegacySignatures(repo, image.digest, [...junk, { payload, annotations: stranger.annotations }]);
      await expectIntegrity(
        (await keyless([ciIdentity])).verify(`${name}:v1`),
        /no signature matched for .*: bundle sha256:.*; and 12 more rejected$/,
      );
    });

    test("several signatures: accepted when one verifies, and every verified one is reported", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const stranger = await sigstore.keylessSign(payload, {
        issuer: githubIssuer,
        subject: "https://github.com/x/y/.github/workflows/a.yaml@refs/heads/main",
      });
      const ci = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      const vendor = await sigstore.keylessSign(payload, {
        issuer: "https://accounts.google.com",
        subject: "dev@siderolabs.com",
      });
      await pushLegacySignatures(repo, image.digest, [
        { payload, annotations: stranger.annotations },
        { payload, annotations: ci.annotations },
        { payload, annotations: vendor.annotations },
      ]);
      const verified = await (await keyless([ciIdentity, seedIdentity])).verify(`${name}:v1`);
      assert.deepEqual(
        verified.signatures.map((s) => s.source.replace(/^.* layer /, "layer ")),
        ["layer 1", "layer 2"],
      );
    });

    for (const type of ["ec-p256", "ec-p384", "rsa", "ed25519"] as const) {
      test(`legacy key round trip (${type})`, async () => {
        const { repo, name, image } = await freshImage();
        const { privateKey, publicKey } = keyPair(type);
        const payload = simpleSigningPayload(name, image.digest);
        const signature = sign(hashOf[type], payload, privateKey);
        await pushLegacySignatures(repo, image.digest, [
          { payload, annotations: { [Annotation.signature]: signature.toString("base64") } },
        ]);
        const file = await keyFile(publicKey);
        const verifier = await SignatureVerifier.create(client, {
          disabled: false,
          publicKeyFile: file,
          identities: [],
        });
        const verified = await verifier.verify(`${name}:v1`);
        assert.equal(verified.signatures[0]?.signer.mode, "key");
        // Another key does not verify it.
        const otherFile = await keyFile(keyPair(type).publicKey);
        const other = await SignatureVerifier.create(client, {
          disabled: false,
          publicKeyFile: otherFile,
          identities: [],
        });
        await expectIntegrity(other.verify(`${name}:v1`), /signature does not verify with key/);
      });
    }

    test("bundle key round trip", async () => {
      const { repo, name, image } = await freshImage();
      const { privateKey, publicKey } = keyPair("ec-p256");
      const statement = cosignSignStatement(image.digest);
      const signature = sign("sha256", preAuthEncoding(InTotoPayloadType, statement), privateKey);
      const bundle = dsseBundle({
        envelope: dsseEnvelope(statement, InTotoPayloadType, signature),
        publicKeyHint: publicKeyHint(publicKey.export({ type: "spki", format: "der" })),
        tlogEntries: [],
      });
      await pushBundleReferrer(repo, image.descriptor, Buffer.from(JSON.stringify(bundle)));
      const file = await keyFile(publicKey);
      const verified = await (
        await SignatureVerifier.create(client, { disabled: false, publicKeyFile: file, identities: [] })
      ).verify(`${name}:v1`);
      assert.deepEqual(
        verified.signatures.map((s) => [s.kind, s.signer.mode]),
        [["bundle", "key"]],
      );
      const wrong = await keyFile(keyPair("ec-p256").publicKey);
      await expectIntegrity(
        (await SignatureVerifier.create(client, { disabled: false, publicKeyFile: wrong, identities: [] })).verify(
          `${name}:v1`,
        ),
        /signature does not verify with key/,
      );
    });

    test("disabled verification still pins the digest and marks the image unverified", async () => {
      const { name, image } = await freshImage();
      const verified = await (await SignatureVerifier.create(client, { disabled: true, identities: [] })).verify(
        `${name}:v1`,
      );
      assert.equal(verified.verified, false);
      assert.equal(verified.digest, image.digest);
      assert.equal((await verified.manifest()).record.digest, image.digest);
    });

    test("an unsigned image fails", async () => {
      const { name } = await freshImage();
      await expectIntegrity((await keyless([ciIdentity])).verify(`${name}:v1`), /no signature found/);
    });

    // ---- attacks ---------------------------------------------------------------------------------------

    async function legacyAttack(identity: Parameters<TestSigstore["keylessSign"]>[1], policy: IdentityMatcher[]) {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, identity);
      await pushLegacySignatures(repo, image.digest, [{ payload, annotations: signed.annotations }]);
      return (await keyless(policy)).verify(`${name}:v1`);
    }

    test("attack: an unanchored-regexp bypass (seed regexps, attacker-controlled email domain)", async () => {
      await expectIntegrity(
        legacyAttack({ issuer: "https://accounts.google.com", subject: "mallory@siderolabs.com.evil.example" }, [
          seedIdentity,
        ]),
        /identity mallory@siderolabs\.com\.evil\.example .*does not match/,
      );
      await expectIntegrity(
        legacyAttack({ issuer: "https://accounts.google.com.evil.example", subject: "dev@siderolabs.com" }, [
          seedIdentity,
        ]),
        /does not match/,
      );
      // The same regexps accept the real identities.
      const ok = await legacyAttack({ issuer: "https://accounts.google.com", subject: "dev@siderolabs.com" }, [
        seedIdentity,
      ]);
      assert.equal(ok.signatures.length, 1);
    });

    test("attack: a fork's workflow against a regexp for OWNER/REPO", async () => {
      await expectIntegrity(
        legacyAttack(
          {
            issuer: githubIssuer,
            subject: "https://github.com/evil/OWNER/REPO-fork/.github/workflows/release.yaml@refs/heads/main",
          },
          [{ issuer: githubIssuer, subjectRegExp: "OWNER/REPO/.+" }],
        ),
        /does not match/,
      );
    });

    test("attack: a certificate without an issuer never matches", async () => {
      await expectIntegrity(
        legacyAttack({ issuer: null, subject: workflow }, [{ issuerRegExp: ".*", subject: workflow }]),
        /has no OIDC issuer/,
      );
    });

    test("attack: a leaf without the codeSigning EKU", async () => {
      await expectIntegrity(
        legacyAttack({ issuer: githubIssuer, subject: workflow, leaf: { extendedKeyUsages: ["1.3.6.1.5.5.7.3.1"] } }, [
          ciIdentity,
        ]),
        /lacks the codeSigning extended key usage/,
      );
    });

    test("attack: issuer extensions .1.1 and .1.8 that disagree", async () => {
      await expectIntegrity(
        legacyAttack({ issuer: githubIssuer, subject: workflow, leaf: { issuerV1: "https://evil.example" } }, [
          ciIdentity,
        ]),
        /issuer extensions disagree/,
      );
      await expectIntegrity(
        legacyAttack({ issuer: githubIssuer, subject: workflow, leaf: { issuerV2: "https://evil.example" } }, [
          { issuerRegExp: ".+", subjectRegExp: ".+" },
        ]),
        /issuer extensions disagree/,
      );
    });

    test("attack: a leaf that had expired when the log recorded the signature", async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectIntegrity(
        legacyAttack(
          {
            issuer: githubIssuer,
            subject: workflow,
            integratedTime: now,
            leaf: { notBefore: new Date((now - 3600) * 1000), notAfter: new Date((now - 1800) * 1000) },
          },
          [ciIdentity],
        ),
        /expired/,
      );
    });

    test("attack: a chain from an attacker's CA (shipped in the chain annotation) is not trusted", async () => {
      const attacker = await createAttackerCa();
      await expectIntegrity(
        legacyAttack({ issuer: githubIssuer, subject: workflow, ca: attacker }, [ciIdentity]),
        /Failed to verify certificate chain/,
      );
    });

    test("attack: a log entry that names another certificate than the one presented", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      // A second, equally valid leaf for the same key, with an identity the policy trusts; the log entry (with a
      // valid SET) records the first leaf. Presenting the second must fail.
      const other = await sigstore.issueLeaf({
        publicKey: createPublicKey(signed.privateKey),
        subject: workflow.replace("main", "other"),
        issuer: githubIssuer,
        notBefore: new Date(Date.now() - 60_000),
      });
      const annotations = { ...signed.annotations, [Annotation.certificate]: other.pem };
      await pushLegacySignatures(repo, image.digest, [{ payload, annotations }]);
      await expectIntegrity(
        (await keyless([ciIdentity])).verify(`${name}:v1`),
        /transparency-log entry names another certificate/,
      );
    });

    test("attack: a signature copied onto another image's .sig tag", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      const victim = await pushImage(repo, "v2", "victim");
      await pushLegacySignatures(repo, victim.digest, [{ payload, annotations: signed.annotations }]);
      await expectIntegrity(
        (await keyless([ciIdentity])).verify(`${name}:v2`),
        new RegExp(`payload signs ${image.digest}, not this image ${victim.digest}`),
      );
    });

    test("attack: a .sig with 10,000 layers is refused quickly, without fetching its blobs", async () => {
      const { repo, name, image } = await freshImage();
      const payload = simpleSigningPayload(name, image.digest);
      const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
      await repo.putBlob(payload);
      const config = signatureImageConfig([sha256(payload)]);
      await repo.putBlob(config);
      const layer = { mediaType: SimpleSigningMediaType, size: payload.length, digest: sha256(payload) };
      const manifest = {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
        layers: [{ ...layer, annotations: signed.annotations }, ...Array.from({ length: 9_999 }, () => layer)],
      };
      await repo.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, signatureTag(image.digest));
      // Count blob reads through the repository the verifier is given.
      let blobReads = 0;
      const counting = (ref: ImageReference): Repository => {
        const inner = client.repository(ref);
        return new Proxy(inner, {
          get(target, property, receiver) {
            if (property === "getBlob") blobReads++;
            const value = Reflect.get(target, property, receiver);
            return typeof value === "function" ? value.bind(target) : value;
          },
        });
      };
      const verifier = await SignatureVerifier.create(counting, {
        disabled: false,
        trustedRootFile,
        identities: [ciIdentity],
      });
      const started = performance.now();
      await expectIntegrity(verifier.verify(`${name}:v1`), /has 10000 layers, more than the 1000 cosign accepts/);
      assert.ok(performance.now() - started < 2000, "refused within 2 s");
      assert.equal(blobReads, 0);
    });
  });
}

test("a VerifiedImage cannot be made outside the verifier", () => {
  const Ctor = VerifiedImage as unknown as new (token: symbol, init: object) => VerifiedImage;
  assert.throws(() => new Ctor(Symbol("VerifiedImage"), {}), TypeError);
});

test("in-process embedded store: index image, key and keyless configured together, platform reads", async () => {
  const root = await mkdtemp(join(tmpdir(), "verify-store-"));
  const store = await openStore(join(root, "data"));
  try {
    const repo = store.repository("multi/arch");
    const children: Descriptor[] = [];
    const layers: Buffer[] = [];
    for (const architecture of ["amd64", "arm64"]) {
      const layer = Buffer.from(`layer for ${architecture}`);
      const config = Buffer.from(JSON.stringify({ architecture, os: "linux" }));
      await repo.putBlob(layer);
      await repo.putBlob(config);
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
          layers: [{ mediaType: MediaType.ociLayerGzip, size: layer.length, digest: sha256(layer) }],
        }),
      );
      const digest = await repo.putManifest(body, MediaType.ociManifest);
      children.push({
        mediaType: MediaType.ociManifest,
        size: body.length,
        digest,
        platform: { architecture, os: "linux" },
      });
      layers.push(layer);
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: children }));
    const indexDigest = await repo.putManifest(index, MediaType.ociIndex, "v1");

    // Signed keyless only; the verifier trusts a key too, and either kind is enough.
    const payload = simpleSigningPayload("embedded/multi/arch", indexDigest);
    const signed = await sigstore.keylessSign(payload, { issuer: githubIssuer, subject: workflow });
    await repo.putBlob(payload);
    const config = signatureImageConfig([sha256(payload)]);
    await repo.putBlob(config);
    const sigManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
      layers: [
        {
          mediaType: SimpleSigningMediaType,
          size: payload.length,
          digest: sha256(payload),
          annotations: signed.annotations,
        },
      ],
    };
    await repo.putManifest(Buffer.from(JSON.stringify(sigManifest)), MediaType.ociManifest, signatureTag(indexDigest));
    const keyFileName = join(root, "unused.pub");
    await writeFile(keyFileName, keyPair("ec-p256").publicKey.export({ type: "spki", format: "pem" }));

    const verifier = await SignatureVerifier.create((ref) => store.repository(ref.repository), {
      disabled: false,
      publicKeyFile: keyFileName,
      trustedRootFile,
      identities: [ciIdentity],
    });
    const verified = await verifier.verify("embedded.local/multi/arch:v1");
    assert.equal(verified.digest, indexDigest);
    assert.equal(verified.signatures[0]?.signer.mode, "keyless");

    const arm = await verified.platformManifest({ os: "linux", architecture: "arm64" });
    assert.equal(arm.descriptor?.digest, children[1]?.digest);
    assert.ok("layers" in arm.manifest);
    const armLayer = arm.manifest.layers[0] as Descriptor;
    const chunks: Buffer[] = [];
    for await (const chunk of (await verified.blob(armLayer)).stream) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), layers[1]);
    // The amd64 layer is reachable only through the amd64 manifest, which was not read.
    const amdLayer: Descriptor = {
      mediaType: MediaType.ociLayerGzip,
      size: (layers[0] as Buffer).length,
      digest: sha256(layers[0] as Buffer),
    };
    await expectIntegrity(verified.blob(amdLayer), /not reachable/);
  } finally {
    await store.close();
    await rm(root, { recursive: true, force: true });
  }
});
