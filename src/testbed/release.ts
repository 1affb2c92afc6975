// The test bed release: a miniature Talos release with upstream's image layouts, built from Debian packages,
// pushed to a registry under `siderolabs/` and signed like the real one. Per Talos version:
//   siderolabs/imager:<v>                 usr/install/<arch>/{vmlinuz,initramfs.xz,systemd-boot.efi,systemd-stub.efi}
//                                         and, from 1.11, talos.spdx.json (sbom.ts), for every released arch in
//                                         every platform's image (upstream's imager cross-builds)
//   siderolabs/installer-base:<v> (≥1.10) the test bed's installer program (`installer:<v>` before 1.10)
//   siderolabs/testbed-*:<ext version>    the extensions (extensions.ts), validated for the version
//   siderolabs/extensions:<v>             image-digests + descriptions.yaml listing them (the incompatible one
//                                         too: the factory must refuse it itself, not rely on the catalog)
//   siderolabs/sbc-testbed:v0.1.0         a board overlay (release-overlay.ts), from 1.7
//   siderolabs/overlays:<v>               overlays.yaml listing it (testbed_board, testbed_broken, testbed_arm64_board)
//   siderolabs/talosctl-all:<v> (≥1.11)   stand-ins for talosctl binaries at the root (release-talosctl.ts)
// With `arches` amd64 and arm64 (the CLI's default), the imager, installer(-base), extension and overlay images are OCI
// indexes with a linux/amd64 and a linux/arm64 image (the arm64 packages: debian.ts); the catalogs stay
// single-platform. With amd64 only (the library's default), every image is a plain linux/amd64 manifest.
// Images are reproducible (src/oci/image-builder.ts); every image gets a legacy cosign `.sig` signature by the test
// key and one keyless from the test Sigstore (release-keys.ts), each added only once however often this runs.

import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import { AppError, badRequest } from "../errors.ts";
import type { RegistryClient } from "../oci/client/client.ts";
import type { Digest } from "../oci/digest.ts";
import { flattenLayers } from "../oci/flatten.ts";
import {
  type BuiltImage,
  type BuiltIndex,
  buildImage,
  buildIndex,
  type ImageSpec,
  LayerStore,
  pushImage,
  pushIndex,
} from "../oci/image-builder.ts";
import type { Repository } from "../oci/repository.ts";
import { resolveMtime } from "../oci/tar.ts";
import { type SignResult, signImage } from "../signing/sign.ts";
import type { Signer } from "../signing/signer.ts";
import { type CatalogEntry, ExtensionCatalog, writeOverlaysCatalog } from "../talos/catalog.ts";
import { validateExtensionTree } from "../talos/extension.ts";
import { rulesFor, type VersionRules } from "../talos/version-rules.ts";
import { bootAssetsCacheDir } from "../tools/debian-packages.ts";
import { depmodTool } from "../tools/kmod.ts";
import { runToolText } from "../tools/run.ts";
import {
  fetchTestbedArm64Packages,
  fetchTestbedPackages,
  type TestbedArch,
  type TestbedArchPackages,
  type TestbedPackages,
} from "./debian.ts";
import { benchExtensionImages, extensionModule, testbedExtensionImages } from "./extensions.ts";
import {
  type BaseBootAssets,
  buildBaseBootAssets,
  layoutForTalosVersion,
  loadOrder,
  moduleName,
  parseModulesDep,
} from "./initramfs.ts";
import { bulkyFile } from "./release-bench.ts";
import { imagerEntries } from "./release-imager.ts";
import { installerLayer } from "./release-installer.ts";
import { type KeylessIdentityClaim, loadOrCreateReleaseKeys, writeVerificationFiles } from "./release-keys.ts";
import { testbedOverlayEntries, testbedOverlaySpec } from "./release-overlay.ts";
import { talosctlAllSpec } from "./release-talosctl.ts";

/**
 * Released when no version is asked for: two minors on either side of the 1.10 changes (lib/modules, GRUB,
 * `installer` vs usr/lib/modules, sd-boot, `installer-base`); the newest patch releases of 1.12 (ISO boot
 * loader choice, embedded config, module.sig_enforce=1) and 1.13 (META always written, 6.18 mkfs.xfs config,
 * proc_mem.force_override=never) and the newest 1.14 tag, a pre-release that follows the 1.14 rules (no
 * init_on_alloc/lockdown defaults) and, being of the newest minor, is the one pre-release the factory offers
 * (upstream tags in siderolabs/talos: v1.12.11, v1.13.9, v1.14.0-rc.1 with no v1.14.0 yet); and a tag that
 * is not semver (gets the newest rules, as upstream treats unparseable versions).
 */
