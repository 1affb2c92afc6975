// The factory's asset cache: one OCI image per asset in the cache repository (the embedded store by
// default, any registry with -cache-repository), in upstream's layout (image-factory
// internal/asset/cache/registry/registry.go):
//   tag        the 64-hex cache key
//   manifest   Docker schema 2 (application/vnd.docker.distribution.manifest.v2+json)
//   config     Docker image config, {"architecture":"","created":"0001-01-01T00:00:00Z",...} with the diff_id
//              of the bytes (decompressed first when they are gzip or zstd, as go-containerregistry does)
//   one layer  media type application/data: the asset's raw bytes
//   signature  cosign's `sha256-<hex>.sig` beside it, made with the cache signing key
// Reading checks the signature against the cache key before anything else: a missing or bad signature, a
// manifest of another shape or bytes that do not match the layer digest are a miss, and the caller
// rebuilds (and the put replaces the tag and adds a good signature). Nothing unverified is served.
//
// Serving reads a local file: with the embedded store, the store's blob file itself; with a remote
// registry, a copy in `<dir>/spool/<hex>` fetched once and checked against its digest. Bytes are hashed
// once per process (sha256 against the layer digest, sha512 for the `.sha512` file).
//
// Entries that are not assets (the intermediate cache's shared level, intermediate-remote.ts) use the same
// layout, checks and collection through `store` (push and sign, the file left in place) and `copyTo` (the
// verified bytes written to the caller's path, no spool copy).

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { isAppError, upstream } from "../../errors.ts";
import { type Digest, parseDigest } from "../../oci/digest.ts";
import { type ImageManifest, isImageIndex, parseManifest } from "../../oci/manifest.ts";
import { MediaType } from "../../oci/mediatypes.ts";
import type { Repository } from "../../oci/repository.ts";
import { signatureTag } from "../../signing/cosign-format.ts";
import { signImage } from "../../signing/sign.ts";
import type { KeySigner } from "../../signing/signer.ts";
import type { SignatureVerifier } from "../../signing/verify.ts";
import { zstdDecompress } from "../../tools/zstd.ts";
import { SingleFlight } from "../../util/concurrency.ts";
import { fileDigests } from "../../util/file-digest.ts";
import { isNotFoundError } from "../../util/fs.ts";
import type { AssetCache, CacheEntry, CacheEntrySummary } from "./cache.ts";
import { ScratchSpace, UsageRecord } from "./cache.ts";

/** The layer media type of a cache entry (upstream's). */
export const cacheLayerMediaType = "application/data";
const keyPattern = /^[0-9a-f]{64}$/;
const gzipMagic = Buffer.from([0x1f, 0x8b]);
const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** The embedded store's blob files, when the cache repository is in it. */
export interface LocalBlobs {
  /** The file holding a blob of the repository, or undefined. */
  locate(digest: Digest): Promise<string | undefined>;
  /** Drops a blob file whose bytes do not match its digest. */
  discardDamaged(digest: Digest): Promise<void>;
  /** Frees blobs nothing references any more; returns the bytes freed. */
  sweep(signal?: AbortSignal): Promise<number>;
}

export interface RegistryAssetCacheOptions {
  repository: Repository;
  /** The `docker-reference` claim of the signatures (the repository as users name it). */
  dockerReference: string;
  signer: KeySigner;
  /** A verifier that accepts the cache signing key only. */
  verifier: SignatureVerifier;
  /** `<dir>/tmp` (builds), `<dir>/spool` (remote copies), `<dir>/used` (last use). */
  dir: string;
  local?: LocalBlobs;
  log?: (line: string) => void;
}

/** The diff_id go-containerregistry records for a raw layer: the hash of the bytes, decompressed if compressed. */
export async function diffIdOf(path: string, sha256: string): Promise<string> {
  const head = Buffer.alloc(4);
  const handle = await open(path);
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  const decompress = head.subarray(0, 2).equals(gzipMagic)
    ? createGunzip()
    : head.equals(zstdMagic)
      ? zstdDecompress() // the CLI: disk images are concatenated frames (disk/frames.ts), Node's zstd reads one
      : undefined;
  if (decompress === undefined) return sha256;
  const hash = createHash("sha256");
  try {
    await pipeline(createReadStream(path), decompress, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) hash.update(chunk);
    });
  } catch {
    return sha256; // not really compressed: the bytes themselves
  }
  return `sha256:${hash.digest("hex")}`;
}

function configFor(diffId: string): Buffer {
  const zero = "0001-01-01T00:00:00Z";
  return Buffer.from(
    JSON.stringify({
      architecture: "",
      created: zero,
      history: [{ created: zero }],
      os: "",
      rootfs: { type: "layers", diff_ids: [diffId] },
      config: {},
    }),
  );
}

