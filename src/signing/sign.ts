// Writes cosign-compatible signatures into a registry: the legacy `sha256-<hex>.sig` image (one simple-signing
// layer per signature, appended to what is there) and, on request, a v0.3 Sigstore bundle as an OCI referrer.

import { badRequest, integrity, isAppError } from "../errors.ts";
import { type Digest, sha256Digest } from "../oci/digest.ts";
import { type Descriptor, type ImageManifest, isImageIndex, parseManifest } from "../oci/manifest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import type { Repository } from "../oci/repository.ts";
import {
  Annotation,
  CosignSignPredicateType,
  cosignSignStatement,
  formatLegacyRekorBundle,
  InTotoPayloadType,
  SigstoreBundleMediaType,
  SimpleSigningMediaType,
  signatureImageConfig,
  signatureTag,
  simpleSigningPayload,
} from "./cosign-format.ts";
import { findBundleReferrers, readReferrerBundle } from "./signature-sources.ts";
import type { SignatureMaterial, Signer } from "./signer.ts";
import type { SigstoreBundleJson } from "./sigstore-bundle.ts";

/** A `.sig` image with more layers than this is not appended to: nobody signs an image a thousand times. */
export const maxSignatureLayers = 1000;
/** Children signed by one recursive run. */
export const maxRecursiveManifests = 256;

export interface SignImageOptions {
  /** The `docker-reference` claim: the image's repository as users name it, e.g. `ghcr.io/org/ext`. */
  dockerReference: string;
  /** Also sign each manifest an index lists (cosign's --recursive). */
  recursive?: boolean;
  /** Also push a v0.3 Sigstore bundle referrer for each signed manifest. */
  bundle?: boolean;
  /** Extra claims for the payload's `optional` section (cosign's -a key=value). */
  annotations?: Record<string, string>;
}

export interface SignResult {
  /** The signed manifest. */
  digest: Digest;
  format: "legacy" | "bundle";
  status: "signed" | "already-signed";
  /** Where it was written: the `.sig` tag, or the referrer manifest's digest. */
  location: string;
}

/** Repositories that can push a referrer with the fallback-tag dance (the remote client). */
interface ReferrerPusher {
  pushReferrer(body: Uint8Array, mediaType: string): Promise<Descriptor>;
}

function canPushReferrer(repository: Repository): repository is Repository & ReferrerPusher {
  return typeof (repository as Partial<ReferrerPusher>).pushReferrer === "function";
}

async function readManifestIfPresent(repository: Repository, reference: string) {
  try {
    return await repository.getManifest(reference);
  } catch (err) {
    if (isAppError(err, "NotFound")) return undefined;
    throw err;
  }
}

/** Descriptor fields in go-containerregistry's order, so the manifest bytes look like cosign's. */
function descriptorJson(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: d.mediaType, size: d.size, digest: d.digest };
  if (d.annotations) out.annotations = d.annotations;
  if (d.artifactType) out.artifactType = d.artifactType;
  return out;
}

/** Annotations with sorted keys, as Go marshals a map. */
function sortedAnnotations(annotations: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function layerAnnotations(material: SignatureMaterial): Record<string, string> {
  const annotations: Record<string, string> = { [Annotation.signature]: material.signature.toString("base64") };
  if (material.certificatePem) annotations[Annotation.certificate] = material.certificatePem;
  if (material.chainPem) annotations[Annotation.chain] = material.chainPem;
  if (material.rekorBundle) annotations[Annotation.bundle] = formatLegacyRekorBundle(material.rekorBundle);
  return sortedAnnotations(annotations);
}

async function putSmallBlob(repository: Repository, data: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256Digest(data);
  if (!(await repository.statBlob(digest))) await repository.putBlob(data, { digest, size: data.length });
  return { mediaType, size: data.length, digest };
}

/** Reads the existing `.sig` image, refusing shapes we would not append to. */
async function existingSignatureLayers(repository: Repository, tag: string): Promise<Descriptor[]> {
  const record = await readManifestIfPresent(repository, tag);
  if (!record) return [];
  const { manifest } = parseManifest(record.body, record.mediaType);
  if (isImageIndex(manifest)) throw integrity(`${repository.displayName}:${tag} is an index, not a signature image`);
  if (manifest.layers.length >= maxSignatureLayers)
    throw integrity(`${repository.displayName}:${tag} already has ${manifest.layers.length} signature layers`);
  return manifest.layers;
}

/** Writes (or appends to) the legacy `.sig` image for one manifest. */
async function signLegacy(
  repository: Repository,
  digest: Digest,
  signer: Signer,
  options: SignImageOptions,
): Promise<SignResult> {
  const tag = signatureTag(digest);
  const payload = simpleSigningPayload(options.dockerReference, digest, options.annotations ?? null);
  const payloadDigest = sha256Digest(payload);
  const layers = await existingSignatureLayers(repository, tag);
  for (const layer of layers) {
    if (layer.digest !== payloadDigest || layer.mediaType !== SimpleSigningMediaType) continue;
    if (await signer.recognizes(layer.annotations ?? {}, payload))
      return { digest, format: "legacy", status: "already-signed", location: tag };
  }

  const material = await signer.sign(payload);
  const layer = await putSmallBlob(repository, payload, SimpleSigningMediaType);
  layer.annotations = layerAnnotations(material);
  const allLayers = [...layers, layer];
  // Each layer is uncompressed, so its diff_id is its digest.
  const config = await putSmallBlob(
    repository,
    signatureImageConfig(allLayers.map((l) => l.digest)),
    MediaType.ociConfig,
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorJson(config),
    layers: allLayers.map(descriptorJson),
  };
  await repository.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, tag);
  return { digest, format: "legacy", status: "signed", location: tag };
}

