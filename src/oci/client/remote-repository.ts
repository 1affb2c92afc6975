// One repository on a remote registry, spoken to over the OCI distribution API
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md). Implements the project's
// Repository interface, plus what only a remote has: resolve, chunked uploads, referrers with the
// `sha256-<hex>` fallback tag, and platform resolution through an index.

import { createHash } from "node:crypto";
import { pipeline, type Readable } from "node:stream";
import { AppError, integrity, notFound, upstream } from "../../errors.ts";
import { type Digest, digestAlgorithm, digestHex, isDigest, parseDigest, VerifyingStream } from "../digest.ts";
import {
  type Descriptor,
  type ImageIndex,
  isImageIndex,
  type Manifest,
  maxManifestBytes,
  parseManifest,
} from "../manifest.ts";
import { isIndexMediaType, isManifestMediaType, MediaType, manifestMediaTypes } from "../mediatypes.ts";
import { formatPlatform, type PlatformSpec, selectPlatform } from "../platform.ts";
import { validateTag } from "../reference.ts";
import type { BlobInfo, BlobReader, ManifestRecord, PutBlobOptions, Repository } from "../repository.ts";
import { repositoryScope } from "./auth.ts";
import type { RegistryClient, RegistryRequest } from "./client.ts";
import { errorFromResponse, type RequestContext } from "./errors.ts";
import { discardBody, type HttpResponse, header, headerValues, readBody } from "./transport.ts";

const defaultChunkSize = 16 * 1024 * 1024;
/** Bound on one tag-list page (a page of 1000 long tags is well under 1 MiB). */
const maxTagPageBytes = 8 * 1024 * 1024;
const defaultMaxTags = 100_000;

export interface ManifestInfo extends BlobInfo {
  mediaType: string;
}

export interface PutManifestResult {
  digest: Digest;
  /** The registry reported (OCI-Subject header) that it indexed the manifest's subject for referrers. */
  subjectIndexed: boolean;
}

function digestOf(algorithm: "sha256" | "sha512", data: Uint8Array): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as Digest;
}

/** The media type without parameters ("application/json; charset=utf-8" → "application/json"). */
function bareMediaType(value: string | undefined): string | undefined {
  const bare = value?.split(";")[0]?.trim().toLowerCase();
  return bare ? bare : undefined;
}

/** The referrers fallback tag for a subject (distribution-spec "Referrers Tag Schema"). */
export function referrersTagFor(subject: Digest): string {
  return `${digestAlgorithm(subject)}-${digestHex(subject)}`;
}

/** Parses `Link: <url>; rel="next"` into the next URL, relative to the current one. */
export function nextLink(values: readonly string[], current: URL): URL | undefined {
  for (const value of values) {
    for (const part of value.split(/,(?=\s*<)/)) {
      const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
      if (match && /(?:^|;)\s*rel="?next"?\s*(?:;|$)/i.test(match[2] as string))
        return new URL(match[1] as string, current);
    }
  }
  return undefined;
}

/** Reads exactly `size` bytes per yield (the last may be shorter) from a stream, for upload chunks. */
async function* rechunk(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const piece of source) {
    let chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
    while (held + chunk.length >= size) {
      const take = size - held;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts, size);
      chunk = chunk.subarray(take);
      parts = [];
      held = 0;
    }
    if (chunk.length > 0) {
      parts.push(chunk);
      held += chunk.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}

export class RemoteRepository implements Repository {
  readonly client: RegistryClient;
  readonly registry: string;
  readonly name: string;
  readonly displayName: string;

  constructor(client: RegistryClient, registry: string, name: string) {
    this.client = client;
    this.registry = registry;
    this.name = name;
    this.displayName = `${registry}/${name}`;
  }

  private ctx(operation: string, reference?: string): RequestContext {
    return { registry: this.registry, repository: this.name, reference, operation };
  }

  private send(
    req: Omit<RegistryRequest, "scopes" | "context" | "repository"> & { scopes?: readonly string[] },
    ctx: RequestContext,
  ): Promise<HttpResponse> {
    return this.client.request(this.registry, {
      ...req,
      scopes: req.scopes ?? [repositoryScope(this.name, "pull")],
      repository: this.name,
      context: ctx,
    });
  }

  private get pushScopes(): string[] {
    return [repositoryScope(this.name, "pull,push")];
  }

  private path(kind: "blobs" | "manifests" | "referrers", reference: string): string {
    return `/v2/${this.name}/${kind}/${reference}`;
  }

