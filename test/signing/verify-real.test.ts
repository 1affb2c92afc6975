// Signatures made by the real cosign (legacy keyless `.sig`, and a v3 bundle referrer) verify offline against
// the public-good trusted root with their true identities, and fail for any other identity and any tampering.
// They are pushed into the embedded registry and into real distribution (which has no referrers API, so the
// bundle is found through the `sha256-<hex>` fallback index).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { RegistryClient } from "../../src/oci/client/index.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { parseLegacyRekorBundle, signatureImageConfig, signatureTag } from "../../src/signing/cosign-format.ts";
import type { IdentityMatcher } from "../../src/signing/policy.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { startDistribution } from "../harness/distribution.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import {
  expectIntegrity,
  fakeDigest,
  pushBundleReferrer,
  pushLegacySignatures,
  realBundleBytes,
  realBundleImageDigest,
  realBundleIssuer,
  realBundleSubject,
  realBundleSubjectDescriptor,
  realLegacyDigest,
  realLegacyIssuer,
  realLegacyLayer,
  realLegacySubject,
  realVectors,
  sha256,
  testClient,
} from "./verify-fixtures.ts";

const legacyIdentity: IdentityMatcher = { issuer: realLegacyIssuer, subject: realLegacySubject };
const bundleIdentity: IdentityMatcher = { issuer: realBundleIssuer, subjectRegExp: ".+@siderolabs\\.com" };

test("the rebuilt legacy signature config has the digest the real manifest names", async () => {
  const { manifest, payload } = await realLegacyLayer();
  const config = signatureImageConfig([sha256(payload)]);
  const named = (manifest.config as { digest: string; size: number }).digest;
  assert.equal(sha256(config), named);
  assert.equal(config.length, (manifest.config as { size: number }).size);
});

