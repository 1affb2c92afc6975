// Copying one verified image to the mirror with its signatures: the image by digest (an index whole, with
// every child), then, for the image and each child, the signature artifacts the verifier reads
// (src/signing/signature-sources.ts): the legacy `sha256-<hex>.sig` image under the same tag, and the
// Sigstore bundle referrers, registered at the destination through its referrers API or the
// `sha256-<hex>` fallback index (RemoteRepository.pushReferrer).
//
// What the destination already has is not copied again: blobs it holds are skipped (src/oci/copy.ts), and
// a manifest it holds under the same tag (or, untagged, by digest) is not re-written, so a second run over a
// complete mirror copies no byte.

import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import type { RemoteRepository } from "../../oci/client/index.ts";
import { type CopyResult, copyImage, fetchManifest, type ImageDestination } from "../../oci/copy.ts";
import { type Digest, digestAlgorithm } from "../../oci/digest.ts";
import { isImageIndex, parseManifest } from "../../oci/manifest.ts";
import type { BlobInfo, PutBlobOptions, Repository } from "../../oci/repository.ts";
import { signatureTag } from "../../signing/cosign-format.ts";
import { findBundleReferrers } from "../../signing/signature-sources.ts";

/** What was transferred, or found present. */
export interface CopyCounters {
  manifestsWritten: number;
  manifestsSkipped: number;
  blobsCopied: number;
  blobsSkipped: number;
  bytesCopied: number;
  bytesSkipped: number;
}

export function emptyCounters(): CopyCounters {
  return {
    manifestsWritten: 0,
    manifestsSkipped: 0,
    blobsCopied: 0,
    blobsSkipped: 0,
    bytesCopied: 0,
    bytesSkipped: 0,
  };
}

export function addCounters(into: CopyCounters, from: CopyCounters): void {
  for (const key of Object.keys(into) as Array<keyof CopyCounters>) into[key] += from[key];
}

/**
 * The destination as copyImage sees it: blobs already present are counted with their size, and a manifest
 * already present under its tag (or by digest) is not written again.
 */
class SkippingDestination implements ImageDestination {
  readonly #inner: Repository;
  readonly #counters: CopyCounters;

  constructor(inner: Repository, counters: CopyCounters) {
    this.#inner = inner;
    this.#counters = counters;
  }

  get displayName(): string {
    return this.#inner.displayName;
  }

  async statBlob(digest: Digest): Promise<BlobInfo | undefined> {
    const info = await this.#inner.statBlob(digest);
    // copyImage asks only before transferring, and skips what exists.
    if (info !== undefined) this.#counters.bytesSkipped += info.size;
    return info;
  }

  putBlob(content: Readable, options: PutBlobOptions): Promise<BlobInfo> {
    return this.#inner.putBlob(content, options);
  }

  async putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest> {
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}` as Digest;
    const present = await this.#inner.statManifest(tag ?? digest);
    if (present !== undefined && present.digest === digest) {
      this.#counters.manifestsSkipped++;
      return digest;
    }
    const written = await this.#inner.putManifest(body, mediaType, tag);
    this.#counters.manifestsWritten++;
    return written;
  }
}

export interface CopyItemRequest {
  source: Repository;
  destination: RemoteRepository;
  digest: Digest;
  tag: string;
  /** Blobs copied at once within one image. */
  blobConcurrency: number;
  signal?: AbortSignal;
}

export interface CopyItemResult {
  image: CopyCounters;
  signatures: CopyCounters;
  /** Signature artifacts found at the source and now at the destination (`.sig` images, bundle referrers). */
  signatureArtifacts: number;
}

function countCopy(counters: CopyCounters, result: CopyResult): void {
  counters.blobsCopied += result.blobsCopied;
  counters.blobsSkipped += result.blobsSkipped;
  counters.bytesCopied += result.bytesCopied;
}

async function copyCounted(
  source: Repository,
  destination: Repository,
  counters: CopyCounters,
  options: { reference: Digest; tag?: string; blobConcurrency: number },
): Promise<void> {
  const copy: Parameters<typeof copyImage>[2] = {
    reference: options.reference,
    all: true,
    concurrency: options.blobConcurrency,
  };
  if (options.tag !== undefined) copy.tag = options.tag;
  countCopy(counters, await copyImage(source, new SkippingDestination(destination, counters), copy));
}

/** The signature artifacts of one manifest digest: its `.sig` image and its bundle referrers. */
async function copySignatures(request: CopyItemRequest, subject: Digest, counters: CopyCounters): Promise<number> {
  const { source, destination } = request;
  let artifacts = 0;
  if (digestAlgorithm(subject) !== "sha256") return 0; // cosign names signatures of sha256 digests only
  const tag = signatureTag(subject);
  const legacy = await source.statManifest(tag);
  if (legacy !== undefined) {
    request.signal?.throwIfAborted();
    await copyCounted(source, destination, counters, {
      reference: legacy.digest,
      tag,
      blobConcurrency: request.blobConcurrency,
    });
    artifacts++;
  }
  const referrers = await findBundleReferrers(source, subject);
  if (referrers.length === 0) return artifacts;
  const present = new Set((await destination.referrers(subject)).map((d) => d.digest));
  for (const referrer of referrers) {
    request.signal?.throwIfAborted();
    await copyCounted(source, destination, counters, {
      reference: referrer.digest,
      blobConcurrency: request.blobConcurrency,
    });
    if (!present.has(referrer.digest)) {
      // Listed for its subject: through the referrers API, or in the fallback tag's index.
      const record = await fetchManifest(source, referrer.digest);
      await destination.pushReferrer(record.body, record.mediaType);
    }
    artifacts++;
  }
  return artifacts;
}

/** Copies the image `digest` (under `tag`) and the signatures of it and of each manifest its index lists. */
export async function copyItemWithSignatures(request: CopyItemRequest): Promise<CopyItemResult> {
  const image = emptyCounters();
  const signatures = emptyCounters();
  request.signal?.throwIfAborted();
  // Signatures first: a mirror never shows an image whose signature has not arrived yet (a factory reading
  // it meanwhile would refuse it as unsigned).
  const top = await fetchManifest(request.source, request.digest);
  const { manifest } = parseManifest(top.body, top.mediaType);
  const subjects: Digest[] = [request.digest];
  if (isImageIndex(manifest)) subjects.push(...manifest.manifests.map((d) => d.digest));
  let signatureArtifacts = 0;
  for (const subject of subjects) signatureArtifacts += await copySignatures(request, subject, signatures);
  request.signal?.throwIfAborted();
  await copyCounted(request.source, request.destination, image, {
    reference: request.digest,
    tag: request.tag,
    blobConcurrency: request.blobConcurrency,
  });
  return { image, signatures, signatureArtifacts };
}
