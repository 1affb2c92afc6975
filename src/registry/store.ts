// The registry's content-addressed filesystem store.
//
// Layout under the root (format version 1, recorded in store-format.json):
//   store-format.json              {"format":"boot-assets-registry-store","version":1}
//   lock                           the writer lock (see lock.ts); absent when no writer has the store open
//   tmp/                           uploads in progress and files about to be renamed into place; emptied at open
//   blobs/<alg>/<hex>              every blob and manifest body, by digest, written once and never changed
//   repositories/<name>/           one directory per repository (the name may contain slashes)
//     _blobs/<alg>/<hex>           link: the blob is part of this repository (pushed or mounted here)
//     _manifests/<alg>/<hex>       link: the manifest is part of this repository; holds its media type
//     _tags/<tag>                  the digest the tag points at
//     _referrers/<alg>/<hex>/<alg>-<hex>.json   descriptor of a manifest whose subject is <alg>:<hex>
// The "_" prefix keeps these apart from nested repository names: a name component cannot start with "_".
// Like distribution, a blob is visible in a repository only once linked there, so one repository cannot
// read another's blobs by guessing digests.
//
// Every file is written to tmp/, fsynced and renamed into place, then its directory fsynced: a crash leaves
// either the old state or the new one, and a failed upload leaves only temp files, removed at the next open.
// One process opens a store for writing (the lock); `readOnly` opens it without the lock, for inspection
// and export while a server runs — reads then see every complete write, since every write is a rename.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, badRequest, notFound } from "../errors.ts";
import { type Digest, digestAlgorithm, digestHex, parseDigest, VerifyingStream } from "../oci/digest.ts";
import { type Descriptor, isImageIndex, type Manifest, parseManifest, referencedDescriptors } from "../oci/manifest.ts";
import { isIndexMediaType } from "../oci/mediatypes.ts";
import { parseManifestReference, validateRepositoryName, validateTag } from "../oci/reference.ts";
import type { BlobInfo, BlobReader, ManifestRecord, PutBlobOptions } from "../oci/repository.ts";
import { Semaphore } from "../util/concurrency.ts";
import {
  fsyncDirectory,
  fsyncFile,
  isNotFoundError,
  listDirectory,
  readTextIfExists,
  removeFile,
  writeFileAtomic,
} from "../util/fs.ts";
import { EmbeddedRepository } from "./embedded-repository.ts";
import { type ExportResult, exportRepository } from "./export.ts";
import { StoreLock } from "./lock.ts";
import { type UploadSession, UploadSessions } from "./uploads.ts";

export const storeFormatName = "boot-assets-registry-store";
export const storeFormatVersion = 1;
export const storeFormatFile = "store-format.json";

export interface OpenStoreOptions {
  /** Open without the writer lock; every write is then refused. */
  readOnly?: boolean;
  /** Largest blob accepted, in bytes (default 64 GiB). */
  maxBlobBytes?: number;
  /** An upload with no activity for this long is dropped (default 2 minutes; a chunk being received is never idle). */
  uploadIdleTimeoutMs?: number;
  /** Most uploads in progress at once (default 1024); past it the least recently active idle one gives way. */
  maxUploads?: number;
  /** Most uploads in progress per client (remote address; default 64); more get 429 TOOMANYREQUESTS. */
  maxUploadsPerClient?: number;
}

/** How long an upload session may sit idle (docs/limits.md). */
export const defaultUploadIdleTimeoutMs = 2 * 60_000;

export interface ManifestInfo extends BlobInfo {
  mediaType: string;
}

export interface PutManifestResult extends ManifestInfo {
  /** The manifest's `subject`, when it has one (the HTTP face answers with OCI-Subject). */
  subject?: Digest;
}

const readOnlyError = () => new AppError("Unsupported", "the store is open read-only", { code: "UNSUPPORTED" });

function blobUnknown(repository: string, digest: string): AppError {
  return notFound(`blob ${digest} is not in repository ${repository}`, "BLOB_UNKNOWN");
}

function manifestUnknown(repository: string, reference: string): AppError {
  return notFound(`manifest ${reference} is not in repository ${repository}`, "MANIFEST_UNKNOWN");
}