for (const kind of ["embedded", "distribution"] as const) {
  describe(`real cosign signatures (${kind} registry)`, () => {
    let registry: RunningRegistry;
    let client: RegistryClient;
    const legacyRepo = "salrashid123/server_image";
    const bundleRepo = "siderolabs/my-extension";

    before(async () => {
      registry = kind === "embedded" ? await startEmbeddedRegistry() : await startDistribution();
      client = testClient(registry.host);

      // Legacy: the real manifest bytes, its payload and the rebuilt config; nothing of the image itself.
      const { manifest, payload } = await realLegacyLayer();
      const legacy = client.repository(`${registry.host}/${legacyRepo}`);
      await legacy.putBlob(payload);
      await legacy.putBlob(signatureImageConfig([sha256(payload)]));
      const manifestBytes = await readFile(join(realVectors, "real-legacy-sig-manifest.json"));
      assert.ok(manifest.layers);
      await legacy.putManifest(manifestBytes, MediaType.ociManifest, signatureTag(realLegacyDigest));

      // Bundle: the signature layout's referrer manifest, empty config and bundle; the image's layer is absent.
      const bundles = client.repository(`${registry.host}/${bundleRepo}`);
      await pushBundleReferrer(bundles, realBundleSubjectDescriptor, await realBundleBytes());
    });
    after(async () => {
      await client?.close();
      await registry?.stop();
    });

    const verifier = (identities: IdentityMatcher[]) =>
      SignatureVerifier.create(client, { disabled: false, identities });
    const legacyRef = () => `${registry.host}/${legacyRepo}@${realLegacyDigest}`;
    const bundleRef = () => `${registry.host}/${bundleRepo}@${realBundleImageDigest}`;

    test("the legacy keyless signature verifies with its true identity (the image itself is not in the registry)", async () => {
      const image = await (await verifier([legacyIdentity])).verify(legacyRef());
      assert.equal(image.digest, realLegacyDigest);
      assert.equal(image.verified, true);
      assert.equal(image.signatures.length, 1);
      const [signature] = image.signatures;
      assert.equal(signature?.kind, "legacy");
      assert.equal(signature?.signer.mode, "keyless");
      assert.ok(signature?.signer.mode === "keyless");
      assert.equal(signature.signer.subject, realLegacySubject);
      assert.equal(signature.signer.issuer, realLegacyIssuer);
      assert.equal(signature.signer.integratedTime?.getTime(), 1770995375 * 1000);
    });

    test("the legacy signature fails with another identity", async () => {
      const v = await verifier([{ issuer: realLegacyIssuer, subjectRegExp: "https://github.com/siderolabs/.+" }]);
      await expectIntegrity(v.verify(legacyRef()), /identity https:\/\/github\.com\/salrashid123\/.+ does not match/);
    });

    test("the legacy signature fails with another issuer", async () => {
      const v = await verifier([{ issuer: "https://accounts.google.com", subject: realLegacySubject }]);
      await expectIntegrity(v.verify(legacyRef()), /does not match/);
    });

    test("the bundle referrer verifies with its true identity (the vendor identity)", async () => {
      const image = await (await verifier([bundleIdentity])).verify(bundleRef());
      assert.equal(image.digest, realBundleImageDigest);
      assert.equal(image.signatures.length, 1);
      const [signature] = image.signatures;
      assert.equal(signature?.kind, "bundle");
      assert.ok(signature?.signer.mode === "keyless");
      assert.equal(signature.signer.subject, realBundleSubject);
      assert.equal(signature.signer.issuer, realBundleIssuer);
    });

    test("the bundle fails with another identity", async () => {
      const v = await verifier([{ issuer: realBundleIssuer, subject: "someone.else@siderolabs.com" }]);
      await expectIntegrity(v.verify(bundleRef()), /identity albert\.kostusev@siderolabs\.com .*does not match/);
    });

    test("a tampered legacy payload fails", async () => {
      const { payload, annotations } = await realLegacyLayer();
      const tampered = Buffer.from(payload.toString("utf8").replace("salrashid123/server_image", "evil/server_image"));
      assert.notDeepEqual(tampered, payload);
      const digest = fakeDigest("tampered-payload");
      // Keep the signed digest claim pointing at the target so only the signature can catch it.
      const retargeted = Buffer.from(tampered.toString("utf8").replace(realLegacyDigest, digest));
      await pushLegacySignatures(client.repository(`${registry.host}/${legacyRepo}`), digest, [
        { payload: retargeted, annotations },
      ]);
      const v = await verifier([legacyIdentity]);
      await expectIntegrity(v.verify(`${registry.host}/${legacyRepo}@${digest}`), /layer 0: .*digest mismatch/);
    });

    test("a shifted integratedTime fails (the SET no longer verifies)", async () => {
      const { payload, annotations } = await realLegacyLayer();
      const rekor = parseLegacyRekorBundle(annotations["dev.sigstore.cosign/bundle"] as string);
      rekor.Payload.integratedTime += 1;
      const shifted = { ...annotations, "dev.sigstore.cosign/bundle": JSON.stringify(rekor) };
      // Same payload and digest claim: push it onto a second repository under the real digest's tag.
      await pushLegacySignatures(client.repository(`${registry.host}/shifted/server_image`), realLegacyDigest, [
        { payload, annotations: shifted },
      ]);
      const v = await verifier([legacyIdentity]);
      await expectIntegrity(
        v.verify(`${registry.host}/shifted/server_image@${realLegacyDigest}`),
        /inclusion promise could not be verified/,
      );
    });

    test("the legacy signature moved onto another digest fails", async () => {
      const { payload, annotations } = await realLegacyLayer();
      const other = fakeDigest("moved-legacy");
      await pushLegacySignatures(client.repository(`${registry.host}/${legacyRepo}`), other, [
        { payload, annotations },
      ]);
      const v = await verifier([legacyIdentity]);
      await expectIntegrity(
        v.verify(`${registry.host}/${legacyRepo}@${other}`),
        new RegExp(`payload signs ${realLegacyDigest}, not this image ${other}`),
      );
    });

    test("the bundle moved onto another digest fails", async () => {
      const other = fakeDigest("moved-bundle");
      const repo = client.repository(`${registry.host}/${bundleRepo}`);
      await pushBundleReferrer(repo, { ...realBundleSubjectDescriptor, digest: other }, await realBundleBytes());
      const v = await verifier([bundleIdentity]);
      await expectIntegrity(v.verify(`${registry.host}/${bundleRepo}@${other}`), /subjects do not include this image/);
    });

    test("a bundle with a shifted integratedTime fails", async () => {
      const bundle = JSON.parse((await realBundleBytes()).toString("utf8"));
      const entry = bundle.verificationMaterial.tlogEntries[0];
      entry.integratedTime = String(Number(entry.integratedTime) + 60);
      const repo = client.repository(`${registry.host}/shifted/my-extension`);
      await pushBundleReferrer(repo, realBundleSubjectDescriptor, Buffer.from(JSON.stringify(bundle)));
      const v = await verifier([bundleIdentity]);
      await expectIntegrity(
        v.verify(`${registry.host}/shifted/my-extension@${realBundleImageDigest}`),
        /bundle sha256:[0-9a-f]{64}: .*inclusion promise could not be verified/,
      );
    });

    test("a bundle with a tampered statement fails", async () => {
      const bundle = JSON.parse((await realBundleBytes()).toString("utf8"));
      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
      statement.predicate = { tampered: true };
      bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
      const repo = client.repository(`${registry.host}/tampered/my-extension`);
      await pushBundleReferrer(repo, realBundleSubjectDescriptor, Buffer.from(JSON.stringify(bundle)));
      const v = await verifier([bundleIdentity]);
      await expectIntegrity(
        v.verify(`${registry.host}/tampered/my-extension@${realBundleImageDigest}`),
        /DSSE payload hash mismatch/,
      );
    });
  });
}
