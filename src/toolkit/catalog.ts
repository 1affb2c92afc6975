// The catalog commands' service: read an extensions catalog image, merge custom extensions into it, compare
// two catalogs. The release workflow's "append" step (siderolabs/extensions Makefile, targets
// `internal/extensions/image-digests` and `internal/extensions/descriptions.yaml`) done as one command:
//   - each added image is read for its own manifest.yaml: name, version, author, description;
//   - `image-digests` gets `<registry>/<repository>:<tag>@<digest>` (the tag is the one given, else the
//     manifest's version, as upstream tags extension images with their version), `descriptions.yaml` one
//     `{author, description}` under the same full line (ExtensionCatalog writes both);
//   - an added extension replaces a listed one of the same name, and the result says so;
//   - every kept entry is scanned (bounded concurrency) for kernel modules, which will not load on a kernel
//     built with another module signing key — the result lists them so the command can warn.
// The new catalog image has one deterministic layer (fixed mtime, sorted entries) and a fixed config, so the
// same inputs give the same digest. It goes to an OCI image layout or to a registry, optionally signed.

import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppError, badRequest, isAppError } from "../errors.ts";
import type { RegistryClient } from "../oci/client/client.ts";
import type { Digest } from "../oci/digest.ts";
import { assembleImage, type ImageMetadata } from "../oci/image-builder.ts";
import { buildLayer } from "../oci/layer.ts";
import { OciLayout } from "../oci/layout.ts";
import { OciLayoutImageStore } from "../oci/layout-image.ts";
import type { Descriptor } from "../oci/manifest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import {
  dockerHubRegistry,
  formatReference,
  type ImageReference,
  parseReference,
  validateTag,
} from "../oci/reference.ts";
import { resolveMtime, type TarEntry } from "../oci/tar.ts";
import { type SignResult, signImage } from "../signing/sign.ts";
import type { Signer } from "../signing/signer.ts";
import type { SignatureVerifier } from "../signing/verify.ts";
import { type CatalogEntry, ExtensionCatalog, parseCatalogLine } from "../talos/catalog.ts";
import {
  type AddedExtension,
  type CatalogDiff,
  diffCatalogs,
  type MergeOutcome,
  mergeCatalogEntries,
} from "../talos/catalog-merge.ts";
import { parseExtensionManifest } from "../talos/extension.ts";
import { mapLimited } from "../util/concurrency.ts";
import { scanImage } from "./image-scan.ts";

export const catalogFiles = ["image-digests", "descriptions.yaml"] as const;

export interface ReadCatalog {
  /** The reference read, pinned: `<registry>/<repository>@<digest>`. */
  pinned: string;
  digest: Digest;
  catalog: ExtensionCatalog;
}

/** Reads an extensions catalog image (through the verifier: pinned, and signature-checked if configured). */
export async function readCatalogImage(
  verifier: SignatureVerifier,
  reference: string,
  signal?: AbortSignal,
): Promise<ReadCatalog> {
  const image = await verifier.verify(parseReference(reference));
  const scan = await scanImage(image, { exactNames: catalogFiles, signal });
  const digests = scan.files.get("image-digests");
  if (digests === undefined) {
    const prefixed = scan.prefixedNames.includes("image-digests")
      ? ": it is stored as ./image-digests, which the image factory does not read (the tar name must be bare)"
      : "";
    throw badRequest(`${image.pinned}: no image-digests file at the root${prefixed}`);
  }
  const descriptions = scan.files.get("descriptions.yaml");
  const catalog = ExtensionCatalog.parse(digests.toString("utf8"), descriptions?.toString("utf8"));
  return { pinned: image.pinned, digest: image.digest, catalog };
}

export async function diffCatalogImages(
  verifier: SignatureVerifier,
  before: string,
  after: string,
  signal?: AbortSignal,
): Promise<{ before: ReadCatalog; after: ReadCatalog; diff: CatalogDiff }> {
  const a = await readCatalogImage(verifier, before, signal);
  const b = await readCatalogImage(verifier, after, signal);
  return { before: a, after: b, diff: diffCatalogs(a.catalog, b.catalog) };
}

