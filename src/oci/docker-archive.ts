// A `docker save`-style tarball of one image, in the layout Docker ≥ 25 writes: an OCI image layout
// (`oci-layout`, `index.json`, `blobs/sha256/<hex>` for the config, layers and manifest) plus the legacy
// `manifest.json` ([{Config, RepoTags, Layers}]) whose paths point at those same blobs. One archive is
// thus readable by `docker load`, `skopeo … docker-archive:` (manifest.json), and `oci-archive:` /
// `ctr images import` (index.json). Layers are stored as they are given (gzip or plain tar): docker load
// and skopeo both detect compression, and the config's diff_ids describe the uncompressed tars.
// Deterministic: the tar is sorted, root-owned, with one fixed mtime (SOURCE_DATE_EPOCH), and layer
// files are streamed from disk one at a time.

import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { badRequest } from "../errors.ts";
import { type Digest, digestHex, sha256Digest } from "./digest.ts";
import type { Descriptor, ImageIndex, ImageManifest } from "./manifest.ts";
import { MediaType } from "./mediatypes.ts";
import { parseReference } from "./reference.ts";
import { createTar, type TarEntry, type TarOptions } from "./tar.ts";

export interface DockerArchiveLayer {
  /** The blob file on disk (trusted to match `digest`: it comes from a content store or buildLayer). */
  path: string;
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface DockerArchiveImage {
  /** The image config JSON, exactly as its digest covers it. */
  config: Uint8Array;
  layers: readonly DockerArchiveLayer[];
  /** Names to load the image as, e.g. `ghcr.io/siderolabs/installer:v1.10.3`; may be empty. */
  repoTags: readonly string[];
}

const blobPath = (digest: Digest) => `blobs/sha256/${digestHex(digest)}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8");

/** The fully qualified name and the tag of a RepoTags entry (containerd wants the qualified name). */
function qualify(repoTag: string): { name: string; tag: string } {
  const ref = parseReference(repoTag);
  if (ref.digest !== undefined || ref.tag === undefined)
    throw badRequest(`RepoTags entry "${repoTag}" must be name:tag, without a digest`, "TAG_INVALID");
  return { name: `${ref.registry}/${ref.repository}:${ref.tag}`, tag: ref.tag };
}

/** The archive's entries; exported for tests. */
export function dockerArchiveEntries(image: DockerArchiveImage): TarEntry[] {
  for (const layer of image.layers)
    if (!layer.digest.startsWith("sha256:"))
      throw badRequest(`layer ${layer.digest}: only sha256 blobs can be stored`, "DIGEST_INVALID");
  const config = Buffer.from(image.config);
  const configDigest = sha256Digest(config);
  const layerDescriptors: Descriptor[] = image.layers.map((l) => ({
    mediaType: l.mediaType,
    digest: l.digest,
    size: l.size,
  }));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
    layers: layerDescriptors,
  };
  const manifestBytes = json(manifest);
  const manifestDigest = sha256Digest(manifestBytes);
  const names = image.repoTags.map(qualify);
  const manifestDescriptor = { mediaType: MediaType.ociManifest, digest: manifestDigest, size: manifestBytes.length };
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests:
      names.length === 0
        ? [manifestDescriptor]
        : names.map(({ name, tag }) => ({
            ...manifestDescriptor,
            annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag },
          })),
  };
  const dockerManifest = [
    {
      Config: blobPath(configDigest),
      RepoTags: [...image.repoTags],
      Layers: image.layers.map((l) => blobPath(l.digest)),
    },
  ];

  const entries = new Map<string, TarEntry>();
  const add = (entry: TarEntry) => entries.set(entry.path, entry);
  add({ type: "file", path: blobPath(configDigest), content: config });
  add({ type: "file", path: blobPath(manifestDigest), content: manifestBytes });
  // A layer used twice is one blob.
  for (const l of image.layers) add({ type: "file", path: blobPath(l.digest), sourcePath: l.path, size: l.size });
  add({ type: "file", path: "index.json", content: json(index) });
  add({ type: "file", path: "manifest.json", content: json(dockerManifest) });
  add({ type: "file", path: "oci-layout", content: json({ imageLayoutVersion: "1.0.0" }) });
  return [...entries.values()];
}

/** The archive as a stream. */
export function createDockerArchive(image: DockerArchiveImage, options?: TarOptions): Readable {
  return createTar(dockerArchiveEntries(image), options);
}

/** Writes the archive to `outPath` (replaced); a partial file is removed on failure. */
export async function writeDockerArchive(
  image: DockerArchiveImage,
  outPath: string,
  options?: TarOptions,
): Promise<void> {
  try {
    await pipeline(createDockerArchive(image, options), createWriteStream(outPath));
  } catch (err) {
    await rm(outPath, { force: true });
    throw err;
  }
}
