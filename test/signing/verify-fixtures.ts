// Helpers for the verification tests: a test client, and pushing signature artifacts (legacy `.sig` images,
// bundle referrers with their fallback index) into a real registry.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AppError } from "../../src/errors.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import type { RemoteRepository } from "../../src/oci/client/remote-repository.ts";
import type { Digest } from "../../src/oci/digest.ts";
import type { Descriptor } from "../../src/oci/manifest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import {
  SigstoreBundleMediaType,
  SimpleSigningMediaType,
  signatureImageConfig,
  signatureTag,
} from "../../src/signing/cosign-format.ts";

export const realVectors = "/work/shared/testdata/real-signatures";

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export function testClient(host: string): RegistryClient {
  return new RegistryClient({
    insecure: new Set([host]),
    certsDirs: [],
    credentials: async () => undefined,
    retryDelayMs: 10,
    retries: 1,
  });
}

/** A random-looking but fixed image digest, for images that need not exist. */
export function fakeDigest(seed: string): Digest {
  return sha256(`image:${seed}`);
}

export interface LegacyLayer {
  payload: Buffer;
  annotations: Record<string, string>;
}

/** Pushes a legacy signature image (config as cosign builds it, one layer per signature) under `sha256-<hex>.sig`. */
export async function pushLegacySignatures(
  repo: RemoteRepository,
  imageDigest: Digest,
  layers: readonly LegacyLayer[],
): Promise<Digest> {
  const descriptors: Descriptor[] = [];
  for (const layer of layers) {
    await repo.putBlob(layer.payload);
    descriptors.push({
      mediaType: SimpleSigningMediaType,
      size: layer.payload.length,
      digest: sha256(layer.payload),
      annotations: layer.annotations,
    });
  }
  const config = signatureImageConfig(descriptors.map((d) => d.digest));
  await repo.putBlob(config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
    layers: descriptors,
  };
  return repo.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, signatureTag(imageDigest));
}

/** Pushes a bundle as cosign v3 does: empty config, one bundle layer, subject = the image; fallback index when needed. */
export async function pushBundleReferrer(
  repo: RemoteRepository,
  subject: Descriptor,
  bundle: Buffer,
): Promise<Descriptor> {
  const empty = Buffer.from("{}");
  await repo.putBlob(empty);
  await repo.putBlob(bundle);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: SigstoreBundleMediaType,
    config: { mediaType: MediaType.ociEmpty, size: empty.length, digest: sha256(empty) },
    layers: [{ mediaType: SigstoreBundleMediaType, size: bundle.length, digest: sha256(bundle) }],
    subject,
  };
  return repo.pushReferrer(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
}

// ---- the real-world vectors ---------------------------------------------------------------------------

export const realLegacyDigest: Digest = "sha256:bbfdc97be6fbabb8be57c346c47816c8a95904b14448270cd0585a822c33961a";
export const realLegacyIssuer = "https://token.actions.githubusercontent.com";
export const realLegacySubject =
  "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/release.yaml@refs/tags/v0.0.25";

export const realBundleImageDigest: Digest = "sha256:dd89b46bbdbaf327dbce29901c7ec8e4927b9db04a9774ed5b7cb34931150274";
export const realBundleIssuer = "https://accounts.google.com";
export const realBundleSubject = "albert.kostusev@siderolabs.com";

export async function realLegacyLayer(): Promise<LegacyLayer & { manifest: Record<string, unknown> }> {
  const manifest = JSON.parse(await readFile(join(realVectors, "real-legacy-sig-manifest.json"), "utf8"));
  const payload = await readFile(join(realVectors, "real-legacy-sig-payload.json"));
  return { payload, annotations: manifest.layers[0].annotations, manifest };
}

export async function realBundleBytes(): Promise<Buffer> {
  return readFile(join(realVectors, "real-bundle.json"));
}

export const realBundleSubjectDescriptor: Descriptor = {
  mediaType: MediaType.dockerManifest,
  size: 696,
  digest: realBundleImageDigest,
};

/** Expects an Integrity AppError whose message matches `pattern`. */
export async function expectIntegrity(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
    assert.equal(err.kind, "Integrity", err.message);
    assert.match(err.message, pattern);
    return true;
  });
}