export interface MergeOptions {
  verifier: SignatureVerifier;
  /** The catalog to extend, e.g. `ghcr.io/siderolabs/extensions:v1.10.3`. */
  from: string;
  /** Extension images, `REF[:TAG]@DIGEST` (a tag-only reference is resolved once). */
  add: readonly string[];
  /** Name of the new catalog: `<registry>/<repository>:<tag>`. */
  tag: string;
  /** Where the new image goes: a registry (the one of `tag`), or an OCI image layout directory. */
  output: { kind: "registry"; client: RegistryClient } | { kind: "layout"; dir: string };
  /** Signs the pushed image (registry output only). */
  signer?: Signer;
  /**
   * Where kept entries are pulled from to look for kernel modules: `host[/namespace]`. Consumers ignore the
   * host written in a catalog line; default the registry host of `from`. Null to skip the scan.
   */
  extensionsRegistry?: string | null;
  /** Images scanned at once. Default 4. */
  concurrency?: number;
  /** Layer and config timestamps, seconds; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  signal?: AbortSignal;
}

export interface KeptWithModules {
  entry: CatalogEntry;
  /** The first module file seen, e.g. `/usr/lib/modules/6.1.0/kernel/drivers/net/dummy.ko`. */
  module: string;
}

export interface MergeResult extends MergeOutcome {
  from: ReadCatalog;
  /** The new catalog's digest and full reference. */
  digest: Digest;
  reference: string;
  catalog: ExtensionCatalog;
  /** Kept entries that carry kernel modules (empty when the scan was skipped). */
  keptWithModules: KeptWithModules[];
  /** Added extensions that carry kernel modules (fine when built against the custom kernel). */
  addedWithModules: KeptWithModules[];
  /** Whether kept entries were scanned. */
  scanned: boolean;
  signatures: SignResult[];
  /** Where it was written: the registry reference or `oci:DIR:TAG`. */
  location: string;
}

const maxAdditions = 256;

/** `<registry>/<repository>:<tag>@<digest>` for an added image, from its reference and manifest. */
async function readAddition(
  verifier: SignatureVerifier,
  text: string,
  signal: AbortSignal | undefined,
): Promise<AddedExtension & { module?: string }> {
  const ref = parseReference(text);
  const image = await verifier.verify(ref);
  const scan = await scanImage(image, { paths: ["manifest.yaml"], modules: true, signal });
  const manifestText = scan.files.get("manifest.yaml");
  if (manifestText === undefined) throw badRequest(`${image.pinned}: no manifest.yaml: not a system extension image`);
  const { metadata } = parseExtensionManifest(manifestText, image.pinned);
  const tag = ref.tag ?? validateTag(metadata.version);
  const line = `${ref.registry}/${ref.repository}:${tag}@${image.digest}`;
  const parsed = parseCatalogLine(line);
  if (parsed === undefined) throw badRequest(`${text}: cannot be written as a catalog line`);
  return {
    extensionName: metadata.name,
    entry: { ...parsed, author: metadata.author, description: metadata.description },
    ...(scan.module === undefined ? {} : { module: scan.module }),
  };
}

/**
 * Where a listed entry is pulled from: `<registry>[/<namespace>]/<repository path>@<digest>` — as upstream's
 * factory pulls it (the catalog's host dropped, the repository path kept under the configured registry and
 * namespace: siderolabs/image-factory internal/artifacts/versions.go).
 */
export function pullReference(entry: Pick<CatalogEntry, "name" | "digest">, extensionsRegistry: string): string {
  return `${extensionsRegistry.replace(/\/+$/, "")}/${entry.name}@${entry.digest}`;
}

