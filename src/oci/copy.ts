// Copies an image (a manifest, or an index with its children) and every blob it references from one place
// to another, keeping digests: the manifest bytes are copied exactly, never re-serialized. Sources and
// destinations are anything with the few Repository methods used here: a remote registry repository, the
// embedded store, or an OCI image layout (OciLayoutImageStore). This is the primitive `mirror` builds on.
//
// Every manifest is checked against the digest and size its parent (or the user) named; blobs stream from
// source to destination, verified by the source's reader and again by the destination's put. Blobs the
// destination already has are skipped. Child manifests and blobs are written before the manifest that
// references them, so a destination never holds a manifest whose content is missing.

import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { badRequest, integrity, notFound } from "../errors.ts";
import { mapLimited } from "../util/concurrency.ts";
import { type Digest, digestAlgorithm, isDigest } from "./digest.ts";
import { type Descriptor, isImageIndex, type Manifest, parseManifest } from "./manifest.ts";
import { formatPlatform, type PlatformSpec, selectPlatform } from "./platform.ts";
import type { BlobInfo, BlobReader, ManifestRecord, PutBlobOptions } from "./repository.ts";

/** Where an image is read from. `Repository` implementations and OciLayoutImageStore fit. */
export interface ImageSource {
  readonly displayName: string;
  /** A manifest by tag (or layout ref name) or digest, with its exact bytes. */
  getManifest(reference: string): Promise<ManifestRecord>;
  /** A blob stream that fails instead of ending if the bytes do not match the digest (and size, if given). */
  getBlob(digest: Digest, options?: { size?: number }): Promise<BlobReader>;
}

/** Where an image is written to. `Repository` implementations and OciLayoutImageStore fit. */
export interface ImageDestination {
  readonly displayName: string;
  statBlob(digest: Digest): Promise<BlobInfo | undefined>;
  /** Stores a blob; a given digest or size the content does not match fails the put and stores nothing. */
  putBlob(content: Readable, options: PutBlobOptions): Promise<BlobInfo>;
  /** Stores a manifest by digest and, with `tag`, names it. Returns the digest of `body`. */
  putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest>;
}

export const defaultPlatform: PlatformSpec = { os: "linux", architecture: "amd64" };

export interface CopyOptions {
  /** The source manifest: a tag (layout ref name) or a digest. */
  reference: string;
  /** Tag (layout ref name) the copy gets at the destination; without one it is stored by digest only. */
  tag?: string;
  /** The digest the copied top-level manifest must have (a destination named by digest). */
  expectedDigest?: Digest;
  /** For an index: copy it and every child. Otherwise only the `platform` child is copied (as the image). */
  all?: boolean;
  /** Platform chosen from an index when not `all`; default linux/amd64. */
  platform?: PlatformSpec;
  /** Blobs copied at once. Default 4. */
  concurrency?: number;
  /** A repository on the destination's registry that may hold the blobs (cross-repository mount). */
  mountFrom?: string;
}

export interface CopyResult {
  /** Digest, media type and size of the manifest written at the destination (named by `tag`). */
  digest: Digest;
  mediaType: string;
  size: number;
  /** Manifests written (the top one and, for an index, its children). */
  manifests: number;
  blobsCopied: number;
  bytesCopied: number;
  /** Blobs the destination already had. */
  blobsSkipped: number;
}

/** How deep indexes may nest (an index of indexes is legal but rare); bounds hostile input. */
const maxIndexDepth = 4;
/** Layers that registries do not serve (Windows base layers): they are fetched from their `urls`, never copied. */
const foreignLayerTypes = new Set([
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
]);

function digestOfBody(algorithm: "sha256" | "sha512", body: Uint8Array): Digest {
  return `${algorithm}:${createHash(algorithm).update(body).digest("hex")}` as Digest;
}

/** Checks that a fetched manifest is the one asked for: its bytes hash to `digest` (and have `size`). */
function checkManifest(record: ManifestRecord, where: string, digest: Digest, size?: number): void {
  const actual = digestOfBody(digestAlgorithm(digest), record.body);
  if (actual !== digest)
    throw integrity(`${where}: manifest ${digest} has content with digest ${actual}`, "DIGEST_INVALID");
  if (size !== undefined && record.body.length !== size)
    throw integrity(
      `${where}: manifest ${digest} is ${record.body.length} bytes, its index says ${size}`,
      "SIZE_INVALID",
    );
}

function parse(record: ManifestRecord, where: string): Manifest {
  try {
    return parseManifest(record.body, record.mediaType).manifest;
  } catch (err) {
    if (err instanceof Error) err.message = `${where}: manifest ${record.digest} is invalid: ${err.message}`;
    throw err;
  }
}

/** Fetches a manifest by reference; by digest, it is verified against it. */
export async function fetchManifest(source: ImageSource, reference: string): Promise<ManifestRecord> {
  const record = await source.getManifest(reference);
  if (isDigest(reference)) checkManifest(record, source.displayName, reference);
  return record;
}

/** Fetches the child an index descriptor names, verified against the descriptor's digest and size. */
export async function fetchChildManifest(source: ImageSource, descriptor: Descriptor): Promise<ManifestRecord> {
  const record = await source.getManifest(descriptor.digest);
  checkManifest(record, source.displayName, descriptor.digest, descriptor.size);
  return record;
}