  // ---- blobs ---------------------------------------------------------------------------------------

  async statBlob(digest: Digest): Promise<BlobInfo | undefined> {
    parseDigest(digest);
    const ctx = this.ctx("check blob", digest);
    const res = await this.send({ method: "HEAD", path: this.path("blobs", digest), followRedirects: true }, ctx);
    await discardBody(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await errorFromResponse(res, ctx);
    const size = Number(header(res, "content-length"));
    if (!Number.isSafeInteger(size) || size < 0)
      throw upstream(`${this.displayName}: blob ${digest} has no valid size`);
    return { digest, size };
  }

  /**
   * Streams a blob. The stream is verified against the digest (and `size` when given, else the
   * Content-Length): it errors instead of ending if the bytes are wrong, so nothing may be trusted before
   * it ends cleanly. `size` is -1 when neither the caller nor the registry (Content-Length) said.
   */
  async getBlob(digest: Digest, options?: { size?: number }): Promise<BlobReader> {
    parseDigest(digest);
    const ctx = this.ctx("get blob", digest);
    const res = await this.send({ method: "GET", path: this.path("blobs", digest), followRedirects: true }, ctx);
    if (res.statusCode !== 200) throw await errorFromResponse(res, ctx);
    const length = header(res, "content-length");
    const announced = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    if (options?.size !== undefined && announced !== undefined && announced !== options.size) {
      res.body.destroy();
      throw integrity(
        `${this.displayName}: blob ${digest} is ${announced} bytes at the registry, expected ${options.size}`,
        "SIZE_INVALID",
      );
    }
    const size = options?.size ?? announced;
    const verifier = new VerifyingStream(digest, size);
    pipeline(res.body, verifier, (err) => {
      if (err && !verifier.destroyed) verifier.destroy(err);
    });
    verifier.on("error", (err) => {
      if (err instanceof AppError && !err.message.includes(this.displayName))
        err.message = `${this.displayName}: blob ${digest}: ${err.message}`;
    });
    return { digest, size: size ?? -1, stream: verifier };
  }

  /**
   * Uploads a blob unless the registry has it: existence check, then cross-repository mount when
   * `mountFrom` is given, then a monolithic POST+PUT for small content or chunked PATCHes for large.
   * The digest is computed while uploading when not given; a given digest or size that the content does
   * not match fails the upload (it is cancelled, nothing is committed).
   */
  async putBlob(content: Readable | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
    if (options.digest !== undefined) parseDigest(options.digest);
    const chunkSize = this.client.options.chunkSize ?? defaultChunkSize;
    const monolithicMax = this.client.options.monolithicMaxBytes ?? chunkSize;
    const source = content instanceof Uint8Array ? [content] : (content as AsyncIterable<Uint8Array>);
    const chunks = rechunk(source, Math.max(monolithicMax, 1) + 1)[Symbol.asyncIterator]();

    // Read the first monolithicMax+1 bytes: if the content ends within them it is "small".
    const first = await chunks.next();
    const head = first.done ? Buffer.alloc(0) : first.value;
    if (head.length <= monolithicMax) {
      return this.putSmallBlob(head, options);
    }
    // Large: re-assemble the stream of chunks from the head and the rest.
    async function* all(): AsyncGenerator<Buffer> {
      yield head;
      for (;;) {
        const next = await chunks.next();
        if (next.done) return;
        yield next.value;
      }
    }
    try {
      return await this.putLargeBlob(all(), chunkSize, options);
    } finally {
      if (!(content instanceof Uint8Array) && !content.destroyed) content.destroy();
    }
  }

  private async putSmallBlob(data: Buffer, options: PutBlobOptions): Promise<BlobInfo> {
    const digest = digestOf(options.digest ? digestAlgorithm(options.digest) : "sha256", data);
    const ctx = this.ctx("upload blob", digest);
    if (options.size !== undefined && data.length !== options.size)
      throw integrity(
        `${this.displayName}: blob content is ${data.length} bytes, expected ${options.size}`,
        "SIZE_INVALID",
      );
    if (options.digest !== undefined && digest !== options.digest)
      throw integrity(
        `${this.displayName}: blob content has digest ${digest}, expected ${options.digest}`,
        "DIGEST_INVALID",
      );
    const existing = await this.statBlob(digest);
    if (existing) return existing;
    const started = await this.startUpload(digest, data.length, options.mountFrom, ctx);
    if ("mounted" in started) return started.mounted;
    await this.completeUpload(started.location, digest, data, ctx);
    return { digest, size: data.length };
  }

  private async putLargeBlob(
    chunks: AsyncIterable<Buffer>,
    chunkSize: number,
    options: PutBlobOptions,
  ): Promise<BlobInfo> {
    const ctx = this.ctx("upload blob", options.digest);
    if (options.digest !== undefined) {
      const existing = await this.statBlob(options.digest);
      if (existing) return existing;
    }
    const started = await this.startUpload(options.digest, options.size, options.mountFrom, ctx);
    if ("mounted" in started) return started.mounted;
    let location = started.location;
    const hash = createHash(options.digest ? digestAlgorithm(options.digest) : "sha256");
    let offset = 0;
    try {
      for await (const chunk of rechunk(chunks, chunkSize)) {
        if (options.size !== undefined && offset + chunk.length > options.size)
          throw integrity(`${this.displayName}: blob content is larger than ${options.size} bytes`, "SIZE_INVALID");
        hash.update(chunk);
        location = await this.patchChunk(location, chunk, offset, ctx);
        offset += chunk.length;
      }
      const digest = `${options.digest ? digestAlgorithm(options.digest) : "sha256"}:${hash.digest("hex")}` as Digest;
      if (options.size !== undefined && offset !== options.size)
        throw integrity(
          `${this.displayName}: blob content is ${offset} bytes, expected ${options.size}`,
          "SIZE_INVALID",
        );
      if (options.digest !== undefined && digest !== options.digest)
        throw integrity(
          `${this.displayName}: blob content has digest ${digest}, expected ${options.digest}`,
          "DIGEST_INVALID",
        );
      await this.completeUpload(location, digest, undefined, { ...ctx, reference: digest });
      return { digest, size: offset };
    } catch (err) {
      await this.cancelUpload(location);
      throw err;
    }
  }

  /** POST to start an upload, or to mount from another repository (201 = mounted, 202 = upload instead). */
  private async startUpload(
    digest: Digest | undefined,
    size: number | undefined,
    mountFrom: string | undefined,
    ctx: RequestContext,
  ): Promise<{ location: URL } | { mounted: BlobInfo }> {
    const mounting = mountFrom !== undefined && digest !== undefined && mountFrom !== this.name;
    const query = mounting ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : "";
    const scopes = mounting ? [...this.pushScopes, repositoryScope(mountFrom, "pull")] : this.pushScopes;
    const res = await this.send(
      {
        method: "POST",
        path: `/v2/${this.name}/blobs/uploads/${query}`,
        headers: { "content-length": "0" },
        scopes,
        retry: true, // an abandoned upload session is harmless; the registry expires it
      },
      mounting ? { ...ctx, operation: `mount blob from ${mountFrom}` } : ctx,
    );
    if (res.statusCode === 201 && mounting) {
      await discardBody(res);
      return { mounted: (await this.statBlob(digest)) ?? { digest, size: size ?? -1 } };
    }
    if (res.statusCode !== 202) throw await errorFromResponse(res, ctx);
    await discardBody(res);
    return { location: await this.uploadLocation(res, ctx) };
  }

  private async uploadLocation(res: HttpResponse, ctx: RequestContext): Promise<URL> {
    const location = header(res, "location");
    if (!location) throw upstream(`${this.displayName}: ${ctx.operation}: the registry sent no upload Location`);
    // Location may be relative ("/v2/…/uploads/<uuid>?_state=…") or absolute.
    return new URL(location, await this.client.baseUrl(this.registry));
  }

  private async patchChunk(location: URL, chunk: Buffer, offset: number, ctx: RequestContext): Promise<URL> {
    const res = await this.send(
      {
        method: "PATCH",
        path: location,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(chunk.length),
          "content-range": `${offset}-${offset + chunk.length - 1}`,
        },
        body: chunk,
        scopes: this.pushScopes,
      },
      { ...ctx, operation: `upload blob chunk at ${offset}` },
    );
    if (res.statusCode !== 202) throw await errorFromResponse(res, ctx);
    await discardBody(res);
    return this.uploadLocation(res, ctx);
  }