function outage(repository: Repository, what: string, err: unknown): Error {
  if (isAppError(err) && err.kind !== "Upstream" && err.kind !== "Internal") return err;
  return upstream(
    `asset cache ${repository.displayName}: ${what}: ${err instanceof Error ? err.message : String(err)}`,
    err,
    "UNAVAILABLE",
  );
}

function tagDeleteRefused(err: unknown): boolean {
  if (!isAppError(err)) return false;
  const status = (err.detail as { status?: number } | undefined)?.status;
  return (status === 400 && err.code === "DIGEST_INVALID") || status === 405;
}

export class RegistryAssetCache implements AssetCache {
  readonly description: string;
  readonly #o: RegistryAssetCacheOptions;
  readonly #scratch: ScratchSpace;
  readonly #usage: UsageRecord;
  readonly #spool: string;
  /** path → digests checked in this process. */
  readonly #checked = new Map<string, { sha256: string; sha512: string; size: number }>();
  readonly #fetches = new SingleFlight<string, string | undefined>();

  constructor(options: RegistryAssetCacheOptions) {
    this.#o = options;
    this.description = options.repository.displayName;
    this.#scratch = new ScratchSpace(join(options.dir, "tmp"));
    this.#usage = new UsageRecord(join(options.dir, "used"));
    this.#spool = join(options.dir, "spool");
  }

