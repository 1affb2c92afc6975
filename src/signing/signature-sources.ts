// Finding and reading the signature artifacts of an image, by its digest only: cosign v3 bundles (OCI
// referrers, or the `sha256-<hex>` fallback index the repository's `referrers` reads) and the legacy
// `sha256-<hex>.sig` image. Everything is bounded: counts are checked on the manifest before any blob is
// fetched, and every blob read stops at its limit and is checked against its digest.

import { createHash } from "node:crypto";
import { integrity, isAppError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import { type Descriptor, type ImageManifest, isImageIndex, parseManifest } from "../oci/manifest.ts";
import type { Repository } from "../oci/repository.ts";
import { maxPayloadBytes, SigstoreBundleMediaType, signatureTag } from "./cosign-format.ts";

/**
 * At most this many layers in a `.sig` image: cosign's own bound (pkg/oci/remote/signatures.go, maxLayers),
 * past which it refuses the signature image. Each layer is one candidate signature.
 */
export const maxLegacyLayers = 1000;
/** At most this many bundle referrers are examined (each one candidate); more are listed as not examined. */
export const maxBundleReferrers = 128;
/**
 * Bytes of signature material (payloads, bundles) read for one image at the most: 1,000 candidates of up to
 * 64 KiB each would be 64 MiB; a real image has one or two signatures of a few KiB.
 */
export const maxSignatureBytesRead = 16 * 1024 * 1024;
/** Upper bound on a Sigstore bundle blob (real ones are a few KiB). */
export const maxBundleBytes = 1024 * 1024;

export interface LegacySignatureImage {
  tag: string;
  digest: Digest;
  layers: Descriptor[];
}

/** Reads a small blob completely, refusing more than `max` bytes and content that is not `descriptor`'s. */
export async function readBoundedBlob(
  repository: Repository,
  descriptor: Descriptor,
  max: number,
  what: string,
): Promise<Buffer> {
  if (descriptor.size > max) throw integrity(`${what} is ${descriptor.size} bytes, over the ${max} byte limit`);
  const reader = await repository.getBlob(descriptor.digest);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of reader.stream) {
      total += (chunk as Buffer).length;
      if (total > descriptor.size) throw integrity(`${what} is larger than its descriptor's ${descriptor.size} bytes`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    reader.stream.destroy();
  }
  const data = Buffer.concat(chunks, total);
  if (data.length !== descriptor.size)
    throw integrity(`${what} is ${data.length} bytes, its descriptor says ${descriptor.size}`);
  const actual = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  if (!descriptor.digest.startsWith("sha256:") || actual !== descriptor.digest)
    throw integrity(`${what} has digest ${actual}, expected ${descriptor.digest}`);
  return data;
}

/** The legacy `.sig` image of a digest, or undefined when there is none. */
export async function fetchLegacySignatures(
  repository: Repository,
  imageDigest: Digest,
): Promise<LegacySignatureImage | undefined> {
  const tag = signatureTag(imageDigest);
  let record: Awaited<ReturnType<Repository["getManifest"]>>;
  try {
    record = await repository.getManifest(tag);
  } catch (err) {
    if (isAppError(err, "NotFound")) return undefined;
    throw err;
  }
  const { manifest } = parseManifest(record.body, record.mediaType);
  if (isImageIndex(manifest)) throw integrity(`${tag} is an index, not a signature image`);
  if (manifest.layers.length > maxLegacyLayers)
    throw integrity(`${tag} has ${manifest.layers.length} layers, more than the ${maxLegacyLayers} cosign accepts`);
  return { tag, digest: record.digest, layers: manifest.layers };
}

/** Bundle referrers of a digest (none when the registry and fallback tag have none). */
export async function findBundleReferrers(repository: Repository, imageDigest: Digest): Promise<Descriptor[]> {
  const referrers = await repository.referrers(imageDigest, SigstoreBundleMediaType);
  return referrers.filter((d) => d.artifactType === SigstoreBundleMediaType);
}

/**
 * Reads the bundle a referrer manifest carries, after checking that the manifest really refers to the image
 * (a fallback index is just a tag anyone with push access can rewrite).
 */
export async function readReferrerBundle(
  repository: Repository,
  referrer: Descriptor,
  imageDigest: Digest,
): Promise<Buffer> {
  const record = await repository.getManifest(referrer.digest);
  const { manifest } = parseManifest(record.body, record.mediaType);
  if (isImageIndex(manifest)) throw integrity("the referrer is an index, not a bundle manifest");
  const image = manifest as ImageManifest;
  if (image.subject?.digest !== imageDigest)
    throw integrity(`the referrer's subject is ${image.subject?.digest ?? "missing"}, not ${imageDigest}`);
  const layers = image.layers.filter((l) => l.mediaType === SigstoreBundleMediaType);
  if (layers.length !== 1) throw integrity(`the referrer has ${layers.length} bundle layers; expected one`);
  return readBoundedBlob(repository, layers[0] as Descriptor, maxBundleBytes, "the bundle");
}

/** Reads a `.sig` layer's payload (at most 64 KiB). */
export function readLegacyPayload(repository: Repository, layer: Descriptor): Promise<Buffer> {
  return readBoundedBlob(repository, layer, maxPayloadBytes, "the payload");
}
