// `extension build` and `extension validate`: a system-extension image from a source folder
// (extension-source.ts), checked with the same rules the imager and the test bed use (talos/extension.ts),
// in deterministic layers (the test bed's reproducible image recipe: sorted tar, uid/gid 0, one mtime,
// gzip), one image per platform and an OCI index over them when there are several; pushed and signed on
// request. Every problem of every platform is reported at once, each naming its file and rule.

import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { badRequest } from "../errors.ts";
import type { RegistryClient } from "../oci/client/index.ts";
import type { Digest } from "../oci/digest.ts";
import {
  type BuiltImage,
  type BuiltIndex,
  buildImage,
  buildIndex,
  LayerStore,
  pushImage,
  pushIndex,
} from "../oci/image-builder.ts";
import { MediaType } from "../oci/mediatypes.ts";
import { formatReference, type ImageReference, parseReference } from "../oci/reference.ts";
import { resolveMtime, type TarEntry } from "../oci/tar.ts";
import { type SignResult, signImage } from "../signing/sign.ts";
import type { Signer } from "../signing/signer.ts";
import {
  checkExtensionEntries,
  checkExtensionManifest,
  checkExtensionServiceSpec,
  type ExtensionManifest,
  type ExtensionProblem,
  isExtensionServiceSpecPath,
  parseExtensionManifest,
} from "../talos/extension.ts";
import {
  type ExtensionArch,
  extensionArches,
  type PlatformSource,
  readExtensionSource,
  type SourceEntry,
} from "./extension-source.ts";

/** A problem as reported: the file it is about, the rule, the full message. */
export interface ReportedProblem {
  file: string;
  rule: string;
  message: string;
}

export interface ExtensionSourceOptions {
  /** Platforms to build; default: those with a rootfs-<arch>/ folder, else linux/amd64. */
  arches?: readonly ExtensionArch[];
  /** Talos version whose rules apply; default: the `-v<talos>` suffix of the extension version. */
  talosVersion?: string;
  /** Template values; VERSION defaults to the tag. */
  vars?: Readonly<Record<string, string>>;
  trees?: readonly { arch?: ExtensionArch; dir: string }[];
}

export interface BuildExtensionOptions extends ExtensionSourceOptions {
  /** Where the image goes, `registry/repository:tag`. */
  tag: string;
  push?: boolean;
  /** Signs what was pushed (and each platform's manifest). */
  signer?: Signer;
  client?: RegistryClient;
  /** Timestamp of every layer entry and of the config; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface BuiltPlatform {
  arch: ExtensionArch;
  digest: Digest;
  layer: { digest: Digest; size: number };
  entries: number;
}

export interface ExtensionBuildResult {
  reference: string;
  name: string;
  version: string;
  talosVersion: string;
  /** The index's digest with several platforms, else the image manifest's. */
  digest: Digest;
  mediaType: string;
  platforms: BuiltPlatform[];
  pushed: boolean;
  signatures: SignResult[];
}

/** The problems as one error: a line per problem, file first, rule last. */
export function problemsError(what: string, problems: readonly ReportedProblem[]) {
  const lines = problems.map((p) => `  ${p.file}: ${p.message} [${p.rule}]`);
  return badRequest(
    `${what}: ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${lines.join("\n")}`,
    "EXTENSION_INVALID",
    problems,
  );
}

