// Loading a `docker save`-style tarball (one image) into a repository, as go-containerregistry's
// `tarball.Image` reads one: the legacy `manifest.json` ([{Config, RepoTags, Layers}]) names the config and
// the layers by path; the image becomes a Docker schema-2 manifest (Docker config media type, gzip layers as
// `application/vnd.docker.image.rootfs.diff.tar.gzip`, plain tar layers as `…diff.tar`). Upstream Image
// Factory serves its installers this way (internal/frontend/http/registry.go `buildInstallImage`).
//
// The archive is read twice from disk: once for `manifest.json` (small, bounded), once streaming each blob
// it names into the repository. A blob stored under `blobs/sha256/<hex>` that the repository already holds
// is not sent again. The manifest is pushed by digest only (no tag).

import { createReadStream } from "node:fs";
import { Transform, type TransformCallback, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { AppError, integrity } from "../errors.ts";
import type { Digest } from "./digest.ts";
import { MediaType } from "./mediatypes.ts";
import type { Repository } from "./repository.ts";

/** `manifest.json` and the config are small; anything larger is not a docker-save archive we made. */
const maxSmallFileBytes = 1024 * 1024;
const maxLayers = 128;

export const dockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar";

export interface LoadedImage {
  /** The pushed manifest's descriptor. */
  mediaType: string;
  digest: Digest;
  size: number;
  /** The image config's architecture and os (for the index entry). */
  architecture: string | undefined;
  os: string | undefined;
}

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function normalize(path: string): string {
  return path.replace(/^\.\//, "");
}

/** Calls `visit` for every regular file of the archive, in order; the entry is drained afterwards. */
async function eachFile(
  path: string,
  visit: (name: string, size: number, body: NodeJS.ReadableStream) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const extract = tar.extract();
  const feeding = pipeline(createReadStream(path), extract as unknown as NodeJS.WritableStream, { signal }).catch(
    (err: unknown) => extract.destroy(err as Error),
  );
  try {
    for await (const entry of extract) {
      try {
        if (entry.header.type === "file")
          await visit(normalize(entry.header.name), entry.header.size ?? 0, entry as unknown as NodeJS.ReadableStream);
      } finally {
        entry.resume();
      }
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw integrity(`${path}: not a readable docker-save archive: ${(err as Error).message}`);
  } finally {
    await feeding;
  }
}

async function readSmall(name: string, size: number, body: NodeJS.ReadableStream): Promise<Buffer> {
  if (size > maxSmallFileBytes) throw integrity(`${name} in the archive is larger than ${maxSmallFileBytes} bytes`);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function parseArchiveManifest(bytes: Buffer): ArchiveManifestEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw integrity("manifest.json of the archive is not JSON");
  }
  if (!Array.isArray(parsed) || parsed.length !== 1)
    throw integrity("manifest.json of the archive must describe exactly one image");
  const entry = parsed[0] as Partial<ArchiveManifestEntry>;
  if (
    typeof entry.Config !== "string" ||
    !Array.isArray(entry.Layers) ||
    entry.Layers.length > maxLayers ||
    entry.Layers.some((l) => typeof l !== "string")
  )
    throw integrity("manifest.json of the archive does not name a config and its layers");
  return { Config: normalize(entry.Config), Layers: entry.Layers.map(normalize) };
}

/** Passes bytes through, keeping the first few for a look at the compression. */
class Peek extends Transform {
  head = Buffer.alloc(0);
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.head.length < 4) this.head = Buffer.concat([this.head, chunk.subarray(0, 4 - this.head.length)]);
    callback(null, chunk);
  }
}

function layerMediaType(head: Buffer, name: string): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return MediaType.dockerLayerGzip;
  if (head.readUInt32LE(0) === 0xfd2fb528)
    throw integrity(`layer ${name}: zstd layers cannot be described by a Docker schema-2 manifest`);
  return dockerLayerTar;
}

const blobPathPattern = /^blobs\/sha256\/([0-9a-f]{64})$/;

/** Pushes the archive's config, layers and a Docker schema-2 manifest (by digest) into `repository`. */
export async function loadDockerArchive(
  path: string,
  repository: Repository,
  options: { signal?: AbortSignal } = {},
): Promise<LoadedImage> {
  let archiveManifest: ArchiveManifestEntry | undefined;
  await eachFile(
    path,
    async (name, size, body) => {
      if (name === "manifest.json") archiveManifest = parseArchiveManifest(await readSmall(name, size, body));
    },
    options.signal,
  );
  if (archiveManifest === undefined) throw integrity(`${path}: no manifest.json (not a docker-save archive)`);
  const wanted = archiveManifest;

  let config: Buffer | undefined;
  const layers = new Map<string, { mediaType: string; digest: Digest; size: number }>();
  await eachFile(
    path,
    async (name, size, body) => {
      if (name === wanted.Config) {
        config = await readSmall(name, size, body);
        return;
      }
      if (!wanted.Layers.includes(name) || layers.has(name)) return;
      const peek = new Peek();
      const known = blobPathPattern.exec(name);
      if (known !== null) {
        const digest = `sha256:${known[1]}` as Digest;
        if ((await repository.statBlob(digest))?.size === size) {
          // Already there: only its first bytes matter (the media type); the rest is skipped over, not
          // abandoned (an entry left half-read would stall the archive reader).
          await pipeline(body, peek, new Writable({ write: (_chunk, _encoding, done) => done() }));
          layers.set(name, { mediaType: layerMediaType(peek.head, name), digest, size });
          return;
        }
      }
      const [, info] = await Promise.all([
        pipeline(body, peek),
        repository.putBlob(peek, {
          size,
          ...(known !== null ? { digest: `sha256:${known[1]}` as Digest } : {}),
        }),
      ]);
      layers.set(name, { mediaType: layerMediaType(peek.head, name), digest: info.digest, size: info.size });
    },
    options.signal,
  );
  if (config === undefined) throw integrity(`${path}: the config ${wanted.Config} is missing`);
  const missing = wanted.Layers.find((l) => !layers.has(l));
  if (missing !== undefined) throw integrity(`${path}: the layer ${missing} is missing`);

  const configInfo = await repository.putBlob(config);
  // Field order as go-containerregistry writes a manifest.
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, size: configInfo.size, digest: configInfo.digest },
    layers: wanted.Layers.map((name) => {
      const l = layers.get(name) as { mediaType: string; digest: Digest; size: number };
      return { mediaType: l.mediaType, size: l.size, digest: l.digest };
    }),
  };
  const body = Buffer.from(JSON.stringify(manifest));
  const digest = await repository.putManifest(body, MediaType.dockerManifest);
  let parsedConfig: { architecture?: unknown; os?: unknown } = {};
  try {
    parsedConfig = JSON.parse(config.toString("utf8")) as typeof parsedConfig;
  } catch {
    throw integrity(`${path}: the image config is not JSON`);
  }
  return {
    mediaType: MediaType.dockerManifest,
    digest,
    size: body.length,
    architecture: typeof parsedConfig.architecture === "string" ? parsedConfig.architecture : undefined,
    os: typeof parsedConfig.os === "string" ? parsedConfig.os : undefined,
  };
}
