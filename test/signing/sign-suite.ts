// The signing round trips, run unchanged against the real distribution registry (no referrers API: bundle
// referrers go to the fallback tag) and the embedded registry (referrers API). Expected bytes are written out
// here from the cosign format description, never taken from the code under test.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, verify, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { bundleFromJSON } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import { RegistryClient } from "../../src/oci/client/client.ts";
import type { RemoteRepository } from "../../src/oci/client/remote-repository.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { signImage } from "../../src/signing/sign.ts";
import { KeylessSigner, KeySigner } from "../../src/signing/signer.ts";
import {
  createTestSigstore,
  makeTestIdentityToken,
  startTestSigstoreServer,
  type TestSigstore,
  type TestSigstoreServer,
} from "../../src/signing/testing/index.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { legacyLayerAsBundle } from "./helpers.ts";

const sha256 = (data: Buffer | string) => `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;

interface Pushed {
  digest: Digest;
  mediaType: string;
  size: number;
}

async function pushBlob(repo: RemoteRepository, data: Buffer): Promise<Digest> {
  const digest = sha256(data);
  await repo.putBlob(data, { digest, size: data.length });
  return digest;
}

async function pushImage(repo: RemoteRepository, marker: string): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", marker }));
  const layer = Buffer.from(`layer ${marker}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: await pushBlob(repo, config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerTar, digest: await pushBlob(repo, layer), size: layer.length }],
    }),
  );
  const digest = await repo.putManifest(manifest, MediaType.ociManifest, marker);
  return { digest, mediaType: MediaType.ociManifest, size: manifest.length };
}

async function readJson(repo: RemoteRepository, reference: string) {
  const record = await repo.getManifest(reference);
  return { digest: record.digest, manifest: JSON.parse(record.body.toString("utf8")) };
}