/** The Talos version inside an extension version (`550.90.07-v1.8.2` → v1.8.2), if any. */
export function talosVersionOf(extensionVersion: string): string | undefined {
  return /-(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/.exec(extensionVersion)?.[1];
}

async function defaultArches(dir: string): Promise<ExtensionArch[]> {
  const names = await readdir(dir);
  const found = extensionArches.filter((arch) => names.includes(`rootfs-${arch}`));
  return found.length > 0 ? found : ["amd64"];
}

const maxServiceSpecBytes = 64 * 1024;

/** metadata.version of a manifest that parses, else undefined (its problems are reported by the checks). */
function manifestVersion(text: string): string | undefined {
  try {
    return parseExtensionManifest(text, "manifest.yaml").metadata.version;
  } catch {
    return undefined;
  }
}

interface CheckedPlatform {
  source: PlatformSource;
  manifest?: ExtensionManifest;
}

/** Reads and checks a source folder for every platform; throws every problem at once. */
async function checkSource(
  dir: string,
  options: ExtensionSourceOptions,
  tag: string | undefined,
): Promise<{ platforms: CheckedPlatform[]; talosVersion: string; manifest: ExtensionManifest }> {
  const vars: Record<string, string> = { ...(tag === undefined ? {} : { VERSION: tag }), ...options.vars };
  const arches = options.arches ?? (await defaultArches(dir));
  const source = await readExtensionSource(dir, { arches, vars, trees: options.trees ?? [] });
  const problems: ReportedProblem[] = source.problems.map((p) => ({ file: p.path, rule: p.rule, message: p.message }));
  const seen = new Set<string>();
  const report = (file: string, p: ExtensionProblem) => {
    const key = `${file}\0${p.rule}\0${p.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    problems.push({ file, rule: p.rule, message: p.message });
  };

  const checked: CheckedPlatform[] = [];
  let talosVersion = options.talosVersion;
  for (const platform of source.platforms) {
    talosVersion ??= talosVersionOf(manifestVersion(platform.manifest) ?? "");
    if (talosVersion === undefined) {
      problems.push({
        file: source.manifestFile,
        rule: "compatibility",
        message:
          "no Talos version to check against: give --talos-version (the extension version has no -v<talos> suffix)",
      });
      break;
    }
    if (platform.manifest === "") {
      checked.push({ source: platform });
      continue;
    }
    const manifestCheck = checkExtensionManifest(platform.manifest, {
      talosVersion,
      strict: true,
      source: source.manifestFile,
    });
    for (const p of manifestCheck.problems) report(source.manifestFile, p);
    const name = manifestCheck.manifest?.metadata.name ?? dir;
    const byPath = new Map(platform.entries.map((e) => [e.path, e]));
    const originOf = (p: ExtensionProblem) => byPath.get(p.path.replace(/^rootfs/, ""))?.origin ?? p.path;
    for (const p of checkExtensionEntries(platform.entries, { talosVersion, name })) report(originOf(p), p);
    for (const entry of platform.entries) {
      if (entry.kind !== "file" || !isExtensionServiceSpecPath(entry.path)) continue;
      if (entry.size > maxServiceSpecBytes) {
        report(entry.origin, {
          path: entry.path,
          rule: "service-spec",
          message: `extension "${name}": ${entry.path} is larger than ${maxServiceSpecBytes} bytes`,
        });
        continue;
      }
      const text = await readFile(entry.hostPath);
      for (const p of checkExtensionServiceSpec(text, entry.path, name)) report(entry.origin, p);
    }
    checked.push({ source: platform, ...(manifestCheck.manifest ? { manifest: manifestCheck.manifest } : {}) });
  }
  const manifest = checked[0]?.manifest;
  if (problems.length > 0 || manifest === undefined || talosVersion === undefined)
    throw problemsError(`extension ${dir}`, problems);
  return { platforms: checked, talosVersion, manifest };
}

/** Checks a source folder without building; returns the manifest and the Talos version used. */
export async function validateExtensionSource(
  dir: string,
  options: ExtensionSourceOptions,
): Promise<{ manifest: ExtensionManifest; talosVersion: string; arches: ExtensionArch[] }> {
  const { platforms, talosVersion, manifest } = await checkSource(dir, options, undefined);
  return { manifest, talosVersion, arches: platforms.map((p) => p.source.arch) };
}

/** The image's single layer: manifest.yaml, rootfs/ and its entries, streamed from the host files. */
function layerEntries(platform: PlatformSource): TarEntry[] {
  const entries: TarEntry[] = [
    { type: "file", path: "manifest.yaml", mode: 0o644, content: Buffer.from(platform.manifest) },
    { type: "directory", path: "rootfs", mode: 0o755 },
  ];
  // Modes as git keeps them (directories 0755, files 0644 or 0755 when executable), so a checkout's umask
  // never changes the digest; uid/gid 0 and the one mtime come from the tar writer (oci/tar.ts).
  const toTar = (e: SourceEntry): TarEntry => {
    const path = `rootfs${e.path}`;
    if (e.kind === "directory") return { type: "directory", path, mode: 0o755 };
    if (e.kind === "symlink") return { type: "symlink", path, target: e.target ?? "" };
    return { type: "file", path, mode: e.mode & 0o100 ? 0o755 : 0o644, sourcePath: e.hostPath, size: e.size };
  };
  for (const entry of platform.entries) entries.push(toTar(entry));
  return entries;
}

/** Builds (and on request pushes and signs) an extension image from a source folder. */
export async function buildExtension(dir: string, options: BuildExtensionOptions): Promise<ExtensionBuildResult> {
  const log = options.log ?? (() => {});
  const ref: ImageReference = parseReference(options.tag);
  if (ref.digest !== undefined) throw badRequest(`--tag ${options.tag}: name a tag, not a digest`);
  if (ref.tag === undefined) throw badRequest(`--tag ${options.tag}: the tag is missing (the extension version)`);
  if (options.push && options.client === undefined) throw badRequest("--push needs a registry client");
  if (options.signer !== undefined && !options.push)
    throw badRequest("--sign needs --push: a signature is stored in the registry");
  const { platforms, talosVersion, manifest } = await checkSource(dir, options, ref.tag);
  const { name, version } = manifest.metadata;
  // Upstream tags each extension image with its version, in a repository named after it (a catalog line
  // `<registry>/<org>/<name>:<version>@<digest>`); a mismatch builds, but reads confusingly in a catalog.
  if (version !== ref.tag) log(`note: the tag ${ref.tag} differs from the extension version ${version}`);
  if (ref.repository.split("/").pop() !== name)
    log(`note: the repository ${ref.repository} is not named after the extension "${name}"`);

  const work = await mkdtemp(join(tmpdir(), "extension-build-"));
  try {
    const store = new LayerStore(join(work, "layers"), resolveMtime(options.mtime));
    const images: BuiltImage[] = [];
    for (const { source } of platforms) {
      options.signal?.throwIfAborted();
      log(`building linux/${source.arch}: ${source.entries.length} rootfs entries`);
      images.push(
        await buildImage(
          {
            repository: ref.repository,
            tag: ref.tag,
            arch: source.arch,
            layers: [layerEntries(source)],
            createdBy: "boot-assets extension build",
          },
          store,
        ),
      );
    }
    const index: BuiltIndex | undefined = images.length > 1 ? buildIndex(images) : undefined;
    const single = images[0] as BuiltImage;
    const digest = index?.digest ?? single.digest;
    const signatures: SignResult[] = [];
    if (options.push && options.client !== undefined) {
      const repository = options.client.repository(ref);
      log(`pushing ${formatReference(ref)}`);
      const pushed = index ? await pushIndex(repository, index) : await pushImage(repository, single);
      if (pushed !== digest) throw badRequest(`the registry stored ${pushed}, expected ${digest}`);
      if (options.signer !== undefined)
        signatures.push(
          ...(await signImage(repository, digest, options.signer, {
            dockerReference: `${ref.registry}/${ref.repository}`,
            recursive: index !== undefined,
          })),
        );
    }
    return {
      reference: formatReference(ref),
      name,
      version,
      talosVersion,
      digest,
      mediaType: index ? MediaType.ociIndex : MediaType.ociManifest,
      platforms: images.map((image, i) => ({
        arch: image.arch,
        digest: image.digest,
        layer: { digest: image.layers[0]?.descriptor.digest as Digest, size: image.layers[0]?.descriptor.size ?? 0 },
        entries: (platforms[i]?.source.entries.length ?? 0) + 2,
      })),
      pushed: options.push === true,
      signatures,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