  /** The closing PUT `?digest=`, with the content (monolithic) or empty (after PATCHes). */
  private async completeUpload(
    location: URL,
    digest: Digest,
    data: Buffer | undefined,
    ctx: RequestContext,
  ): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", digest);
    const res = await this.send(
      {
        method: "PUT",
        path: url,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(data?.length ?? 0),
        },
        body: data ?? Buffer.alloc(0),
        scopes: this.pushScopes,
      },
      ctx,
    );
    if (res.statusCode === 404 && (await this.statBlob(digest))) {
      // A retried PUT whose first attempt committed: the session is gone but the blob is there.
      await discardBody(res);
      return;
    }
    if (res.statusCode !== 201 && res.statusCode !== 204) throw await errorFromResponse(res, ctx);
    await discardBody(res);
    const echoed = header(res, "docker-content-digest");
    if (echoed !== undefined && echoed !== digest)
      throw integrity(`${this.displayName}: the registry stored blob ${echoed}, expected ${digest}`, "DIGEST_INVALID");
  }

  private async cancelUpload(location: URL): Promise<void> {
    try {
      const res = await this.send(
        { method: "DELETE", path: location, scopes: this.pushScopes, retry: false },
        this.ctx("cancel upload"),
      );
      await discardBody(res);
    } catch {
      // Best effort: the registry expires abandoned uploads anyway.
    }
  }

  // ---- manifests -----------------------------------------------------------------------------------

  private validateReference(reference: string): void {
    if (reference.includes(":")) parseDigest(reference);
    else validateTag(reference);
  }

  async statManifest(reference: string): Promise<ManifestInfo | undefined> {
    this.validateReference(reference);
    const ctx = this.ctx("check manifest", reference);
    const res = await this.send(
      { method: "HEAD", path: this.path("manifests", reference), headers: { accept: manifestMediaTypes.join(", ") } },
      ctx,
    );
    await discardBody(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await errorFromResponse(res, ctx);
    const echoed = header(res, "docker-content-digest");
    const mediaType = bareMediaType(header(res, "content-type"));
    const size = Number(header(res, "content-length"));
    const digest = isDigest(reference) ? reference : echoed !== undefined && isDigest(echoed) ? echoed : undefined;
    if (
      digest === undefined ||
      mediaType === undefined ||
      !isManifestMediaType(mediaType) ||
      !Number.isSafeInteger(size)
    ) {
      // Some registries leave these out of HEAD answers; the body tells all.
      const record = await this.getManifest(reference);
      return { digest: record.digest, mediaType: record.mediaType, size: record.body.length };
    }
    return { digest, mediaType, size };
  }

  /** Resolves a tag or digest to the manifest's digest, media type and size; NotFound when absent. */
  async resolve(reference: string): Promise<ManifestInfo> {
    const info = await this.statManifest(reference);
    if (!info) throw notFound(`manifest ${reference} not found in ${this.displayName}`, "MANIFEST_UNKNOWN");
    return info;
  }

  /**
   * Fetches a manifest's exact bytes (at most 4 MiB). By digest, the body must hash to it; by tag, it must
   * hash to the Docker-Content-Digest the registry announced.
   */
  async getManifest(reference: string): Promise<ManifestRecord> {
    this.validateReference(reference);
    const ctx = this.ctx("get manifest", reference);
    const res = await this.send(
      { method: "GET", path: this.path("manifests", reference), headers: { accept: manifestMediaTypes.join(", ") } },
      ctx,
    );
    if (res.statusCode !== 200) throw await errorFromResponse(res, ctx);
    const { data: body, truncated } = await readBody(res, maxManifestBytes + 1);
    if (truncated || body.length > maxManifestBytes)
      throw upstream(
        `${this.displayName}: manifest ${reference} is larger than ${maxManifestBytes} bytes`,
        undefined,
        "MANIFEST_INVALID",
      );
    const echoed = header(res, "docker-content-digest");
    const expected = isDigest(reference) ? reference : echoed !== undefined && isDigest(echoed) ? echoed : undefined;
    let digest = digestOf("sha256", body);
    if (expected !== undefined) {
      const actual = digestOf(digestAlgorithm(expected), body);
      if (actual !== expected)
        throw integrity(
          `${this.displayName}: manifest ${reference} has digest ${actual}, but ${isDigest(reference) ? "was requested by" : "the registry announced"} ${expected}`,
          "DIGEST_INVALID",
        );
      digest = expected;
    }
    let mediaType = bareMediaType(header(res, "content-type"));
    if (mediaType === undefined || !isManifestMediaType(mediaType)) {
      // Registries answer "application/json" for manifests pushed without a media type; the body knows.
      mediaType = parseManifest(body).mediaType;
    }
    return { digest, mediaType, body };
  }

  /** Fetches and parses a manifest or index. */
  async getParsedManifest(reference: string): Promise<{ record: ManifestRecord; manifest: Manifest }> {
    const record = await this.getManifest(reference);
    try {
      return { record, manifest: parseManifest(record.body, record.mediaType).manifest };
    } catch (err) {
      if (err instanceof AppError)
        err.message = `${this.displayName}: manifest ${reference} is invalid: ${err.message}`;
      throw err;
    }
  }

  /**
   * The image manifest for a platform: a manifest is returned as is; an index is searched with
   * selectPlatform and the chosen child fetched (by digest, so it is verified). NotFound naming the
   * platforms on offer when none matches.
   */
  async getPlatformManifest(
    reference: string,
    platform: PlatformSpec,
  ): Promise<{ record: ManifestRecord; manifest: Manifest; descriptor?: Descriptor }> {
    const top = await this.getParsedManifest(reference);
    if (!isImageIndex(top.manifest)) return top;
    const descriptor = selectPlatform(top.manifest, platform);
    if (!descriptor) {
      const offered = top.manifest.manifests.flatMap((d) => (d.platform ? [formatPlatform(d.platform)] : []));
      throw notFound(
        `${this.displayName}:${reference} has no manifest for platform ${formatPlatform(platform)} (offered: ${offered.join(", ") || "none"})`,
        "MANIFEST_UNKNOWN",
      );
    }
    const child = await this.getParsedManifest(descriptor.digest);
    if (child.record.body.length !== descriptor.size)
      throw integrity(
        `${this.displayName}: manifest ${descriptor.digest} is ${child.record.body.length} bytes, the index says ${descriptor.size}`,
        "SIZE_INVALID",
      );
    return { ...child, descriptor };
  }

  async putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest> {
    return (await this.putManifestDetailed(body, mediaType, tag)).digest;
  }

  /** Pushes a manifest by digest, or by tag when given; reports whether the registry indexed its subject. */
  async putManifestDetailed(body: Uint8Array, mediaType: string, tag?: string): Promise<PutManifestResult> {
    if (tag !== undefined) validateTag(tag);
    if (body.length > maxManifestBytes)
      throw new AppError("BadRequest", `manifest is ${body.length} bytes, over the ${maxManifestBytes} byte limit`, {
        code: "MANIFEST_INVALID",
      });
    const digest = digestOf("sha256", body);
    const reference = tag ?? digest;
    const ctx = this.ctx("push manifest", reference);
    const res = await this.send(
      {
        method: "PUT",
        path: this.path("manifests", reference),
        headers: { "content-type": mediaType, "content-length": String(body.length) },
        body: Buffer.from(body.buffer, body.byteOffset, body.length),
        scopes: this.pushScopes,
      },
      ctx,
    );
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 204)
      throw await errorFromResponse(res, ctx);
    await discardBody(res);
    const echoed = header(res, "docker-content-digest");
    if (echoed !== undefined && echoed !== digest)
      throw integrity(
        `${this.displayName}: the registry stored manifest ${echoed}, expected ${digest}`,
        "DIGEST_INVALID",
      );
    return { digest, subjectIndexed: header(res, "oci-subject") !== undefined };
  }

  async deleteManifest(reference: string): Promise<void> {
    this.validateReference(reference);
    const ctx = this.ctx("delete manifest", reference);
    const res = await this.send(
      {
        method: "DELETE",
        path: this.path("manifests", reference),
        scopes: [repositoryScope(this.name, "delete")],
      },
      ctx,
    );
    if (res.statusCode !== 202 && res.statusCode !== 200 && res.statusCode !== 204)
      throw await errorFromResponse(res, ctx);
    await discardBody(res);
  }

  // ---- tags ----------------------------------------------------------------------------------------

  /** Every tag, following `Link: <…>; rel="next"` pages; bounded by `maxTags`. */
  async listTags(options?: { pageSize?: number; maxTags?: number }): Promise<string[]> {
    const pageSize = options?.pageSize ?? this.client.options.tagPageSize ?? 1000;
    const maxTags = options?.maxTags ?? this.client.options.maxTags ?? defaultMaxTags;
    const ctx = this.ctx("list tags");
    const base = await this.client.baseUrl(this.registry);
    let url: URL | undefined = new URL(`/v2/${this.name}/tags/list?n=${pageSize}`, base);
    const tags: string[] = [];
    const seen = new Set<string>();
    while (url) {
      if (url.origin !== base.origin) throw upstream(`${this.displayName}: tag list pagination leads to ${url.origin}`);
      const res = await this.send({ method: "GET", path: url }, ctx);
      if (res.statusCode !== 200) throw await errorFromResponse(res, ctx);
      const { data, truncated } = await readBody(res, maxTagPageBytes);
      if (truncated) throw upstream(`${this.displayName}: a tag list page is larger than ${maxTagPageBytes} bytes`);
      let page: { tags?: unknown };
      try {
        page = JSON.parse(data.toString("utf8"));
      } catch {
        throw upstream(`${this.displayName}: the tag list is not JSON`);
      }
      const pageTags = Array.isArray(page.tags) ? page.tags.filter((t): t is string => typeof t === "string") : [];
      let added = 0;
      for (const tag of pageTags) {
        if (seen.has(tag)) continue;
        seen.add(tag);
        tags.push(tag);
        added++;
        if (tags.length > maxTags) throw upstream(`${this.displayName}: more than ${maxTags} tags`);
      }
      const next = nextLink(headerValues(res, "link"), url);
      // A next link on a page that added nothing would loop forever.
      url = next && added > 0 ? next : undefined;
    }
    return tags;
  }

  // ---- referrers -----------------------------------------------------------------------------------

  /**
   * Manifests whose subject is `subject`: from the referrers API, or when the registry has none (404 or
   * an answer that is not an index), from the `sha256-<hex>` fallback tag. Filtered by artifactType.
   */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    parseDigest(subject);
    const ctx = this.ctx("list referrers of", subject);
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "";
    const res = await this.send(
      { method: "GET", path: `${this.path("referrers", subject)}${query}`, headers: { accept: MediaType.ociIndex } },
      ctx,
    );
    let entries: Descriptor[] | undefined;
    if (res.statusCode === 200 && bareMediaType(header(res, "content-type")) === MediaType.ociIndex) {
      const { data, truncated } = await readBody(res, maxManifestBytes + 1);
      if (truncated) throw upstream(`${this.displayName}: the referrers index of ${subject} is too large`);
      entries = (parseManifest(data, MediaType.ociIndex).manifest as ImageIndex).manifests;
    } else if (res.statusCode === 200 || res.statusCode === 404 || res.statusCode === 400 || res.statusCode === 405) {
      // No referrers API here (distribution 2.x answers 404); use the fallback tag.
      await discardBody(res);
      entries = await this.fallbackReferrers(subject);
    } else {
      throw await errorFromResponse(res, ctx);
    }
    return artifactType ? entries.filter((d) => d.artifactType === artifactType) : entries;
  }

  private async fallbackReferrers(subject: Digest): Promise<Descriptor[]> {
    const index = await this.fallbackIndex(subject);
    return index?.manifests ?? [];
  }

  private async fallbackIndex(subject: Digest): Promise<ImageIndex | undefined> {
    let record: ManifestRecord;
    try {
      record = await this.getManifest(referrersTagFor(subject));
    } catch (err) {
      if (err instanceof AppError && err.kind === "NotFound") return undefined;
      throw err;
    }
    if (!isIndexMediaType(record.mediaType)) return undefined;
    return parseManifest(record.body, record.mediaType).manifest as ImageIndex;
  }

  /**
   * Pushes a manifest that has a `subject` (a signature, SBOM…) by digest. When the registry does not
   * index subjects itself (no OCI-Subject header), adds it to the fallback tag's index, as the
   * distribution spec asks clients to.
   */
  async pushReferrer(body: Uint8Array, mediaType: string): Promise<Descriptor> {
    const { manifest } = parseManifest(body, mediaType);
    if (!manifest.subject)
      throw new AppError("BadRequest", "a referrer manifest must have a subject", { code: "MANIFEST_INVALID" });
    const result = await this.putManifestDetailed(body, mediaType);
    const descriptor: Descriptor = { mediaType, digest: result.digest, size: body.length };
    const artifactType = manifest.artifactType ?? (!isImageIndex(manifest) ? manifest.config.mediaType : undefined);
    if (artifactType !== undefined) descriptor.artifactType = artifactType;
    if (manifest.annotations) descriptor.annotations = manifest.annotations;
    if (result.subjectIndexed) return descriptor;

    const subject = manifest.subject.digest;
    const existing = await this.fallbackIndex(subject);
    if (existing?.manifests.some((d) => d.digest === result.digest)) return descriptor;
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [...(existing?.manifests ?? []), descriptor],
    };
    await this.putManifest(Buffer.from(JSON.stringify(index)), MediaType.ociIndex, referrersTagFor(subject));
    return descriptor;
  }
}