export async function mergeCatalog(options: MergeOptions): Promise<MergeResult> {
  const { verifier, signal } = options;
  if (options.add.length === 0) throw badRequest("catalog merge: give at least one --add image");
  if (options.add.length > maxAdditions) throw badRequest(`catalog merge: more than ${maxAdditions} --add images`);
  const target = parseReference(options.tag);
  if (target.tag === undefined || target.digest !== undefined)
    throw badRequest(`--tag ${options.tag}: name the new catalog as REGISTRY/REPOSITORY:TAG`);
  if (options.signer !== undefined && options.output.kind !== "registry")
    throw badRequest("--sign needs --push: signatures are stored in the registry beside the image");
  const concurrency = options.concurrency ?? 4;

  const from = await readCatalogImage(verifier, options.from, signal);
  const additions = await mapLimited(options.add, concurrency, (text) => readAddition(verifier, text, signal));
  let outcome: MergeOutcome;
  try {
    outcome = mergeCatalogEntries(from.catalog, additions);
  } catch (err) {
    throw badRequest(`catalog merge: ${(err as Error).message}`);
  }

  const extensionsRegistry =
    options.extensionsRegistry === null
      ? undefined
      : (options.extensionsRegistry ?? parseReference(options.from).registry);
  const keptWithModules: KeptWithModules[] = [];
  if (extensionsRegistry !== undefined) {
    const found = await mapLimited(outcome.kept, concurrency, async (entry) => {
      const pull = pullReference(entry, extensionsRegistry);
      try {
        const image = await verifier.verify(parseReference(pull));
        return (await scanImage(image, { modules: true, signal })).module;
      } catch (err) {
        if (!isAppError(err)) throw err;
        throw new AppError(
          err.kind,
          `kept ${entry.name}:${entry.tag}: looking for kernel modules in ${pull}: ${err.message} ` +
            "(pull from elsewhere with --extensions-registry, or skip with --no-module-check)",
          { code: err.code, cause: err },
        );
      }
    });
    for (const [i, module] of found.entries()) {
      const entry = outcome.kept[i];
      if (module !== undefined && entry !== undefined) keptWithModules.push({ entry, module });
    }
  }
  const addedWithModules = additions.flatMap((a) =>
    a.module === undefined ? [] : [{ entry: a.entry, module: a.module }],
  );

  const catalog = new ExtensionCatalog(outcome.entries);
  const built = await buildCatalogImage(catalog, resolveMtime(options.mtime));
  try {
    let location: string;
    let signatures: SignResult[] = [];
    if (options.output.kind === "registry") {
      const repository = options.output.client.repository(target);
      await repository.putBlob(createReadStream(built.layerFile), built.layer);
      await repository.putBlob(built.config, built.configDescriptor);
      const digest = await repository.putManifest(built.manifest, MediaType.ociManifest, target.tag);
      if (digest !== built.digest) throw badRequest(`${repository.displayName} stored ${digest}, not ${built.digest}`);
      location = `${target.registry}/${target.repository}:${target.tag}`;
      if (options.signer !== undefined)
        signatures = await signImage(repository, digest, options.signer, {
          // cosign's spelling of the repository: Docker Hub is index.docker.io.
          dockerReference: `${target.registry === dockerHubRegistry ? "index.docker.io" : target.registry}/${target.repository}`,
        });
    } else {
      const store = new OciLayoutImageStore(await OciLayout.create(options.output.dir));
      await store.putBlob(createReadStream(built.layerFile), built.layer);
      await store.putBlob(built.config, built.configDescriptor);
      await store.putManifest(built.manifest, MediaType.ociManifest, target.tag);
      location = `oci:${options.output.dir}:${target.tag}`;
    }
    const reference: ImageReference = { ...target, digest: built.digest };
    return {
      ...outcome,
      from,
      digest: built.digest,
      reference: formatReference(reference),
      catalog,
      keptWithModules,
      addedWithModules,
      scanned: extensionsRegistry !== undefined,
      signatures,
      location,
    };
  } finally {
    await rm(built.dir, { recursive: true, force: true });
  }
}

interface BuiltCatalogImage extends ImageMetadata {
  dir: string;
  layerFile: string;
  layer: Descriptor;
}

/**
 * The catalog image: one gzip layer holding exactly `image-digests` and `descriptions.yaml` at the root under
 * their bare names (siderolabs/extensions internal/extensions/pkg.yaml finalizes both to `/`), and a linux/amd64
 * config — what upstream's factory (internal/artifacts/versions.go) and this project's factory read.
 */
export async function buildCatalogImage(catalog: ExtensionCatalog, mtime: number): Promise<BuiltCatalogImage> {
  const entries: TarEntry[] = [
    { type: "file", path: "descriptions.yaml", mode: 0o644, content: Buffer.from(catalog.descriptionsYamlText()) },
    { type: "file", path: "image-digests", mode: 0o644, content: Buffer.from(catalog.imageDigestsText()) },
  ];
  const dir = await mkdtemp(join(tmpdir(), "catalog-merge-"));
  try {
    const layerFile = join(dir, "layer.tar.gz");
    const built = await buildLayer(entries, layerFile, { compression: "gzip", level: 9, mtime });
    const metadata = assembleImage([built], mtime, { createdBy: "boot-assets catalog merge" });
    return { dir, layerFile, layer: built.descriptor, ...metadata };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
