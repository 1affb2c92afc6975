import type { Readable } from "node:stream";
import type { Digest } from "./digest.ts";
import type { Descriptor } from "./manifest.ts";

/** A manifest as stored: its exact bytes (the digest is over them), media type and digest. */
export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A blob being read. The stream fails (never ends cleanly) if the bytes do not match the digest or size. */
export interface BlobReader extends BlobInfo {
  stream: Readable;
}

export interface PutBlobOptions {
  /** When known, the digest the content must have; a mismatch fails the put and stores nothing. */
  digest?: Digest;
  /** When known, the size the content must have. */
  size?: number;
  /** A repository on the same registry that may already hold the blob (cross-repository mount). */
  mountFrom?: string;
}

/**
 * One repository of an OCI registry. Two implementations: the embedded store (in-process, no HTTP hop) and a
 * remote registry reached over the distribution API. Cache, schematics and installers use this interface and
 * do not know which one they have. Missing things raise NotFound errors.
 */
export interface Repository {
  /** The repository's name, e.g. `siderolabs/imager`. */
  readonly name: string;
  /** `registry/name`, for messages. */
  readonly displayName: string;

  statBlob(digest: Digest): Promise<BlobInfo | undefined>;
  getBlob(digest: Digest): Promise<BlobReader>;
  putBlob(content: Readable | Uint8Array, options?: PutBlobOptions): Promise<BlobInfo>;

  /** Resolves a tag or digest to the manifest's digest, media type and size without its body. */
  statManifest(reference: string): Promise<(BlobInfo & { mediaType: string }) | undefined>;
  getManifest(reference: string): Promise<ManifestRecord>;
  /** Stores a manifest by digest and, when `tag` is given, points the tag at it. Returns its digest. */
  putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest>;
  /** Deletes a manifest by digest, or removes a tag. */
  deleteManifest(reference: string): Promise<void>;

  listTags(): Promise<string[]>;
  /** Manifests whose `subject` is the given digest, optionally filtered by artifactType. */
  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]>;
}
