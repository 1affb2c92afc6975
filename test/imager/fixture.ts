// Local imager inputs from the test bed release: the release is published into an embedded store in
// process (cached layers make re-runs quick), then the imager image, the installer base image and every
// extension image are pulled back out and flattened, as the factory's sources will do from a registry.

import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { ImagerInputs, InstallerBaseInput, LocalExtension, LocalOverlay } from "../../src/imager/inputs.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { flattenLayers } from "../../src/oci/flatten.ts";
import { decompressLayer } from "../../src/oci/layer.ts";
import { type ImageManifest, isImageIndex, parseManifest } from "../../src/oci/manifest.ts";
import type { Repository } from "../../src/oci/repository.ts";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";
import { fetchTestbedPackages, type TestbedArch, type TestbedPackages } from "../../src/testbed/debian.ts";
import { publishTestbedRelease, type ReleaseSummary, type ReleaseVersion } from "../../src/testbed/release.ts";

export const fixtureRegistry = "registry.test:5000";

export interface ReleaseFixture {
  scratch: string;
  store: RegistryStore;
  summary: ReleaseSummary;
  packages: TestbedPackages;
  close(): Promise<void>;
}

/**
 * Publishes the test bed release for `versions` into a fresh embedded store under a temp dir (`arches`: default
 * amd64 only; with arm64 too, the imager, installer and extensions are multi-arch indexes).
 */
export async function openReleaseFixture(
  versions: string[],
  options: { arches?: readonly TestbedArch[] } = {},
): Promise<ReleaseFixture> {
  const scratch = await mkdtemp(join(tmpdir(), "imager-fixture-"));
  const store = await openStore(join(scratch, "store"));
  const packages = await fetchTestbedPackages();
  const summary = await publishTestbedRelease({
    registry: fixtureRegistry,
    repositoryFor: (name) => store.repository(name),
    versions,
    ...(options.arches === undefined ? {} : { arches: options.arches }),
  });
  return {
    scratch,
    store,
    summary,
    packages,
    async close() {
      await store.close();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

/** The image manifest at `reference`; for an index, its linux/`arch` image's. */
async function readManifest(
  repository: Repository,
  reference: string,
  arch: TestbedArch = "amd64",
): Promise<ImageManifest> {
  const record = await repository.getManifest(reference);
  const { manifest } = parseManifest(record.body);
  if (!isImageIndex(manifest)) return manifest;
  const child = manifest.manifests.find((d) => d.platform?.architecture === arch && d.platform.os === "linux");
  if (child === undefined) throw new Error(`${reference} has no linux/${arch} image`);
  return await readManifest(repository, child.digest, arch);
}

async function flattenInto(repository: Repository, manifest: ImageManifest, dir: string): Promise<void> {
  await flattenLayers(
    manifest.layers.map(
      (layer) => async () => decompressLayer((await repository.getBlob(layer.digest)).stream, layer.mediaType),
    ),
    dir,
  );
}

export function releaseVersion(fixture: ReleaseFixture, version: string): ReleaseVersion {
  const found = fixture.summary.versions.find((v) => v.version === version);
  if (found === undefined) throw new Error(`version ${version} was not published`);
  return found;
}

/**
 * The local inputs for one version: the imager flattened, the installer base's blobs copied to files, and the
 * named extensions (short names such as "testbed-dummy", in the order given) flattened; of an index, the
 * linux/`arch` image (default amd64).
 */
export async function localInputs(
  fixture: ReleaseFixture,
  version: string,
  extensionNames: readonly string[],
  arch: TestbedArch = "amd64",
): Promise<ImagerInputs & { imagerDigest: Digest; installerDigest: Digest }> {
  const release = releaseVersion(fixture, version);
  const root = await mkdtemp(join(fixture.scratch, `inputs-${version}-${arch}-`));
  const image = (kind: string) => {
    const found = release.images.find((i) => i.kind === kind);
    if (found === undefined) throw new Error(`no ${kind} image for ${version}`);
    return found;
  };

  const imager = image("imager");
  const imagerRepository = fixture.store.repository(imager.repository);
  const imagerDir = join(root, "imager");
  await flattenInto(imagerRepository, await readManifest(imagerRepository, imager.digest, arch), imagerDir);

  const installer = image("installer");
  const installerRepository = fixture.store.repository(installer.repository);
  const installerManifest = await readManifest(installerRepository, installer.digest, arch);
  const blobsDir = join(root, "installer-blobs");
  await mkdir(blobsDir);
  const layers: InstallerBaseInput["layers"] = [];
  for (const layer of installerManifest.layers) {
    const path = join(blobsDir, layer.digest.replace(":", "-"));
    await pipeline((await installerRepository.getBlob(layer.digest)).stream, createWriteStream(path));
    layers.push({ path, digest: layer.digest, size: layer.size, mediaType: layer.mediaType });
  }
  const configRecord = await installerRepository.getBlob(installerManifest.config.digest);
  const configChunks: Buffer[] = [];
  for await (const chunk of configRecord.stream) configChunks.push(chunk as Buffer);

  const extensions: LocalExtension[] = [];
  for (const name of extensionNames) {
    const found = release.images.find((i) => i.kind === "extension" && i.extension?.name === name);
    if (found === undefined) throw new Error(`no extension ${name} for ${version}`);
    const repository = fixture.store.repository(found.repository);
    const dir = join(root, "extensions", name);
    await flattenInto(repository, await readManifest(repository, found.digest, arch), dir);
    extensions.push({ name: found.repository, dir, digest: found.digest });
  }

  return {
    imagerDir,
    imagerDigest: imager.digest,
    installerDigest: installer.digest,
    installerBase: { config: Buffer.concat(configChunks), layers },
    extensions,
  };
}

/**
 * The release's board overlay `name` as the imager takes it: flattened for the build host (amd64: its
 * installer runs here, upstream's runtime.GOARCH) and for the asset's architecture (its profile).
 */
export async function localOverlay(
  fixture: ReleaseFixture,
  version: string,
  name: string,
  arch: TestbedArch,
  options?: LocalOverlay["options"],
): Promise<LocalOverlay> {
  const found = releaseVersion(fixture, version).images.find((i) => i.kind === "overlay");
  if (found === undefined) throw new Error(`no overlay image for ${version}`);
  const repository = fixture.store.repository(found.repository);
  const root = await mkdtemp(join(fixture.scratch, `overlay-${version}-${arch}-`));
  const dir = join(root, "host");
  await flattenInto(repository, await readManifest(repository, found.digest, "amd64"), dir);
  const targetDir = join(root, "target");
  await flattenInto(repository, await readManifest(repository, found.digest, arch), targetDir);
  return {
    name,
    image: found.repository,
    digest: found.digest,
    ...(options === undefined ? {} : { options }),
    dir,
    targetDir,
  };
}
