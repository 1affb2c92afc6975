// Reading a published test bed release back: manifests, flattened image trees, signature layers, and the
// list of images a release must contain, written from upstream's image layouts (siderolabs/talos pkg/imager), not from the code.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { flattenLayers } from "../../src/oci/flatten.ts";
import { decompressLayer } from "../../src/oci/layer.ts";
import type { ImageManifest } from "../../src/oci/manifest.ts";
import type { Repository } from "../../src/oci/repository.ts";

export type RepositoryFor = (name: string) => Repository;

export async function readManifest(repository: Repository, reference: string): Promise<ImageManifest> {
  const record = await repository.getManifest(reference);
  return JSON.parse(record.body.toString("utf8")) as ImageManifest;
}

/** Pulls `reference` from the repository and flattens its layers into `dir`. */
export async function flattenImage(repository: Repository, reference: string, dir: string): Promise<ImageManifest> {
  const manifest = await readManifest(repository, reference);
  await flattenLayers(
    manifest.layers.map(
      (layer) => async () => decompressLayer((await repository.getBlob(layer.digest)).stream, layer.mediaType),
    ),
    dir,
  );
  return manifest;
}

/** Number of signature layers in the image's legacy `.sig` manifest (0 when there is none). */
export async function signatureLayerCount(repository: Repository, digest: string): Promise<number> {
  const tag = `sha256-${digest.slice("sha256:".length)}.sig`;
  if (!(await repository.statManifest(tag))) return 0;
  return (await readManifest(repository, tag)).layers.length;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

export async function readText(dir: string, path: string): Promise<string> {
  return readFile(join(dir, path), "utf8");
}

/** The repository:tag pairs every release version must have, besides its extensions. */
export function expectedCoreImages(version: string, installerRepository: string): string[] {
  return [
    `siderolabs/imager:${version}`,
    `${installerRepository}:${version}`,
    `siderolabs/extensions:${version}`,
    `siderolabs/overlays:${version}`,
  ];
}