export { testbedSystemdBoot } from "./release-imager.ts";

export const defaultTestbedVersions: readonly string[] = [
  "v1.8.2",
  "v1.10.3",
  "v1.12.11",
  "v1.13.9",
  "v1.14.0-rc.1",
  "latest-dev",
];

/** The host catalogs name images with, as upstream's do; consumers ignore it and pull from their registry. */
export const catalogHost = "ghcr.io";

const maxVersions = 32;

export type ReleaseImageKind =
  | "imager"
  | "installer"
  | "extension"
  | "extensions-catalog"
  | "overlays-catalog"
  | "overlay"
  | "talosctl-all";

export interface ReleaseImage {
  kind: ReleaseImageKind;
  /** Repository path, e.g. "siderolabs/imager". */
  repository: string;
  tag: string;
  digest: Digest;
  /** `<registry>/<repository>:<tag>@<digest>`. */
  reference: string;
  extension?: { name: string; version: string; compatible: boolean };
  /** When `digest` is an index: its image per architecture. */
  platforms?: { arch: TestbedArch; digest: Digest }[];
}

export interface ReleaseVersion {
  version: string;
  modulesPath: VersionRules["modulesPath"];
  installerImage: VersionRules["installerImage"];
  images: ReleaseImage[];
}

export interface ReleaseSummary {
  registry: string;
  /** The architectures released. */
  arches: TestbedArch[];
  /** The amd64 kernel. */
  kernel: { package: string; version: string; release: string; debSha256: string };
  /** Every released architecture's kernel. */
  kernels: { arch: TestbedArch; package: string; version: string; release: string; debSha256: string }[];
  versions: ReleaseVersion[];
  signatures: { written: number; present: number };
  identity: KeylessIdentityClaim;
  publicKeyPem: string;
  /** Files written to `out`. */
  outFiles: string[];
}

export interface PublishTestbedReleaseOptions {
  /** host[:port] of the registry: the `docker-reference` of signatures and the host of summary references. */
  registry: string;
  /** The repository for a path like "siderolabs/imager" (e.g. an embedded store's); else `client` is used. */
  repositoryFor?: (name: string) => Repository;
  client?: RegistryClient;
  /** Talos versions; default `defaultTestbedVersions`. */
  versions?: readonly string[];
  /**
   * The architectures, amd64 first; default amd64 only. With arm64 too, the imager, installer and extension
   * images become linux/amd64 + linux/arm64 indexes.
   */
  arches?: readonly TestbedArch[];
  /** Directory receiving cosign.key, cosign.pub, trusted_root.json, identity.json. */
  out?: string;
  /** Default `${XDG_CACHE_HOME:-~/.cache}/boot-assets`. */
  cacheDir?: string;
  /** Where the signing keys live; default `<cacheDir>/testbed/keys`. */
  keysDir?: string;
  /** Where built layers are cached; default `<cacheDir>/testbed/layers` (an empty one forces rebuilding). */
  layerStoreDir?: string;
  /** Timestamp of every file and config; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Bench only: extra extensions in every version — `testbed-bulky` with `bulkyBytes` of incompressible
   * data (generated once under `<cacheDir>/testbed/bench/`) and `fillers` small `testbed-filler-NN` ones.
   */
  benchExtensions?: { bulkyBytes?: number; fillers?: number };
}

interface ReleaseContext {
  registry: string;
  repositoryFor: (name: string) => Repository;
  packages: TestbedPackages;
  /** Every released architecture's packages, amd64 first. */
  archPackages: TestbedArchPackages[];
  cache: LayerStore;
  cacheDir: string;
  mtime: number;
  signers: Signer[];
  log: (line: string) => void;
  signal?: AbortSignal;
  signatures: { written: number; present: number };
  bench?: { bulkyFile?: { path: string; size: number }; fillers: number };
}

const maxFillers = 64;

