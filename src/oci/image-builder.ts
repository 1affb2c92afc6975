// Reproducible images (the test bed release, extension images), linux/amd64 or linux/arm64, and OCI indexes over one image per
// platform (what a multi-arch release image is, as upstream's are): gzip layers from the
// deterministic tar writer, a config whose every timestamp is the one fixed mtime, and an OCI manifest; so the
// same inputs give the same digests on every run and machine. Layers are cached on disk under a key made of
// what goes into them (paths, modes, link targets, the sha256 of every content), so a re-run only hashes its
// inputs and pushes what the registry lacks.

import { createHash, randomUUID } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Digest } from "./digest.ts";
import { sha256Digest } from "./digest.ts";
import { type BuiltLayer, buildLayer } from "./layer.ts";
import type { Descriptor, ImageIndex, ImageManifest } from "./manifest.ts";
import { MediaType } from "./mediatypes.ts";
import type { Repository } from "./repository.ts";
import type { TarEntry } from "./tar.ts";

/** The platforms images are built for. */
export type ImageArch = "amd64" | "arm64";

/** Bumped when the layer or config recipe changes, so cached layers from older code are not reused. */
const layerRecipeRevision = 1;
const gzipLevel = 6;

export interface ImageSpec {
  /** Repository path, e.g. "siderolabs/imager". */
  repository: string;
  tag: string;
  /** One entry list per layer, lowest first. */
  layers: TarEntry[][];
  /** The config's `config` section (Entrypoint, Env, Labels…). */
  runConfig?: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; Labels?: Record<string, string> };
  /** The config's architecture (its os is linux); default amd64. */
  arch?: ImageArch;
  /** The config history's `created_by`; default "boot-assets testbed release". */
  createdBy?: string;
}

export interface StoredLayer extends BuiltLayer {
  /** The compressed layer file in the cache. */
  file: string;
}

export interface BuiltImage {
  repository: string;
  tag: string;
  arch: ImageArch;
  digest: Digest;
  manifest: Buffer;
  config: Buffer;
  configDescriptor: Descriptor;
  layers: StoredLayer[];
}

/** The test bed store's gzip layers (docs/caches.md), keyed by content. One instance per run: it remembers file hashes it computed. */
export class LayerStore {
  readonly dir: string;
  readonly mtime: number;
  private readonly fileHashes = new Map<string, Promise<string>>();

  constructor(dir: string, mtime: number) {
    this.dir = dir;
    this.mtime = mtime;
  }

  private hashFile(path: string): Promise<string> {
    let hash = this.fileHashes.get(path);
    if (hash === undefined) {
      hash = (async () => {
        const h = createHash("sha256");
        await pipeline(createReadStream(path), h);
        return h.digest("hex");
      })();
      this.fileHashes.set(path, hash);
    }
    return hash;
  }

  /** The cache key: everything that decides the layer's bytes. */
  async keyOf(entries: readonly TarEntry[]): Promise<string> {
    const described: unknown[] = [];
    for (const entry of entries) {
      if (entry.type !== "file") described.push(entry);
      else if ("content" in entry)
        described.push({ ...entry, content: createHash("sha256").update(entry.content).digest("hex") });
      else described.push({ ...entry, sourcePath: undefined, sha256: await this.hashFile(entry.sourcePath) });
    }
    const sortKey = (e: unknown) => (e as { path: string }).path;
    described.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
    const recipe = { layerRecipeRevision, gzipLevel, mtime: this.mtime, entries: described };
    return createHash("sha256").update(JSON.stringify(recipe)).digest("hex");
  }

  /** The layer for these entries: from the cache, else built into it. */
  async layer(entries: readonly TarEntry[]): Promise<StoredLayer> {
    const key = await this.keyOf(entries);
    const file = join(this.dir, `${key}.tar.gz`);
    const metaFile = join(this.dir, `${key}.json`);
    if (existsSync(metaFile) && existsSync(file)) {
      const meta = JSON.parse(await readFile(metaFile, "utf8")) as BuiltLayer;
      if ((await stat(file)).size === meta.descriptor.size) return { ...meta, file };
    }
    await mkdir(this.dir, { recursive: true });
    const temp = join(this.dir, `.${key}.${randomUUID()}.part`);
    try {
      const built = await buildLayer(entries, temp, { compression: "gzip", level: gzipLevel, mtime: this.mtime });
      await rename(temp, file);
      await writeFile(metaFile, `${JSON.stringify(built)}\n`);
      return { ...built, file };
    } finally {
      await rm(temp, { force: true });
    }
  }
}

