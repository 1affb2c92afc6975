// Reading what the catalog commands need out of an image, streamed from the registry through a VerifiedImage
// (pinned by digest, signature checked when the verifier is configured to): a few small files by name, and
// whether the tree holds kernel modules. Nothing is extracted to disk, and reading stops as soon as the
// answer is known (see `finished` below): a module scan of a large driver image rarely reads it all.
//
// Names: `exactNames` are matched as upstream's image factory matches catalog files — the tar header name
// must be exactly `image-digests`, not `./image-digests` (siderolabs/image-factory
// internal/artifacts/versions.go, extractExtensionList). Extension files (`manifest.yaml`, `rootfs/…`) are
// matched after dropping a leading `./` or `/`, as Talos flattens the image before reading it.
// Whiteouts: a later layer's `.wh.<name>` hides a file seen in an earlier one.

import tar from "tar-stream";
import { badRequest, integrity, isAppError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import { decompressLayer } from "../oci/layer.ts";
import { type ImageManifest, isImageIndex } from "../oci/manifest.ts";
import type { VerifiedImage } from "../signing/verify.ts";

export interface ScanRequest {
  /** Files wanted by their exact tar name (catalog files). */
  exactNames?: readonly string[];
  /** Files wanted by their normalized path (extension files such as `manifest.yaml`). */
  paths?: readonly string[];
  /** Look for kernel modules under rootfs/lib/modules or rootfs/usr/lib/modules. */
  modules?: boolean;
  /** Size limit of one wanted file. Default 1 MiB. */
  maxFileBytes?: number;
  signal?: AbortSignal;
}

export interface ScanResult {
  /** The digest the image was read by (an index's, when it is one). */
  digest: Digest;
  /** The platform image read: linux/amd64 of an index (else its first), or the image itself. */
  platformDigest: Digest;
  files: Map<string, Buffer>;
  /** Wanted names found only with a `./` or `/` prefix (the factory would miss them under exactNames). */
  prefixedNames: string[];
  /** The first kernel module file seen (undefined when none, or when not asked). */
  module?: string;
}

export const defaultMaxScanFileBytes = 1024 * 1024;
const maxLayers = 128;
/** `rootfs/lib/modules/<release>/…/*.ko[.xz|.gz|.zst]` and the `usr/lib/modules` of Talos ≥ 1.10. */
const modulePattern = /^rootfs\/(?:usr\/)?lib\/modules\/[^/]+\/.+\.ko(?:\.(?:xz|gz|zst))?$/;

function normalize(name: string): string {
  return name.replace(/^(?:\.\/|\/)+/, "");
}

/** The image manifest the scan reads: the image, or linux/amd64 (else the first entry) of an index. */
async function platformImage(image: VerifiedImage): Promise<{ manifest: ImageManifest; digest: Digest }> {
  const top = await image.manifest();
  if (!isImageIndex(top.manifest)) return { manifest: top.manifest, digest: image.digest };
  const entries = top.manifest.manifests;
  const chosen = entries.find((d) => d.platform?.os === "linux" && d.platform.architecture === "amd64") ?? entries[0];
  if (chosen === undefined) throw badRequest(`${image.pinned}: empty image index`);
  const child = await image.childManifest(chosen);
  if (isImageIndex(child.manifest)) throw badRequest(`${image.pinned}: an index nested in an index`);
  return { manifest: child.manifest, digest: chosen.digest };
}

export async function scanImage(image: VerifiedImage, request: ScanRequest): Promise<ScanResult> {
  const exact = new Set(request.exactNames ?? []);
  const paths = new Set(request.paths ?? []);
  const maxFileBytes = request.maxFileBytes ?? defaultMaxScanFileBytes;
  const { manifest, digest: platformDigest } = await platformImage(image);
  if (manifest.layers.length > maxLayers) throw badRequest(`${image.pinned}: more than ${maxLayers} layers`);
  const files = new Map<string, Buffer>();
  const prefixed = new Set<string>();
  let module: string | undefined;
  // A later layer may replace or hide a file, so files are read through every layer, and only the last one
  // may be cut short once everything wanted has been seen. A modules-only scan stops at the first module
  // (a later layer hiding it is not looked for: a false warning at worst).
  const lastLayer = manifest.layers.length - 1;
  const wantsFiles = exact.size + paths.size > 0;
  const finished = (index: number) =>
    (!wantsFiles || index === lastLayer) &&
    [...exact, ...paths].every((name) => files.has(name)) &&
    (!request.modules || module !== undefined);

  for (const [index, layer] of manifest.layers.entries()) {
    if (index > 0 && finished(index - 1)) break;
    request.signal?.throwIfAborted();
    const blob = await image.blob(layer);
    const stream = decompressLayer(blob.stream, layer.mediaType);
    const extract = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      extract.on("entry", (header, body, next) => {
        const name = header.name;
        const path = normalize(name);
        const base = path.slice(path.lastIndexOf("/") + 1);
        if (base.startsWith(".wh.")) {
          const hidden = `${path.slice(0, path.length - base.length)}${base.slice(4)}`;
          files.delete(hidden);
          if (module === hidden) module = undefined;
        }
        const wantedExact = exact.has(name);
        const wantedPath = paths.has(path);
        if (!wantedExact && exact.has(path) && header.type === "file") prefixed.add(path);
        if (request.modules && module === undefined && header.type === "file" && modulePattern.test(path))
          module = `/${path.slice("rootfs/".length)}`;
        if ((wantedExact || wantedPath) && (header.type === "file" || header.type === undefined)) {
          if ((header.size ?? 0) > maxFileBytes) {
            reject(badRequest(`${image.pinned}: ${path} is ${header.size} bytes, over ${maxFileBytes}`));
            body.resume();
            return;
          }
          const chunks: Buffer[] = [];
          body.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
          body.on("end", () => {
            files.set(wantedExact ? name : path, Buffer.concat(chunks));
            next();
          });
          body.on("error", reject);
          return;
        }
        body.on("end", () => next());
        body.resume();
      });
      extract.on("finish", () => resolve());
      extract.on("error", (err: Error) => reject(err));
      stream.on("error", (err: Error) => reject(err));
    });
    stream.pipe(extract);
    const stopEarly = new Promise<void>((resolve) => {
      extract.on("entry", () =>
        setImmediate(() => {
          if (finished(index)) resolve();
        }),
      );
    });
    try {
      await Promise.race([done, stopEarly]);
    } catch (err) {
      stream.destroy();
      extract.destroy();
      if (err instanceof Error && !isAppError(err))
        throw integrity(`${image.pinned}: layer ${index} (${layer.digest}) is not a readable tar: ${err.message}`);
      throw err;
    }
    // Stopped early: nothing more is needed from this layer.
    stream.destroy();
    extract.destroy();
  }
  const result: ScanResult = {
    digest: image.digest,
    platformDigest,
    files,
    prefixedNames: [...prefixed].filter((name) => !files.has(name)),
  };
  if (module !== undefined) result.module = module;
  return result;
}
