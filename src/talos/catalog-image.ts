// Reading a few small files out of a catalog image (extensions or overlays), the way every source image is
// read: resolved to a digest once and its signature verified (by the caller), then pulled by that digest
// through the VerifiedImage; its layers decompressed and flattened into a temporary directory with tight
// limits (a catalog is a few hundred lines; anything larger is refused), the files read through
// `resolveInTree` so no link leads out, and the directory removed.

import { lstat, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { badRequest } from "../errors.ts";
import { type FlattenLimits, flattenLayers } from "../oci/flatten.ts";
import { decompressLayer } from "../oci/layer.ts";
import { isImageIndex } from "../oci/manifest.ts";
import { resolveInTree } from "../oci/tree-path.ts";
import type { VerifiedImage } from "../signing/verify.ts";

export interface CatalogImageLimits {
  /** Sum of the compressed layer sizes the manifest declares. Default 64 MiB. */
  maxCompressedBytes: number;
  maxLayers: number;
  /** Limits while flattening (uncompressed). */
  flatten: FlattenLimits;
  /** Size of one file read out of the tree. Default 4 MiB. */
  maxFileBytes: number;
}

export const defaultCatalogImageLimits: CatalogImageLimits = {
  maxCompressedBytes: 64 * 1024 * 1024,
  maxLayers: 64,
  flatten: { maxTotalBytes: 128 * 1024 * 1024, maxFileBytes: 16 * 1024 * 1024, maxEntries: 10_000, maxDepth: 32 },
  maxFileBytes: 4 * 1024 * 1024,
};

const amd64 = { os: "linux", architecture: "amd64" };
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Pulls a verified catalog image by its digest and returns the text of `files` (undefined for those
 * missing). Everything here is read from the image the signature covered.
 */
export async function readCatalogFiles(
  image: VerifiedImage,
  files: readonly string[],
  options: { workDir?: string; limits?: CatalogImageLimits } = {},
): Promise<Map<string, string | undefined>> {
  const limits = options.limits ?? defaultCatalogImageLimits;
  // Upstream reads catalogs with its amd64 puller; an index must offer linux/amd64.
  const top = await image.manifest();
  const { manifest } = isImageIndex(top.manifest) ? await image.platformManifest(amd64) : top;
  if (isImageIndex(manifest)) throw badRequest(`${image.pinned}: an index nested in an index is not a catalog image`);
  const layers = manifest.layers;
  if (layers.length > limits.maxLayers) throw badRequest(`${image.pinned}: more than ${limits.maxLayers} layers`);
  const compressed = layers.reduce((sum, layer) => sum + layer.size, 0);
  if (compressed > limits.maxCompressedBytes)
    throw badRequest(`${image.pinned}: layers total ${compressed} bytes, over ${limits.maxCompressedBytes}`);

  const dir = await mkdtemp(join(options.workDir ?? tmpdir(), "catalog-"));
  try {
    const tree = join(dir, "tree");
    await flattenLayers(
      layers.map((layer) => async () => decompressLayer((await image.blob(layer)).stream, layer.mediaType)),
      tree,
      limits.flatten,
    );
    const out = new Map<string, string | undefined>();
    for (const file of files) out.set(file, await readTreeFile(tree, file, limits.maxFileBytes, image.pinned));
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readTreeFile(tree: string, file: string, maxBytes: number, where: string): Promise<string | undefined> {
  const path = await resolveInTree(tree, file);
  const stat = await lstat(path).catch(() => undefined);
  if (stat === undefined) return undefined;
  if (!stat.isFile()) throw badRequest(`${where}: ${file} is not a regular file`);
  if (stat.size > maxBytes) throw badRequest(`${where}: ${file} is ${stat.size} bytes, over ${maxBytes}`);
  try {
    return strictUtf8.decode(await readFile(path));
  } catch {
    throw badRequest(`${where}: ${file} is not UTF-8 text`);
  }
}