/** Builds, pushes and signs the release for every version; returns what was published. */
export async function publishTestbedRelease(options: PublishTestbedReleaseOptions): Promise<ReleaseSummary> {
  const versions = [...new Set(options.versions?.length ? options.versions : defaultTestbedVersions)];
  if (versions.length > maxVersions) throw badRequest(`at most ${maxVersions} Talos versions per release`);
  for (const version of versions)
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(version))
      throw badRequest(`Talos version "${version}" cannot be an image tag`);
  const repositoryFor = options.repositoryFor ?? clientRepositories(options.client, options.registry);
  const cacheDir = options.cacheDir ?? bootAssetsCacheDir();
  const log = options.log ?? (() => {});
  const mtime = resolveMtime(options.mtime);

  const keys = await loadOrCreateReleaseKeys(options.keysDir ?? join(cacheDir, "testbed", "keys"), { log });
  const arches = [...new Set(options.arches?.length ? options.arches : (["amd64"] as const))];
  if (arches[0] !== "amd64" || arches.some((arch) => arch !== "amd64" && arch !== "arm64"))
    throw badRequest(`the test bed releases amd64, optionally with arm64; not ${arches.join(", ")}`);
  const amd64 = fetchTestbedPackages({ cacheDir, log, signal: options.signal });
  // Both architectures' packages are resolved at once (apt-cache takes seconds a call).
  const [packages, arm64] = await Promise.all([
    amd64,
    arches.includes("arm64") ? fetchTestbedArm64Packages(amd64, { cacheDir, log, signal: options.signal }) : undefined,
  ]);
  const archPackages: TestbedArchPackages[] = arm64 === undefined ? [packages] : [packages, arm64];
  const context: ReleaseContext = {
    registry: options.registry,
    repositoryFor,
    packages,
    archPackages,
    cache: new LayerStore(options.layerStoreDir ?? join(cacheDir, "testbed", "layers"), mtime),
    cacheDir,
    mtime,
    signers: [keys.keySigner, keys.keylessSigner],
    log,
    signal: options.signal,
    signatures: { written: 0, present: 0 },
  };
  const bench = options.benchExtensions;
  if (bench !== undefined) {
    const fillers = bench.fillers ?? 0;
    if (!Number.isInteger(fillers) || fillers < 0 || fillers > maxFillers)
      throw badRequest(`fillers must be 0–${maxFillers}, not ${fillers}`);
    context.bench = {
      fillers,
      ...(bench.bulkyBytes === undefined ? {} : { bulkyFile: await bulkyFile(cacheDir, bench.bulkyBytes) }),
    };
  }

  const released: ReleaseVersion[] = [];
  for (const version of versions) released.push(await publishVersion(context, version));
  const outFiles = options.out === undefined ? [] : await writeVerificationFiles(keys, options.out);
  const kernelOf = ({ kernel }: TestbedArchPackages) => ({
    package: kernel.name,
    version: kernel.version,
    release: kernel.release,
    debSha256: kernel.sha256,
  });
  return {
    registry: options.registry,
    arches: archPackages.map((p) => p.arch),
    kernel: kernelOf(packages),
    kernels: archPackages.map((p) => ({ arch: p.arch, ...kernelOf(p) })),
    versions: released,
    signatures: context.signatures,
    identity: keys.identity,
    publicKeyPem: keys.publicKeyPem,
    outFiles,
  };
}

function clientRepositories(client: RegistryClient | undefined, registry: string): (name: string) => Repository {
  if (client === undefined) throw badRequest("publishTestbedRelease needs repositoryFor or a registry client");
  return (name) => client.repository(`${registry}/${name}`);
}

/** One architecture's part of a version: its packages and base boot assets. */
interface ArchBuild {
  packages: TestbedArchPackages;
  base: BaseBootAssets;
}