/** The image config: fixed key order, every timestamp the fixed mtime, linux/`arch` (default amd64). */
export function imageConfig(
  diffIds: readonly Digest[],
  mtime: number,
  runConfig: ImageSpec["runConfig"] = {},
  arch: ImageArch = "amd64",
  createdBy = "boot-assets testbed release",
): Buffer {
  const created = new Date(mtime * 1000).toISOString().replace(/\.000Z$/, "Z");
  return Buffer.from(
    JSON.stringify({
      created,
      architecture: arch,
      os: "linux",
      config: runConfig,
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created, created_by: createdBy })),
    }),
  );
}

/** What an image is besides its layers: its config and manifest, and the manifest's digest. */
export interface ImageMetadata {
  config: Buffer;
  configDescriptor: Descriptor;
  manifest: Buffer;
  digest: Digest;
}

/** The config (imageConfig) and OCI manifest over layers already built, lowest first. */
export function assembleImage(
  layers: readonly BuiltLayer[],
  mtime: number,
  options: Pick<ImageSpec, "runConfig" | "arch" | "createdBy"> = {},
): ImageMetadata {
  const config = imageConfig(
    layers.map((l) => l.diffId),
    mtime,
    options.runConfig,
    options.arch,
    options.createdBy,
  );
  const configDescriptor: Descriptor = {
    mediaType: MediaType.ociConfig,
    digest: sha256Digest(config),
    size: config.length,
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: layers.map((l) => l.descriptor),
  };
  const body = Buffer.from(JSON.stringify(manifest));
  return { config, configDescriptor, manifest: body, digest: sha256Digest(body) };
}

export async function buildImage(spec: ImageSpec, cache: LayerStore): Promise<BuiltImage> {
  const layers: StoredLayer[] = [];
  for (const entries of spec.layers) layers.push(await cache.layer(entries));
  const arch = spec.arch ?? "amd64";
  const metadata = assembleImage(layers, cache.mtime, { runConfig: spec.runConfig, arch, createdBy: spec.createdBy });
  return { repository: spec.repository, tag: spec.tag, arch, ...metadata, layers };
}

/** An OCI index over images of one repository and tag, one per platform, in the order given. */
export interface BuiltIndex {
  repository: string;
  tag: string;
  digest: Digest;
  body: Buffer;
  images: BuiltImage[];
}

export function buildIndex(images: readonly BuiltImage[]): BuiltIndex {
  const first = images[0];
  if (first === undefined) throw new RangeError("an index needs at least one image");
  const seen = new Set<string>();
  for (const image of images) {
    if (image.repository !== first.repository || image.tag !== first.tag)
      throw new RangeError(
        `${image.repository}:${image.tag} cannot join the index of ${first.repository}:${first.tag}`,
      );
    if (seen.has(image.arch))
      throw new RangeError(`${first.repository}:${first.tag} has two linux/${image.arch} images`);
    seen.add(image.arch);
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: images.map((image) => ({
      mediaType: MediaType.ociManifest,
      digest: image.digest,
      size: image.manifest.length,
      platform: { architecture: image.arch, os: "linux" },
    })),
  };
  const body = Buffer.from(JSON.stringify(index));
  return { repository: first.repository, tag: first.tag, digest: sha256Digest(body), body, images: [...images] };
}

/** Pushes every image by digest, then the index under its tag. Returns the index digest. */
export async function pushIndex(repository: Repository, index: BuiltIndex): Promise<Digest> {
  for (const image of index.images) await pushImage(repository, image, { byDigest: true });
  return await repository.putManifest(index.body, MediaType.ociIndex, index.tag);
}

/**
 * Pushes blobs the repository lacks, then the manifest under its tag (`byDigest`: untagged, as an index's
 * child). Returns the manifest digest.
 */
export async function pushImage(
  repository: Repository,
  image: BuiltImage,
  options: { byDigest?: boolean } = {},
): Promise<Digest> {
  for (const layer of image.layers) {
    const { digest, size } = layer.descriptor;
    if (await repository.statBlob(digest)) continue;
    await repository.putBlob(createReadStream(layer.file), { digest, size });
  }
  const { digest, size } = image.configDescriptor;
  if (!(await repository.statBlob(digest))) await repository.putBlob(image.config, { digest, size });
  return await repository.putManifest(image.manifest, MediaType.ociManifest, options.byDigest ? undefined : image.tag);
}