/** A bundle referrer of `subject` that this signer already made over `statement`, if any. */
async function existingBundleBy(
  repository: Repository,
  subject: Descriptor,
  signer: Signer,
  statement: Buffer,
): Promise<Digest | undefined> {
  for (const referrer of await findBundleReferrers(repository, subject.digest)) {
    let bundle: SigstoreBundleJson;
    try {
      bundle = JSON.parse((await readReferrerBundle(repository, referrer, subject.digest)).toString("utf8"));
    } catch (err) {
      if (isAppError(err, "Integrity") || err instanceof SyntaxError) continue; // not ours to judge; not a match
      throw err;
    }
    if (await signer.recognizesBundle(bundle, statement, InTotoPayloadType)) return referrer.digest;
  }
  return undefined;
}

/** Pushes a v0.3 bundle referrer for one manifest, unless this signer already has one there. */
async function signBundle(repository: Repository, subject: Descriptor, signer: Signer): Promise<SignResult> {
  const statement = cosignSignStatement(subject.digest);
  const existing = await existingBundleBy(repository, subject, signer, statement);
  if (existing) return { digest: subject.digest, format: "bundle", status: "already-signed", location: existing };
  const bundle = await signer.signBundle(statement, InTotoPayloadType);
  const bundleBytes = Buffer.from(JSON.stringify(bundle));
  const layer = await putSmallBlob(repository, bundleBytes, SigstoreBundleMediaType);
  const emptyConfig = await putSmallBlob(repository, Buffer.from("{}"), MediaType.ociEmpty);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: SigstoreBundleMediaType,
    config: descriptorJson(emptyConfig),
    layers: [descriptorJson(layer)],
    subject: descriptorJson(subject),
    annotations: {
      [Annotation.bundleContent]: "dsse-envelope",
      [Annotation.bundlePredicateType]: CosignSignPredicateType,
      "org.opencontainers.image.created": new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    },
  };
  const body = Buffer.from(JSON.stringify(manifest));
  const location = canPushReferrer(repository)
    ? (await repository.pushReferrer(body, MediaType.ociManifest)).digest
    : await repository.putManifest(body, MediaType.ociManifest);
  return { digest: subject.digest, format: "bundle", status: "signed", location };
}

/**
 * Signs the manifest `digest` in `repository` (and with `recursive`, every manifest its index lists), writing
 * legacy `.sig` signatures and optionally bundle referrers. Returns one result per signature written or found.
 */
export async function signImage(
  repository: Repository,
  digest: Digest,
  signer: Signer,
  options: SignImageOptions,
): Promise<SignResult[]> {
  if (!options.dockerReference) throw badRequest("a docker reference is required for the signature payload");
  const root = await repository.statManifest(digest);
  if (!root) throw badRequest(`${repository.displayName}@${digest} does not exist`);
  const targets: Descriptor[] = [{ mediaType: root.mediaType, digest: root.digest, size: root.size }];
  if (options.recursive) {
    const record = await repository.getManifest(digest);
    const { manifest } = parseManifest(record.body, record.mediaType);
    if (isImageIndex(manifest)) {
      if (manifest.manifests.length > maxRecursiveManifests)
        throw badRequest(`index lists ${manifest.manifests.length} manifests, over ${maxRecursiveManifests}`);
      for (const child of manifest.manifests)
        targets.push({ mediaType: child.mediaType, digest: child.digest, size: child.size });
    }
  }
  const results: SignResult[] = [];
  for (const target of targets) {
    results.push(await signLegacy(repository, target.digest, signer, options));
    if (options.bundle) results.push(await signBundle(repository, target, signer));
  }
  return results;
}

export function describeSignResult(repositoryName: string, result: SignResult): string {
  const what = result.format === "legacy" ? `signature ${result.location}` : `bundle referrer ${result.location}`;
  return result.status === "signed"
    ? `${repositoryName}@${result.digest}: wrote ${what}`
    : `${repositoryName}@${result.digest}: already signed (${what})`;
}