async function publishVersion(context: ReleaseContext, version: string): Promise<ReleaseVersion> {
  const rules = rulesFor(version);
  context.log(`Talos ${version}: ${rules.modulesPath}, ${rules.initramfsCompression}, ${rules.installerImage}`);
  const builds: ArchBuild[] = [];
  for (const packages of context.archPackages)
    builds.push({
      packages,
      base: await buildBaseBootAssets({
        layout: layoutForTalosVersion(version),
        cacheDir: context.cacheDir,
        packages,
        mtime: context.mtime,
        log: context.log,
        signal: context.signal,
      }),
    });
  const multiArch = builds.length > 1;
  const images: ReleaseImage[] = [];
  const publish = async (kind: ReleaseImageKind, spec: ImageSpec): Promise<ReleaseImage> => {
    const released = await pushAndSign(context, kind, await buildImage(spec, context.cache));
    images.push(released);
    return released;
  };
  /** One image per architecture: an index over them when several are released, else the one image. */
  const publishPerArch = async (
    kind: ReleaseImageKind,
    built: BuiltImage[],
    extension?: ReleaseImage["extension"],
  ): Promise<ReleaseImage> => {
    const [single] = built;
    const image = multiArch || single === undefined ? buildIndex(built) : single;
    const released = await pushAndSign(context, kind, image, extension);
    images.push(released);
    return released;
  };

  // The imager image is the same files for every platform: every architecture's boot assets.
  const imagerLayer = (await Promise.all(builds.map((build) => imagerEntries(build, version, context.mtime)))).flat();
  await publishPerArch(
    "imager",
    await Promise.all(
      builds.map(({ packages }) =>
        buildImage(
          { repository: "siderolabs/imager", tag: version, arch: packages.arch, layers: [imagerLayer] },
          context.cache,
        ),
      ),
    ),
  );
  const installers: BuiltImage[] = [];
  for (const { packages } of builds)
    installers.push(
      await buildImage(
        {
          repository: `siderolabs/${rules.installerImage}`,
          tag: version,
          arch: packages.arch,
          layers: [installerLayer(rules, await sized(packages.busybox.binary), packages.arch)],
          runConfig: { Entrypoint: [`/bin/installer`] },
        },
        context.cache,
      ),
    );
  await publishPerArch("installer", installers);

  // Per architecture, the same extensions (names, versions, descriptions) built from its packages.
  const perArch = await Promise.all(
    builds.map(async ({ packages, base }) =>
      testbedExtensionImages({
        talosVersion: version,
        rules,
        packages,
        kernelRelease: base.kernelRelease,
        moduleFiles: await extensionModuleFiles(context, packages, base),
        busyboxSize: (await stat(packages.busybox.binary)).size,
      }),
    ),
  );
  const [extensions = []] = perArch;
  // Bench extensions carry no binaries: the same files serve every platform.
  const bench = context.bench === undefined ? [] : benchExtensionImages({ talosVersion: version, ...context.bench });
  extensions.push(...bench);
  const catalog: CatalogEntry[] = [];
  for (const extension of extensions) {
    const built: BuiltImage[] = [];
    for (const [i, { packages }] of builds.entries()) {
      const spec =
        i === 0 || bench.includes(extension) ? extension : perArch[i]?.find((e) => e.name === extension.name);
      if (spec === undefined || spec.version !== extension.version)
        throw new AppError(
          "Internal",
          `${extension.name}: the ${packages.arch} packages give version ${spec?.version ?? "none"}, amd64's ${extension.version} (apt-get update both architectures' lists)`,
        );
      const image = await buildImage(
        { repository: spec.repository, tag: spec.version, arch: packages.arch, layers: [spec.entries] },
        context.cache,
      );
      // Validated as the pushed bytes flatten; the incompatible one for everything but its constraint.
      await validateExtensionImage(image, spec.compatible ? version : "v0.14.0", spec.name);
      built.push(image);
    }
    const released = await publishPerArch("extension", built, {
      name: extension.name,
      version: extension.version,
      compatible: extension.compatible,
    });
    catalog.push({
      name: extension.repository,
      ref: `${catalogHost}/${extension.repository}:${extension.version}@${released.digest}`,
      host: catalogHost,
      tag: extension.version,
      digest: released.digest,
      author: "boot-assets test bed",
      description: extension.description,
    });
  }
  catalog.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  const extensionsCatalog = new ExtensionCatalog(catalog);
  await publish("extensions-catalog", {
    repository: "siderolabs/extensions",
    tag: version,
    layers: [
      [
        { type: "file", path: "image-digests", content: Buffer.from(extensionsCatalog.imageDigestsText()) },
        { type: "file", path: "descriptions.yaml", content: Buffer.from(extensionsCatalog.descriptionsYamlText()) },
      ],
    ],
  });
  // The board overlay (release-overlay.ts), for the versions that have overlays: per architecture, as the
  // imager, installer and extensions are.
  const overlays = rules.overlays
    ? testbedOverlayEntries(
        catalogHost,
        (
          await publishPerArch(
            "overlay",
            await Promise.all(
              builds.map(async ({ packages }) =>
                buildImage(await testbedOverlaySpec(packages.busybox.binary, packages.arch), context.cache),
              ),
            ),
          )
        ).digest,
      )
    : [];
  await publish("overlays-catalog", {
    repository: "siderolabs/overlays",
    tag: version,
    layers: [[{ type: "file", path: "overlays.yaml", content: Buffer.from(writeOverlaysCatalog(overlays)) }]],
  });
  if (rules.talosctlDownload) await publish("talosctl-all", talosctlAllSpec(version));
  return { version, modulesPath: rules.modulesPath, installerImage: rules.installerImage, images };
}