  #log(line: string): void {
    this.#o.log?.(line);
  }

  /** Clears what killed processes left in the scratch space (at start). */
  clearAbandoned(): Promise<number> {
    return this.#scratch.clearAbandoned();
  }

  scratch(): Promise<string> {
    return this.#scratch.create();
  }

  /** The entry's manifest digest, or undefined when the tag is missing (404, or 403 as upstream treats it). */
  async #resolve(key: string): Promise<Digest | undefined> {
    const { repository } = this.#o;
    try {
      return (await repository.statManifest(key))?.digest;
    } catch (err) {
      if (isAppError(err, "NotFound") || isAppError(err, "Unauthorized")) return undefined;
      throw outage(repository, `looking up ${key}`, err);
    }
  }

  /** The entry's single layer, if its signature verifies and its shape is right. */
  async #layerOf(key: string, digest: Digest): Promise<{ digest: Digest; size: number } | undefined> {
    const { repository, verifier } = this.#o;
    try {
      await verifier.verifySignaturesWithRejects(repository, digest);
    } catch (err) {
      if (!isAppError(err, "Integrity") && !isAppError(err, "NotFound"))
        throw outage(repository, `verifying ${key}`, err);
      this.#log(
        `cache entry ${key} (${digest}): signature does not verify with the cache signing key, rebuilding: ${(err as Error).message}`,
      );
      return undefined;
    }
    let manifest: ImageManifest;
    try {
      const record = await repository.getManifest(digest);
      const parsed = parseManifest(record.body, record.mediaType).manifest;
      if (isImageIndex(parsed)) throw new Error("an index, not an image");
      manifest = parsed;
    } catch (err) {
      if (isAppError(err, "Upstream") || isAppError(err, "Internal")) throw outage(repository, `reading ${key}`, err);
      this.#log(`cache entry ${key}: unreadable manifest, rebuilding: ${(err as Error).message}`);
      return undefined;
    }
    const [layer, ...more] = manifest.layers;
    if (layer === undefined || more.length > 0 || layer.mediaType !== cacheLayerMediaType) {
      this.#log(
        `cache entry ${key}: expected one ${cacheLayerMediaType} layer, found ${manifest.layers.length}; rebuilding`,
      );
      return undefined;
    }
    return { digest: parseDigest(layer.digest), size: layer.size };
  }

  /** Checks a local file against the layer digest (once per process per file); undefined when it does not match. */
  async #check(path: string, layer: { digest: Digest; size: number }, signal?: AbortSignal) {
    const known = this.#checked.get(path);
    if (known?.sha256 === layer.digest) return known;
    let info: { size: number };
    try {
      info = await stat(path);
    } catch (err) {
      if (isNotFoundError(err)) return undefined;
      throw err;
    }
    if (info.size !== layer.size) return undefined;
    const sums = await fileDigests(path, ["sha256", "sha512"], signal);
    if (sums.digests.sha256 !== layer.digest) return undefined;
    const checked = { sha256: layer.digest, sha512: sums.digests.sha512 as string, size: sums.size };
    this.#checked.set(path, checked);
    return checked;
  }

  /** A local copy of a remote blob in the spool, fetched once however many ask at once. */
  #fetch(layer: { digest: Digest; size: number }, signal?: AbortSignal): Promise<string | undefined> {
    return this.#fetches.run(layer.digest, async () => {
      const path = join(this.#spool, layer.digest.slice("sha256:".length));
      if ((await this.#check(path, layer, signal)) !== undefined) return path;
      const scratch = await this.#scratch.create();
      try {
        const temp = join(scratch, "blob");
        const reader = await this.#o.repository.getBlob(layer.digest);
        await pipeline(reader.stream, createWriteStream(temp), signal ? { signal } : {});
        if ((await this.#check(temp, layer, signal)) === undefined) return undefined;
        await mkdir(this.#spool, { recursive: true });
        await rename(temp, path);
        const checked = this.#checked.get(temp);
        this.#checked.delete(temp);
        if (checked) this.#checked.set(path, checked);
        return path;
      } catch (err) {
        if (signal?.aborted) throw err;
        throw outage(this.#o.repository, `fetching ${layer.digest}`, err);
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    });
  }

  async get(key: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    const manifestDigest = await this.#resolve(key);
    if (manifestDigest === undefined) return undefined;
    const layer = await this.#layerOf(key, manifestDigest);
    if (layer === undefined) return undefined;
    const { local } = this.#o;
    const path = local ? await local.locate(layer.digest) : await this.#fetch(layer, signal);
    const checked = path === undefined ? undefined : await this.#check(path, layer, signal);
    if (path === undefined || checked === undefined) {
      this.#log(`cache entry ${key}: its bytes do not match ${layer.digest}, rebuilding`);
      if (local) await local.discardDamaged(layer.digest);
      else if (path !== undefined) await rm(path, { force: true });
      return undefined;
    }
    await this.#usage.touch(key);
    return { path, size: checked.size, sha256: checked.sha256, sha512: checked.sha512 };
  }

  /** Pushes the file as the entry `key` and signs it; its digests and the manifest digest. */
  async #push(key: string, file: string, signal?: AbortSignal) {
    const { repository } = this.#o;
    const sums = await fileDigests(file, ["sha256", "sha512"], signal);
    const layerDigest = sums.digests.sha256 as Digest;
    const config = configFor(await diffIdOf(file, layerDigest));
    let manifestDigest: Digest;
    try {
      await repository.putBlob(createReadStream(file, { highWaterMark: 1024 * 1024 }), {
        digest: layerDigest,
        size: sums.size,
      });
      const configInfo = await repository.putBlob(config);
      const manifest = {
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { mediaType: MediaType.dockerConfig, size: configInfo.size, digest: configInfo.digest },
        layers: [{ mediaType: cacheLayerMediaType, size: sums.size, digest: layerDigest }],
      };
      // Tag, then sign (upstream's order): an entry caught between the two is unsigned, so a miss.
      manifestDigest = await repository.putManifest(
        Buffer.from(JSON.stringify(manifest)),
        MediaType.dockerManifest,
        key,
      );
      await signImage(repository, manifestDigest, this.#o.signer, { dockerReference: this.#o.dockerReference });
    } catch (err) {
      throw outage(repository, `storing ${key}`, err);
    }
    return { sums, layerDigest, manifestDigest };
  }

  /**
   * An entry that is not an asset (an intermediate result, intermediate-remote.ts): pushed and signed like one,
   * the file left where it is and no local copy kept.
   */
  async store(key: string, file: string, signal?: AbortSignal): Promise<void> {
    const { manifestDigest } = await this.#push(key, file, signal);
    await this.#usage.touch(key);
    this.#log(`cached ${key} as ${this.#o.repository.displayName}@${manifestDigest}`);
  }

  /**
   * The verified bytes of the entry `key` written to `dest` (a new path), with no local copy kept beside them;
   * false on a miss (missing, unsigned, another shape, bytes not matching the layer digest).
   */
  async copyTo(key: string, dest: string, signal?: AbortSignal): Promise<boolean> {
    const manifestDigest = await this.#resolve(key);
    if (manifestDigest === undefined) return false;
    const layer = await this.#layerOf(key, manifestDigest);
    if (layer === undefined) return false;
    const { local, repository } = this.#o;
    if (local) {
      const path = await local.locate(layer.digest);
      if (path !== undefined && (await this.#check(path, layer, signal)) !== undefined) {
        await copyFile(path, dest);
        await this.#usage.touch(key);
        return true;
      }
      if (path !== undefined) await local.discardDamaged(layer.digest);
    } else {
      try {
        // Verified while read (digest, announced length): an error instead of an end on other bytes.
        const reader = await repository.getBlob(layer.digest);
        await pipeline(reader.stream, createWriteStream(dest), signal ? { signal } : {});
      } catch (err) {
        await rm(dest, { force: true });
        if (signal?.aborted) throw err;
        if (!isAppError(err, "Integrity")) throw outage(repository, `fetching ${layer.digest}`, err);
        this.#log(`cache entry ${key}: its bytes do not match ${layer.digest}, rebuilding: ${(err as Error).message}`);
        return false;
      }
      const info = await stat(dest);
      const sums = info.size === layer.size ? await fileDigests(dest, ["sha256"], signal) : undefined;
      if (sums?.digests.sha256 === layer.digest) {
        await this.#usage.touch(key);
        return true;
      }
      await rm(dest, { force: true });
    }
    this.#log(`cache entry ${key}: its bytes do not match ${layer.digest}, rebuilding`);
    return false;
  }

  async put(key: string, file: string, signal?: AbortSignal): Promise<CacheEntry> {
    const { repository, local } = this.#o;
    const { sums, layerDigest, manifestDigest } = await this.#push(key, file, signal);
    signal?.throwIfAborted();
    let path: string | undefined;
    if (local) path = await local.locate(layerDigest);
    else {
      path = join(this.#spool, layerDigest.slice("sha256:".length));
      await mkdir(this.#spool, { recursive: true });
      await rename(file, path);
    }
    if (path === undefined)
      throw outage(repository, `storing ${key}`, new Error(`${layerDigest} is not in the store after the push`));
    const checked = { sha256: layerDigest, sha512: sums.digests.sha512 as string, size: sums.size };
    this.#checked.set(path, checked);
    await this.#usage.touch(key);
    this.#log(`cached ${key} as ${repository.displayName}@${manifestDigest}`);
    return { path, ...checked };
  }

  /** Every entry's key, manifest digest and layers, read once per tag. */
  async #entries(): Promise<{ key: string; digest: Digest; layers: { digest: string; size: number }[] }[]> {
    const { repository } = this.#o;
    let tags: string[];
    try {
      tags = await repository.listTags();
    } catch (err) {
      if (isAppError(err, "NotFound")) return [];
      throw outage(repository, "listing entries", err);
    }
    const found: { key: string; digest: Digest; layers: { digest: string; size: number }[] }[] = [];
    for (const key of tags.filter((tag) => keyPattern.test(tag))) {
      try {
        const record = await repository.getManifest(key);
        const manifest = parseManifest(record.body, record.mediaType).manifest;
        found.push({ key, digest: record.digest, layers: isImageIndex(manifest) ? [] : manifest.layers });
      } catch (err) {
        if (!isAppError(err, "NotFound")) throw outage(repository, `reading ${key}`, err);
      }
    }
    return found;
  }

  async list(): Promise<CacheEntrySummary[]> {
    const found: CacheEntrySummary[] = [];
    for (const entry of await this.#entries()) {
      const size = entry.layers.reduce((sum, layer) => sum + layer.size, 0);
      found.push({ key: entry.key, size, lastUsedMs: await this.#usage.lastUsed(entry.key) });
    }
    return found;
  }

  /**
   * Removes the entries' tags; a manifest and its signature go too once no remaining key's tag points at it
   * (two requests that built identical bytes share one). The tags are read once for all the keys.
   */
  async remove(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const { repository } = this.#o;
    const removing = new Set(keys);
    try {
      const keysByDigest = new Map<Digest, string[]>();
      for (const entry of await this.#entries())
        keysByDigest.set(entry.digest, [...(keysByDigest.get(entry.digest) ?? []), entry.key]);
      for (const key of keys) {
        try {
          await repository.deleteManifest(key);
        } catch (err) {
          // CNCF distribution deletes manifests by digest only (400 DIGEST_INVALID, or 405 UNSUPPORTED for a
          // tag): the tag goes with its manifest below, once no other kept key shares it.
          if (!isAppError(err, "NotFound") && !tagDeleteRefused(err)) throw err;
        }
        await this.#usage.forget(key);
      }
      for (const [digest, tagged] of keysByDigest) {
        if (!tagged.every((key) => removing.has(key))) continue;
        const signature = await repository.statManifest(signatureTag(digest));
        if (signature !== undefined) await repository.deleteManifest(signature.digest);
        await repository.deleteManifest(digest);
      }
    } catch (err) {
      if (isAppError(err, "NotFound")) return;
      throw outage(repository, `removing ${keys.length} entries`, err);
    }
  }

  /** Frees unreferenced bytes: the store's sweep, or spool copies no entry's layer names. */
  async sweep(signal?: AbortSignal): Promise<number> {
    if (this.#o.local) return this.#o.local.sweep(signal);
    const wanted = new Set<string>();
    for (const entry of await this.#entries())
      for (const layer of entry.layers) wanted.add(layer.digest.slice("sha256:".length));
    let freed = 0;
    let names: string[];
    try {
      names = await readdir(this.#spool);
    } catch (err) {
      if (isNotFoundError(err)) return 0;
      throw err;
    }
    for (const name of names) {
      if (wanted.has(name)) continue;
      const path = join(this.#spool, name);
      freed += (await stat(path)).size;
      await rm(path, { force: true });
      this.#checked.delete(path);
    }
    return freed;
  }
}