async function readBlob(repo: RemoteRepository, digest: Digest): Promise<Buffer> {
  const reader = await repo.getBlob(digest);
  const chunks: Buffer[] = [];
  for await (const chunk of reader.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The payload cosign signs, spelled out from sigstore/sigstore pkg/signature/payload (docs/formats.md). */
function expectedPayload(dockerReference: string, digest: Digest): string {
  return `{"critical":{"identity":{"docker-reference":"${dockerReference}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`;
}

function expectedConfig(diffIds: Digest[]): string {
  const history = diffIds.map(() => '{"created":"0001-01-01T00:00:00Z"}').join(",");
  return `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[${history}],"os":"","rootfs":{"type":"layers","diff_ids":[${diffIds.map((d) => `"${d}"`).join(",")}]},"config":{}}`;
}

function sigTag(digest: Digest): string {
  return `sha256-${digest.slice("sha256:".length)}.sig`;
}

export function signSuite(start: () => Promise<RunningRegistry>): void {
  describe("signing round trips", () => {
    let registry: RunningRegistry;
    let client: RegistryClient;
    let sigstore: TestSigstore;
    let server: TestSigstoreServer;
    const key1 = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const key2 = generateKeyPairSync("ec", { namedCurve: "prime256v1" });

    before(async () => {
      registry = await start();
      client = new RegistryClient({ insecure: [registry.host], certsDirs: [] });
      sigstore = await createTestSigstore();
      server = await startTestSigstoreServer(sigstore);
    });
    after(async () => {
      await server?.close();
      await registry?.stop();
    });

    function verifier(): Verifier {
      return new Verifier(toTrustMaterial(TrustedRoot.fromJSON(sigstore.trustedRoot())), { ctlogThreshold: 0 });
    }

    it("writes a cosign-format .sig image, appends other keys' signatures, and is idempotent", async () => {
      const repo = client.repository(`${registry.host}/sign/key`);
      const image = await pushImage(repo, "v1");
      const dockerReference = `${registry.host}/sign/key`;

      const first = await signImage(repo, image.digest, new KeySigner(key1.privateKey), { dockerReference });
      assert.deepEqual(
        first.map((r) => [r.status, r.format]),
        [["signed", "legacy"]],
      );
      const one = await readJson(repo, sigTag(image.digest));
      assert.equal(one.manifest.mediaType, MediaType.ociManifest);
      assert.equal(one.manifest.layers.length, 1);
      const layer = one.manifest.layers[0];
      assert.equal(layer.mediaType, "application/vnd.dev.cosign.simplesigning.v1+json");
      const payload = await readBlob(repo, layer.digest);
      assert.equal(payload.toString(), expectedPayload(dockerReference, image.digest));
      assert.equal(one.manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
      assert.equal(one.manifest.config.digest, sha256(expectedConfig([sha256(payload)])));
      assert.deepEqual(Object.keys(layer.annotations), ["dev.cosignproject.cosign/signature"]);
      const signature = Buffer.from(layer.annotations["dev.cosignproject.cosign/signature"], "base64");
      assert.ok(verify("sha256", payload, key1.publicKey, signature), "signature verifies with key 1");

      await signImage(repo, image.digest, new KeySigner(key2.privateKey), { dockerReference });
      const two = await readJson(repo, sigTag(image.digest));
      assert.equal(two.manifest.layers.length, 2);
      assert.deepEqual(two.manifest.layers[0], layer, "the first signature is kept as it was");
      const second = Buffer.from(two.manifest.layers[1].annotations["dev.cosignproject.cosign/signature"], "base64");
      assert.ok(verify("sha256", payload, key2.publicKey, second), "second layer is key 2's");
      assert.equal(two.manifest.config.digest, sha256(expectedConfig([sha256(payload), sha256(payload)])));

      const again = await signImage(repo, image.digest, new KeySigner(key1.privateKey), { dockerReference });
      assert.deepEqual(
        again.map((r) => r.status),
        ["already-signed"],
      );
      assert.equal((await readJson(repo, sigTag(image.digest))).digest, two.digest, "nothing was written");
    });

    it("--recursive signs the index and each manifest it lists", async () => {
      const repo = client.repository(`${registry.host}/sign/multi`);
      const children = [await pushImage(repo, "amd64"), await pushImage(repo, "arm64")];
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociIndex,
          manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size })),
        }),
      );
      const indexDigest = await repo.putManifest(index, MediaType.ociIndex, "multi");
      const results = await signImage(repo, indexDigest, new KeySigner(key1.privateKey), {
        dockerReference: "example.test/multi",
        recursive: true,
      });
      assert.deepEqual(
        results.map((r) => r.digest),
        [indexDigest, ...children.map((c) => c.digest)],
      );
      for (const digest of [indexDigest, ...children.map((c) => c.digest)]) {
        const { manifest } = await readJson(repo, sigTag(digest));
        const payload = await readBlob(repo, manifest.layers[0].digest);
        assert.equal(payload.toString(), expectedPayload("example.test/multi", digest));
      }
    });

    it("signs keyless through Fulcio and Rekor: certificate, chain and Rekor bundle agree", async () => {
      const repo = client.repository(`${registry.host}/sign/keyless`);
      const image = await pushImage(repo, "v1");
      const workflow = "acme/ext/.github/workflows/release.yaml@refs/heads/main";
      const token = makeTestIdentityToken({
        iss: "https://token.actions.githubusercontent.com",
        sub: "repo:acme/ext:ref:refs/heads/main",
        job_workflow_ref: workflow,
      });
      const signer = new KeylessSigner({ fulcioUrl: server.url, rekorUrl: server.url, identityToken: token });
      const dockerReference = `${registry.host}/sign/keyless`;
      await signImage(repo, image.digest, signer, { dockerReference });

      const { manifest } = await readJson(repo, sigTag(image.digest));
      const layer = manifest.layers[0];
      assert.deepEqual(Object.keys(layer.annotations), [
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/bundle",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
      ]);
      const payload = await readBlob(repo, layer.digest);
      const leaf = new X509Certificate(layer.annotations["dev.sigstore.cosign/certificate"]);
      assert.equal(leaf.subjectAltName, `URI:https://github.com/${workflow}`);
      const chain = layer.annotations["dev.sigstore.cosign/chain"] as string;
      assert.equal(chain, sigstore.ca.intermediate.pem + sigstore.ca.root.pem);
      const signature = Buffer.from(layer.annotations["dev.cosignproject.cosign/signature"], "base64");
      assert.ok(verify("sha256", payload, leaf.publicKey, signature));

      const rekor = JSON.parse(layer.annotations["dev.sigstore.cosign/bundle"]);
      const body = JSON.parse(Buffer.from(rekor.Payload.body, "base64").toString());
      assert.equal(body.kind, "hashedrekord");
      assert.equal(body.spec.signature.content, layer.annotations["dev.cosignproject.cosign/signature"]);
      assert.equal(`sha256:${body.spec.data.hash.value}`, sha256(payload));
      assert.equal(
        Buffer.from(body.spec.signature.publicKey.content, "base64").toString(),
        layer.annotations["dev.sigstore.cosign/certificate"],
      );
      const signer2 = verifier().verify(toSignedEntity(legacyLayerAsBundle(payload, layer.annotations), payload));
      assert.equal(signer2.identity?.subjectAlternativeName, `https://github.com/${workflow}`);

      // The same identity signing again (a new certificate, a new key) is recognised: nothing is added.
      const entriesBefore = server.entries.length;
      const rerun = new KeylessSigner({ fulcioUrl: server.url, rekorUrl: server.url, identityToken: token });
      const again = await signImage(repo, image.digest, rerun, { dockerReference });
      assert.deepEqual(
        again.map((r) => r.status),
        ["already-signed"],
      );
      assert.equal(server.entries.length, entriesBefore, "no Rekor entry for a signature not written");
    });

    it("pushes a v0.3 bundle referrer that sigstore-js verifies", async () => {
      const repo = client.repository(`${registry.host}/sign/bundle`);
      const image = await pushImage(repo, "v1");
      const token = makeTestIdentityToken({
        iss: "https://accounts.google.com",
        sub: "1234",
        email: "release@example.com",
        email_verified: true,
      });
      const signer = new KeylessSigner({ fulcioUrl: server.url, rekorUrl: server.url, identityToken: token });
      const results = await signImage(repo, image.digest, signer, { dockerReference: "x.test/b", bundle: true });
      assert.deepEqual(
        results.map((r) => r.format),
        ["legacy", "bundle"],
      );

      const referrers = await repo.referrers(image.digest, "application/vnd.dev.sigstore.bundle.v0.3+json");
      assert.equal(referrers.length, 1);
      if (registry.kind === "distribution") {
        // distribution 2.8 has no referrers API: the referrer is listed in the sha256-<hex> fallback index.
        const fallback = await readJson(repo, `sha256-${image.digest.slice(7)}`);
        assert.deepEqual(
          fallback.manifest.manifests.map((d: { digest: string }) => d.digest),
          [referrers[0]?.digest],
        );
      }
      const { manifest } = await readJson(repo, referrers[0]?.digest as string);
      assert.equal(manifest.artifactType, "application/vnd.dev.sigstore.bundle.v0.3+json");
      assert.equal(manifest.config.mediaType, "application/vnd.oci.empty.v1+json");
      assert.equal(manifest.config.digest, sha256("{}"));
      assert.deepEqual(manifest.subject, { mediaType: image.mediaType, size: image.size, digest: image.digest });
      assert.equal(manifest.annotations["dev.sigstore.bundle.predicateType"], "https://sigstore.dev/cosign/sign/v1");
      const bundleJson = JSON.parse((await readBlob(repo, manifest.layers[0].digest)).toString());
      const statement = JSON.parse(Buffer.from(bundleJson.dsseEnvelope.payload, "base64").toString());
      assert.equal(statement.predicateType, "https://sigstore.dev/cosign/sign/v1");
      assert.deepEqual(statement.subject[0].digest, { sha256: image.digest.slice(7) });
      const verified = verifier().verify(toSignedEntity(bundleFromJSON(bundleJson)));
      assert.equal(verified.identity?.subjectAlternativeName, "release@example.com");
      assert.equal(verified.identity?.extensions?.issuer, "https://accounts.google.com");

      // Re-running with the same identity adds nothing and logs nothing; another signer adds its own bundle.
      const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json";
      const entriesBefore = server.entries.length;
      const rerun = new KeylessSigner({ fulcioUrl: server.url, rekorUrl: server.url, identityToken: token });
      const again = await signImage(repo, image.digest, rerun, { dockerReference: "x.test/b", bundle: true });
      assert.deepEqual(
        again.map((r) => `${r.format}:${r.status}`),
        ["legacy:already-signed", "bundle:already-signed"],
      );
      assert.equal(server.entries.length, entriesBefore, "no Rekor entry for a bundle not written");
      assert.equal((await repo.referrers(image.digest, bundleType)).length, 1);

      const keySigner = new KeySigner(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey, {
        rekorUrl: server.url,
      });
      const byKey = await signImage(repo, image.digest, keySigner, { dockerReference: "x.test/b", bundle: true });
      assert.deepEqual(
        byKey.map((r) => r.status),
        ["signed", "signed"],
      );
      const keyAgain = await signImage(repo, image.digest, keySigner, { dockerReference: "x.test/b", bundle: true });
      assert.deepEqual(
        keyAgain.map((r) => r.status),
        ["already-signed", "already-signed"],
      );
      assert.equal((await repo.referrers(image.digest, bundleType)).length, 2);
    });
  });
}