async function sized(path: string): Promise<{ path: string; size: number }> {
  return { path, size: (await stat(path)).size };
}

async function pushAndSign(
  context: ReleaseContext,
  kind: ReleaseImageKind,
  image: BuiltImage | BuiltIndex,
  extension?: ReleaseImage["extension"],
): Promise<ReleaseImage> {
  context.signal?.throwIfAborted();
  const repository = context.repositoryFor(image.repository);
  const isIndex = "images" in image;
  // An index is signed as a whole (its digest), as upstream signs its multi-arch release images.
  const digest = isIndex ? await pushIndex(repository, image) : await pushImage(repository, image);
  if (digest !== image.digest)
    throw new AppError("Integrity", `${repository.displayName}: registry stored ${digest}, expected ${image.digest}`);
  const dockerReference = `${context.registry}/${image.repository}`;
  for (const signer of context.signers) {
    const results: SignResult[] = await signImage(repository, digest, signer, { dockerReference });
    for (const result of results) context.signatures[result.status === "signed" ? "written" : "present"]++;
  }
  const reference = `${context.registry}/${image.repository}:${image.tag}@${digest}`;
  context.log(`pushed ${reference}`);
  return {
    kind,
    repository: image.repository,
    tag: image.tag,
    digest,
    reference,
    ...(extension ? { extension } : {}),
    ...(isIndex ? { platforms: image.images.map((child) => ({ arch: child.arch, digest: child.digest })) } : {}),
  };
}

/** Flattens the image's (gzip) layers into a temporary directory and validates it as an extension. */
async function validateExtensionImage(image: BuiltImage, talosVersion: string, name: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "testbed-extension-"));
  try {
    const tree = join(dir, "tree");
    await flattenLayers(
      image.layers.map((layer) => async () => createReadStream(layer.file).pipe(createGunzip())),
      tree,
    );
    await validateExtensionTree(tree, { talosVersion, name });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The files of the module extension: `dummy.ko` and whatever it depends on that the base rootfs lacks, with
 * their sizes. The dependency walk (depmod over the whole package) is cached per kernel package.
 */
async function extensionModuleFiles(
  context: ReleaseContext,
  packages: TestbedArchPackages,
  base: BaseBootAssets,
): Promise<{ path: string; size: number }[]> {
  const { kernel } = packages;
  const cacheFile = join(context.cacheDir, "testbed", "release", `modules-${kernel.sha256}-${extensionModule}.json`);
  let files: string[];
  if (existsSync(cacheFile)) files = JSON.parse(await readFile(cacheFile, "utf8")) as string[];
  else {
    const text = await runToolText(depmodTool, ["-n", "-b", kernel.root, kernel.release], {
      signal: context.signal,
      maxStdoutBytes: 64 * 1024 * 1024,
    });
    files = loadOrder([extensionModule], parseModulesDep(text));
    await mkdir(join(context.cacheDir, "testbed", "release"), { recursive: true });
    await writeFile(cacheFile, `${JSON.stringify(files)}\n`);
  }
  const inRootfs = new Set(base.rootfsModules);
  const wanted = files.filter((file) => !inRootfs.has(moduleName(file)));
  return Promise.all(wanted.map(async (path) => ({ path, size: (await stat(join(kernel.modulesDir, path))).size })));
}