/** The platform's entry of an index; NotFound naming the platforms on offer when there is none. */
export function platformDescriptor(index: Manifest, platform: PlatformSpec, where: string): Descriptor {
  if (!isImageIndex(index)) throw badRequest(`${where} is an image manifest, not an index`);
  const descriptor = selectPlatform(index, platform);
  if (descriptor === undefined) {
    const offered = index.manifests.flatMap((d) => (d.platform ? [formatPlatform(d.platform)] : []));
    throw notFound(
      `${where} has no image for platform ${formatPlatform(platform)} (offered: ${offered.join(", ") || "none"})`,
      "MANIFEST_UNKNOWN",
    );
  }
  return descriptor;
}

class ImageCopy {
  private readonly source: ImageSource;
  private readonly dest: ImageDestination;
  private readonly options: CopyOptions;
  /** One transfer per digest, however many manifests share the blob. */
  private readonly blobs = new Map<Digest, Promise<void>>();
  readonly stats = { manifests: 0, blobsCopied: 0, bytesCopied: 0, blobsSkipped: 0 };

  constructor(source: ImageSource, dest: ImageDestination, options: CopyOptions) {
    this.source = source;
    this.dest = dest;
    this.options = options;
  }

  /** Copies what `record` references (recursively), then `record` itself, by digest or under `tag`. */
  async copyManifest(record: ManifestRecord, depth: number, tag?: string): Promise<void> {
    const manifest = parse(record, this.source.displayName);
    if (isImageIndex(manifest)) {
      if (depth >= maxIndexDepth)
        throw badRequest(`${this.source.displayName}: indexes nest deeper than ${maxIndexDepth} levels`);
      // Children one at a time: their blobs already copy in parallel, and shared blobs are fetched once.
      for (const child of manifest.manifests) {
        await this.copyManifest(await fetchChildManifest(this.source, child), depth + 1);
      }
    } else {
      const blobs = [manifest.config, ...manifest.layers].filter(
        (d) => !(foreignLayerTypes.has(d.mediaType) && d.urls !== undefined && d.urls.length > 0),
      );
      await mapLimited(blobs, this.options.concurrency ?? 4, (d) => this.copyBlob(d));
    }
    const written = await this.dest.putManifest(record.body, record.mediaType, tag);
    // A destination that re-serialized the manifest would break every digest that points at it.
    if (digestAlgorithm(written) === digestAlgorithm(record.digest) && written !== record.digest)
      throw integrity(
        `${this.dest.displayName}: stored manifest ${record.digest} as ${written}; digests must be preserved`,
        "DIGEST_INVALID",
      );
    this.stats.manifests++;
  }

  private copyBlob(descriptor: Descriptor): Promise<void> {
    let transfer = this.blobs.get(descriptor.digest);
    if (transfer === undefined) {
      transfer = this.transferBlob(descriptor);
      this.blobs.set(descriptor.digest, transfer);
    }
    return transfer;
  }

  private async transferBlob({ digest, size }: Descriptor): Promise<void> {
    const existing = await this.dest.statBlob(digest);
    if (existing !== undefined) {
      if (existing.size !== size)
        throw integrity(
          `${this.dest.displayName}: has blob ${digest} with ${existing.size} bytes, the manifest says ${size}`,
          "SIZE_INVALID",
        );
      this.stats.blobsSkipped++;
      return;
    }
    const reader = await this.source.getBlob(digest, { size });
    try {
      if (reader.size !== -1 && reader.size !== size)
        throw integrity(
          `${this.source.displayName}: blob ${digest} is ${reader.size} bytes, the manifest says ${size}`,
          "SIZE_INVALID",
        );
      const options: PutBlobOptions = { digest, size };
      if (this.options.mountFrom !== undefined) options.mountFrom = this.options.mountFrom;
      const stored = await this.dest.putBlob(reader.stream, options);
      if (stored.digest !== digest)
        throw integrity(`${this.dest.displayName}: stored blob ${digest} as ${stored.digest}`, "DIGEST_INVALID");
    } finally {
      // A failed put may leave the source stream open (an HTTP body); release it.
      if (!reader.stream.destroyed) reader.stream.destroy();
    }
    this.stats.blobsCopied++;
    this.stats.bytesCopied += size;
  }
}

/**
 * Copies the image `options.reference` names from `source` to `dest`. For an index, `all` copies it with
 * every child; otherwise the child for `platform` (default linux/amd64) is copied as the image. The copy is
 * named `options.tag` at the destination, if given. Returns the digest written and what was transferred.
 */
export async function copyImage(
  source: ImageSource,
  dest: ImageDestination,
  options: CopyOptions,
): Promise<CopyResult> {
  const where = `${source.displayName}:${options.reference}`;
  let record = await fetchManifest(source, options.reference);
  if (!options.all) {
    const top = parse(record, where);
    if (isImageIndex(top))
      record = await fetchChildManifest(source, platformDescriptor(top, options.platform ?? defaultPlatform, where));
  }
  // Checked before anything is written: the user asked for this exact content.
  if (options.expectedDigest !== undefined) {
    const actual = digestOfBody(digestAlgorithm(options.expectedDigest), record.body);
    if (actual !== options.expectedDigest)
      throw badRequest(
        `${where} resolves to ${record.digest}, but the destination names digest ${options.expectedDigest}`,
      );
  }
  const copy = new ImageCopy(source, dest, options);
  await copy.copyManifest(record, 0, options.tag);
  return { digest: record.digest, mediaType: record.mediaType, size: record.body.length, ...copy.stats };
}
