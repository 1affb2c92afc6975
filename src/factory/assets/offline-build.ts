// `boot-assets build`'s service: the factory's asset service run without a factory. The sources come from
// the same configuration (the factory's source and signature settings), are verified and pulled by digest
// into the content cache under the cache directory, and the assets are built, kept in a directory cache
// and copied out. The CLI parses the command line, calls this, and prints.

import { randomUUID } from "node:crypto";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { unsupported } from "../../errors.ts";
import { schematicExtensionAuthor } from "../../imager/extensions.ts";
import { buildKinds, createBuildProfile } from "../../imager/profile.ts";
import { RegistryClient } from "../../oci/client/index.ts";
import { type AssetRequest, parseAssetRequest } from "../../talos/asset-path.ts";
import { type Schematic, schematicId } from "../../talos/schematic.ts";
import type { validateSourceSettings } from "../config/config.ts";
import { registryClientOptionsFor } from "../registry-access.ts";
import type { SourceProgress } from "../sources/imager-inputs.ts";
import { createImagerInputResolver, createSources } from "../sources/index.ts";
import { DirectoryAssetCache } from "./directory-cache.ts";
import { factoryGrubArm64EfiDir } from "./grub-arm64.ts";
import { factoryLabellingMksquashfs } from "./labelling-mksquashfs.ts";
import { AssetService } from "./service.ts";

export type SourceSettings = Awaited<ReturnType<typeof validateSourceSettings>>;

const placeholderDigest = `sha256:${"0".repeat(64)}`;

/**
 * Every asset request, checked as far as it can be before anything is pulled: path grammar, kinds this
 * imager builds, and the profile rules (e.g. no UKI before 1.10) — with placeholder digests, so a typo or an
 * impossible asset fails in a second rather than after a download.
 */
export function planAssets(talosVersion: string, paths: readonly string[], schematic: Schematic): AssetRequest[] {
  const id = schematicId(schematic);
  const extensions = (schematic.customization.systemExtensions?.officialExtensions ?? []).map((name) => ({
    name,
    digest: placeholderDigest,
  }));
  return paths.map((path) => {
    const request = parseAssetRequest(id, talosVersion, path);
    if (!(buildKinds as readonly string[]).includes(request.kind))
      throw unsupported(`${path}: ${request.kind} images are not built by this command yet`);
    createBuildProfile(request, schematic, {
      imager: placeholderDigest,
      installerBase: placeholderDigest,
      extensions,
      ...(schematic.overlay?.name ? { overlay: { image: schematic.overlay.name, digest: placeholderDigest } } : {}),
    });
    return request;
  });
}

/** Copies a cache entry out, replacing `to` only once the copy is whole. */
async function copyFileAtomic(from: string, to: string): Promise<void> {
  const temp = join(dirname(to), `.${basename(to)}.${randomUUID()}.part`);
  try {
    await copyFile(from, temp);
    await rename(temp, to);
  } finally {
    await rm(temp, { force: true });
  }
}

export interface OfflineBuildHooks {
  /** Runs one asset's build; `note` takes its progress lines. */
  step<T>(title: string, work: (note: (line: string) => void) => Promise<T>): Promise<T>;
  source(event: SourceProgress): void;
  warn(line: string): void;
}

export interface OfflineBuildOptions {
  settings: SourceSettings;
  /** The factory URL the schematic extension's author names (-external-url as given). */
  externalUrl: string;
  schematic: Schematic;
  requests: readonly AssetRequest[];
  /** Root of `sources/` (pulled images) and `assets/` (built assets). */
  cacheDir: string;
  outputDir: string;
  signal: AbortSignal;
  hooks: OfflineBuildHooks;
}

export interface OfflineBuildResult {
  request: AssetRequest;
  path: string;
  size: number;
  sha256: string;
  built: boolean;
}

/** Builds (or takes from the cache) each request in turn, calling `done` as each lands in the output directory. */
export async function buildAssetsOffline(
  options: OfflineBuildOptions,
  done: (result: OfflineBuildResult) => void,
): Promise<void> {
  const { settings, schematic, hooks, signal } = options;
  // The factory's rules: flagged-insecure and loopback registries over plain HTTP, the same TLS settings.
  const client = new RegistryClient(registryClientOptionsFor(settings));
  const sources = createSources(
    { ...settings, registryRefreshIntervalMs: 60 * 60 * 1000 },
    {
      client,
      log: { info: () => {}, warn: (details, message) => hooks.warn(`${message} ${JSON.stringify(details)}`) },
    },
  );
  try {
    const resolver = createImagerInputResolver(sources, settings.images, options.cacheDir);
    await mkdir(options.outputDir, { recursive: true });
    const assets = new AssetService({
      resolver,
      cache: new DirectoryAssetCache(join(options.cacheDir, "assets")),
      schematicAuthor: schematicExtensionAuthor(options.externalUrl),
      labellingMksquashfs: factoryLabellingMksquashfs(options.cacheDir, (line) => hooks.warn(line)),
      grubArm64EfiDir: factoryGrubArm64EfiDir(options.cacheDir, (line) => hooks.warn(line)),
      signal,
    });
    for (const request of options.requests) {
      const asset = await hooks.step(`building ${request.filename}`, (note) =>
        assets.get(request, schematic, { signal, progress: (event) => hooks.source(event), log: note }),
      );
      const path = join(options.outputDir, request.filename);
      try {
        await copyFileAtomic(asset.path, path);
      } finally {
        asset.release();
      }
      done({ request, path, size: asset.size, sha256: asset.sha256, built: asset.built });
    }
  } finally {
    await sources.stop();
    await client.close();
  }
}