function digestPath(digest: Digest): string {
  return join(digestAlgorithm(digest), digestHex(digest));
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    throw err;
  }
}

/** Checks the store's format record; a store from a newer boot-assets is refused rather than misread. */
function checkFormat(text: string, path: string): void {
  let record: { format?: unknown; version?: unknown };
  try {
    record = JSON.parse(text);
  } catch {
    throw badRequest(`${path} is not valid JSON: not a boot-assets registry store`);
  }
  if (record.format !== storeFormatName)
    throw badRequest(`${path} names format ${JSON.stringify(record.format)}, not ${storeFormatName}`);
  if (record.version !== storeFormatVersion)
    throw new AppError(
      "Unsupported",
      `store ${dirname(path)} has format version ${JSON.stringify(record.version)}; this boot-assets reads version ${storeFormatVersion} only (a newer boot-assets wrote it?)`,
      { code: "STORE_VERSION_UNSUPPORTED" },
    );
}

/**
 * Opens (creating when the directory is missing or empty) the store at `root`. For writing, takes the lock
 * and clears leftovers of interrupted writes; a second writer gets a Conflict naming the lock holder.
 */
export async function openStore(root: string, options: OpenStoreOptions = {}): Promise<RegistryStore> {
  const absoluteRoot = resolve(root);
  const formatPath = join(absoluteRoot, storeFormatFile);
  const existingFormat = await readTextIfExists(formatPath);
  if (existingFormat !== undefined) checkFormat(existingFormat, formatPath);

  if (options.readOnly) {
    if (existingFormat === undefined)
      throw notFound(`no registry store at ${absoluteRoot} (${storeFormatFile} missing)`);
    return new RegistryStore(absoluteRoot, undefined, options);
  }

  await mkdir(absoluteRoot, { recursive: true });
  const lock = await StoreLock.acquire(join(absoluteRoot, "lock"));
  try {
    const tmp = join(absoluteRoot, "tmp");
    if (existingFormat === undefined) {
      const others = (await readdir(absoluteRoot)).filter((name) => name !== "lock" && !name.startsWith("."));
      if (others.length > 0)
        throw badRequest(`${absoluteRoot} is not empty and has no ${storeFormatFile}: not a registry store`);
    }
    // Leftovers of writes interrupted by a crash: never visible, now removed.
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await mkdir(join(absoluteRoot, "blobs"), { recursive: true });
    await mkdir(join(absoluteRoot, "repositories"), { recursive: true });
    if (existingFormat === undefined)
      await writeFileAtomic(
        tmp,
        formatPath,
        `${JSON.stringify({ format: storeFormatName, version: storeFormatVersion })}\n`,
      );
    return new RegistryStore(absoluteRoot, lock, options);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** An upload's bytes against what its client said they are: a mismatch is the client's (400). */
function checkUploaded(actual: BlobInfo, digest: Digest, size: number | undefined): void {
  if (actual.digest !== digest)
    throw badRequest(`uploaded content has digest ${actual.digest}, not ${digest}`, "DIGEST_INVALID");
  if (size !== undefined && actual.size !== size)
    throw badRequest(`uploaded content is ${actual.size} bytes, not ${size}`, "SIZE_INVALID");
}

export class RegistryStore {
  readonly root: string;
  readonly readOnly: boolean;
  private readonly lock: StoreLock | undefined;
  private readonly uploads: UploadSessions | undefined;
  private readonly tmpDir: string;
  /**
   * In-process writers (the factory's schematics, asset cache and installers) wait for one of the local
   * client's upload slots instead of being refused: a burst of schematic POSTs is our own backpressure, not
   * a client's fault (the per-client cap answers 429 only to HTTP clients).
   */
  private readonly localUploads: Semaphore;
  private closed = false;

  /** Use `openStore`. */
  constructor(root: string, lock: StoreLock | undefined, options: OpenStoreOptions) {
    this.root = root;
    this.lock = lock;
    this.readOnly = lock === undefined;
    this.tmpDir = join(root, "tmp");
    this.uploads = lock
      ? new UploadSessions(this.tmpDir, {
          maxBlobBytes: options.maxBlobBytes ?? 64 * 1024 ** 3,
          idleTimeoutMs: options.uploadIdleTimeoutMs ?? defaultUploadIdleTimeoutMs,
          maxSessions: options.maxUploads ?? 1024,
          maxSessionsPerClient: options.maxUploadsPerClient ?? 64,
        })
      : undefined;
    this.localUploads = new Semaphore(options.maxUploadsPerClient ?? 64);
  }

  /** Drops open uploads and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.uploads?.close();
    await this.lock?.release();
  }

  /** The library face of one repository (no HTTP hop). */
  repository(name: string): EmbeddedRepository {
    return new EmbeddedRepository(this, validateRepositoryName(name));
  }

  /**
   * Exports the repository's given tags (or all of them) with everything they reference to an OCI image
   * layout at `layoutDir` (created, or added to), each named by its tag. Works on a read-only store.
   */
  export(repository: string, tags: string[] | "all", layoutDir: string): Promise<ExportResult> {
    return exportRepository(this, validateRepositoryName(repository), tags, layoutDir);
  }

  // ---- paths ----

  blobFile(digest: Digest): string {
    return join(this.root, "blobs", digestPath(digest));
  }

  private repositoryDir(repository: string): string {
    return join(this.root, "repositories", validateRepositoryName(repository));
  }

  private blobLink(repository: string, digest: Digest): string {
    return join(this.repositoryDir(repository), "_blobs", digestPath(digest));
  }

  private manifestLink(repository: string, digest: Digest): string {
    return join(this.repositoryDir(repository), "_manifests", digestPath(digest));
  }

  private tagFile(repository: string, tag: string): string {
    return join(this.repositoryDir(repository), "_tags", validateTag(tag));
  }

  private referrersDir(repository: string, subject: Digest): string {
    return join(this.repositoryDir(repository), "_referrers", digestPath(subject));
  }

  private writable(): UploadSessions {
    if (!this.uploads || this.closed) throw readOnlyError();
    return this.uploads;
  }

  // ---- blobs ----

  /** Size of a blob linked into the repository, or undefined. */
  async statBlob(repository: string, digest: Digest): Promise<BlobInfo | undefined> {
    parseDigest(digest);
    if ((await fileSize(this.blobLink(repository, digest))) === undefined) return undefined;
    const size = await fileSize(this.blobFile(digest));
    return size === undefined ? undefined : { digest, size };
  }

  /** Where a linked blob's bytes are, for serving; throws BLOB_UNKNOWN. */
  async locateBlob(repository: string, digest: Digest): Promise<{ path: string; size: number }> {
    const info = await this.statBlob(repository, digest);
    if (!info) throw blobUnknown(repository, digest);
    return { path: this.blobFile(digest), size: info.size };
  }

  /** A blob's bytes, verified against its digest and size while read (a damaged file fails the stream). */
  async getBlob(repository: string, digest: Digest): Promise<BlobReader> {
    const { path, size } = await this.locateBlob(repository, digest);
    const verifier = new VerifyingStream(digest, size);
    // pipeline() closes the file when the reader stops early, and hands read errors to the reader.
    pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), verifier).catch(() => undefined);
    return { digest, size, stream: verifier };
  }

  /**
   * Stores a blob and links it into the repository. With `mountFrom`, a blob already in that repository is
   * linked without reading `content` (a Readable is then destroyed). A digest or size mismatch stores nothing.
   */
  async putBlob(repository: string, content: Readable | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
    const uploads = this.writable();
    validateRepositoryName(repository);
    if (options.digest !== undefined) parseDigest(options.digest);
    if (options.digest !== undefined && options.mountFrom !== undefined) {
      const mounted = await this.mountBlob(repository, options.mountFrom, options.digest);
      if (mounted && (options.size === undefined || options.size === mounted.size)) {
        if (content instanceof Readable) content.destroy();
        return mounted;
      }
    }
    if (!(content instanceof Readable)) return this.putBytes(repository, content, options);
    const release = await this.localUploads.acquire();
    try {
      const session = await uploads.start(repository);
      try {
        await uploads.append(session, content);
      } catch (err) {
        await uploads.discard(session);
        throw err;
      }
      const digest = options.digest ?? (await uploads.digestOf(session, "sha256"));
      return await this.commitUpload(repository, session, digest, options.size);
    } finally {
      release();
    }
  }

  /**
   * A blob whose bytes are in memory (a schematic, a config, a manifest's blobs): hashed here and written with
   * one atomic write, without an upload session's temp file, append and re-read — a schematic POST's path.
   */
  private async putBytes(repository: string, content: Uint8Array, options: PutBlobOptions): Promise<BlobInfo> {
    const algorithm = options.digest === undefined ? "sha256" : digestAlgorithm(options.digest);
    const digest = `${algorithm}:${createHash(algorithm).update(content).digest("hex")}` as Digest;
    checkUploaded({ digest, size: content.length }, options.digest ?? digest, options.size);
    const target = this.blobFile(digest);
    // Two writers of the same digest may both write: the rename replaces atomically with identical bytes.
    if ((await fileSize(target)) === undefined) await writeFileAtomic(this.tmpDir, target, content);
    await this.linkBlob(repository, digest);
    return { digest, size: content.length };
  }

  /** Links a blob of repository `from` into `repository`; undefined when `from` does not have it. */
  async mountBlob(repository: string, from: string, digest: Digest): Promise<BlobInfo | undefined> {
    this.writable();
    validateRepositoryName(repository);
    validateRepositoryName(from);
    const info = await this.statBlob(from, digest);
    if (!info) return undefined;
    await this.linkBlob(repository, digest);
    return info;
  }

  /** Removes the blob from the repository (its bytes stay: garbage collection is a separate concern). */
  async deleteBlob(repository: string, digest: Digest): Promise<void> {
    this.writable();
    parseDigest(digest);
    if (!(await removeFile(this.blobLink(repository, digest)))) throw blobUnknown(repository, digest);
  }

  private async linkBlob(repository: string, digest: Digest): Promise<void> {
    await writeFileAtomic(this.tmpDir, this.blobLink(repository, digest), digest);
  }

  /** Moves a verified temp file into blobs/ (or drops it when the identical blob is already there). */
  private async placeBlobFile(temp: string, digest: Digest): Promise<void> {
    const target = this.blobFile(digest);
    if ((await fileSize(target)) !== undefined) {
      await rm(temp, { force: true });
      return;
    }
    await fsyncFile(temp);
    await mkdir(dirname(target), { recursive: true });
    // Two writers of the same digest may both get here: rename replaces atomically with identical bytes.
    await rename(temp, target);
    await fsyncDirectory(dirname(target));
  }

  private async commitUpload(
    repository: string,
    session: UploadSession,
    digest: Digest,
    expectedSize?: number,
  ): Promise<BlobInfo> {
    const uploads = this.writable();
    session.busy = true;
    try {
      const actual = await uploads.digestOf(session, digestAlgorithm(digest));
      checkUploaded({ digest: actual, size: session.size }, digest, expectedSize);
      uploads.forget(session);
      await this.placeBlobFile(session.path, digest);
      await this.linkBlob(repository, digest);
      return { digest, size: session.size };
    } finally {
      // Whatever happened, the session is over and its temp file gone (distribution cancels on a bad digest).
      await uploads.discard(session);
    }
  }

  // ---- uploads (the HTTP face's chunked protocol) ----

  async startUpload(repository: string, client?: string): Promise<{ id: string; size: number }> {
    validateRepositoryName(repository);
    const session = await this.writable().start(repository, client);
    return { id: session.id, size: session.size };
  }

  /** Bytes received so far by an upload; throws BLOB_UPLOAD_UNKNOWN. */
  uploadStatus(repository: string, id: string): { id: string; size: number } {
    const session = this.writable().get(id, repository);
    return { id, size: session.size };
  }

  /** Appends a chunk; `start` (Content-Range) must be where the upload stands, else 416. */
  async appendUpload(
    repository: string,
    id: string,
    chunk: Readable,
    range?: { start?: number; length?: number },
  ): Promise<{ id: string; size: number }> {
    const uploads = this.writable();
    const session = uploads.get(id, repository);
    await uploads.append(session, chunk, range?.start, range?.length);
    return { id, size: session.size };
  }

  /** Completes an upload with its digest, after an optional last chunk. */
  async finishUpload(
    repository: string,
    id: string,
    digest: Digest,
    lastChunk?: Readable,
    range?: { start?: number; length?: number },
  ): Promise<BlobInfo> {
    const uploads = this.writable();
    parseDigest(digest);
    const session = uploads.get(id, repository);
    if (lastChunk) await uploads.append(session, lastChunk, range?.start, range?.length);
    return this.commitUpload(repository, session, digest);
  }

  async cancelUpload(repository: string, id: string): Promise<void> {
    const uploads = this.writable();
    await uploads.discard(uploads.get(id, repository));
  }

  // ---- manifests ----

  /**
   * Validates and stores a manifest, linking it into the repository; `reference` is a tag to point at it, or
   * the digest it must have. Every blob and child manifest it references must already be in the repository
   * (as distribution requires; a manifest's `subject` need not exist, per the OCI distribution spec).
   */
  async putManifest(
    repository: string,
    body: Uint8Array,
    options: { mediaType?: string; reference?: string } = {},
  ): Promise<PutManifestResult> {
    this.writable();
    validateRepositoryName(repository);
    const reference = options.reference === undefined ? undefined : parseManifestReference(options.reference);
    const { manifest, mediaType } = parseManifest(body, options.mediaType);
    const algorithm = reference && "digest" in reference ? digestAlgorithm(reference.digest) : "sha256";
    const digest = `${algorithm}:${createHash(algorithm).update(body).digest("hex")}` as Digest;
    if (reference && "digest" in reference && reference.digest !== digest)
      throw badRequest(`manifest has digest ${digest}, not ${reference.digest}`, "DIGEST_INVALID");
    await this.checkReferences(repository, manifest);

    if ((await fileSize(this.blobFile(digest))) === undefined)
      await writeFileAtomic(this.tmpDir, this.blobFile(digest), body);
    await writeFileAtomic(this.tmpDir, this.manifestLink(repository, digest), mediaType);
    if (manifest.subject) {
      const entry = referrerDescriptor(manifest, mediaType, digest, body.length);
      await writeFileAtomic(
        this.tmpDir,
        this.referrerEntry(repository, manifest.subject.digest, digest),
        JSON.stringify(entry),
      );
    }
    if (reference && "tag" in reference)
      await writeFileAtomic(this.tmpDir, this.tagFile(repository, reference.tag), digest);
    const result: PutManifestResult = { digest, mediaType, size: body.length };
    if (manifest.subject) result.subject = manifest.subject.digest;
    return result;
  }

  private referrerEntry(repository: string, subject: Digest, digest: Digest): string {
    return join(this.referrersDir(repository, subject), `${digestAlgorithm(digest)}-${digestHex(digest)}.json`);
  }

  private async checkReferences(repository: string, manifest: Manifest): Promise<void> {
    const index = isImageIndex(manifest);
    for (const descriptor of referencedDescriptors(manifest)) {
      // Foreign layers are fetched from their URLs, not from this registry (distribution skips them too).
      if (descriptor.urls && descriptor.urls.length > 0) continue;
      let size: number | undefined;
      if (index || isIndexMediaType(descriptor.mediaType))
        size = (await this.statManifest(repository, descriptor.digest))?.size;
      size ??= (await this.statBlob(repository, descriptor.digest))?.size;
      if (size === undefined)
        throw badRequest(
          `manifest references ${descriptor.digest}, which is not in repository ${repository}`,
          "MANIFEST_BLOB_UNKNOWN",
          { digest: descriptor.digest },
        );
      if (size !== descriptor.size)
        throw badRequest(
          `manifest says ${descriptor.digest} is ${descriptor.size} bytes, but it is ${size}`,
          "MANIFEST_INVALID",
          { digest: descriptor.digest },
        );
    }
  }

  /** Resolves a tag or digest to a manifest of the repository, or undefined. */
  async statManifest(repository: string, reference: string): Promise<ManifestInfo | undefined> {
    const ref = parseManifestReference(reference);
    let digest: Digest;
    if ("digest" in ref) digest = ref.digest;
    else {
      const tagged = (await readTextIfExists(this.tagFile(repository, ref.tag)))?.trim();
      if (tagged === undefined) return undefined;
      digest = parseDigest(tagged);
    }
    const mediaType = await readTextIfExists(this.manifestLink(repository, digest));
    if (mediaType === undefined) return undefined;
    const size = await fileSize(this.blobFile(digest));
    return size === undefined ? undefined : { digest, mediaType, size };
  }

  async getManifest(repository: string, reference: string): Promise<ManifestRecord> {
    const info = await this.statManifest(repository, reference);
    if (!info) throw manifestUnknown(repository, reference);
    const body = await readFile(this.blobFile(info.digest));
    return { digest: info.digest, mediaType: info.mediaType, body };
  }

  /** By digest: removes the manifest from the repository with its tags and referrer entry. By tag: the tag. */
  async deleteManifest(repository: string, reference: string): Promise<void> {
    this.writable();
    const ref = parseManifestReference(reference);
    if ("tag" in ref) {
      if (!(await removeFile(this.tagFile(repository, ref.tag)))) throw manifestUnknown(repository, reference);
      return;
    }
    const record = await this.getManifest(repository, ref.digest);
    for (const tag of await this.listTagsIfAny(repository)) {
      const target = (await readTextIfExists(this.tagFile(repository, tag)))?.trim();
      if (target === ref.digest) await removeFile(this.tagFile(repository, tag));
    }
    const { manifest } = parseManifest(record.body, record.mediaType);
    if (manifest.subject) await removeFile(this.referrerEntry(repository, manifest.subject.digest, ref.digest));
    await removeFile(this.manifestLink(repository, ref.digest));
  }

  // ---- listings ----

  private async repositoryExists(repository: string): Promise<boolean> {
    return (await fileSize(this.repositoryDir(repository))) !== undefined;
  }

  private async listTagsIfAny(repository: string): Promise<string[]> {
    const tags = await listDirectory(join(this.repositoryDir(repository), "_tags"));
    return tags.sort();
  }

  /** The repository's tags in lexical order; throws NAME_UNKNOWN for a repository never pushed to. */
  async listTags(repository: string): Promise<string[]> {
    if (!(await this.repositoryExists(repository)))
      throw notFound(`repository ${repository} is not known`, "NAME_UNKNOWN");
    return this.listTagsIfAny(repository);
  }

  /** Descriptors of the manifests whose subject is `subject`, optionally only those of one artifactType. */
  async referrers(repository: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    parseDigest(subject);
    const dir = this.referrersDir(repository, subject);
    const found: Descriptor[] = [];
    for (const name of (await listDirectory(dir)).sort()) {
      const text = await readTextIfExists(join(dir, name));
      if (text === undefined) continue;
      const descriptor = JSON.parse(text) as Descriptor;
      if (artifactType === undefined || descriptor.artifactType === artifactType) found.push(descriptor);
    }
    return found;
  }

  /** Every repository in the store, sorted. */
  async listRepositories(): Promise<string[]> {
    const found: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch((err) => {
        if (isNotFoundError(err)) return [];
        throw err;
      });
      if (prefix !== "" && entries.some((entry) => entry.name.startsWith("_"))) found.push(prefix);
      for (const entry of entries) {
        if (entry.isDirectory() && !entry.name.startsWith("_"))
          await walk(join(dir, entry.name), prefix === "" ? entry.name : `${prefix}/${entry.name}`);
      }
    };
    await walk(join(this.root, "repositories"), "");
    return found.sort();
  }
}

/**
 * The descriptor a referrers list shows for a manifest. Per the OCI distribution spec, an image manifest
 * without `artifactType` is listed with its config's media type.
 */
function referrerDescriptor(manifest: Manifest, mediaType: string, digest: Digest, size: number): Descriptor {
  const descriptor: Descriptor = { mediaType, digest, size };
  const artifactType = manifest.artifactType ?? (isImageIndex(manifest) ? undefined : manifest.config.mediaType);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  if (manifest.annotations !== undefined) descriptor.annotations = manifest.annotations;
  return descriptor;
}
