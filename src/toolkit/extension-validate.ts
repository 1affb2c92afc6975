// `extension validate IMAGE|DIR`: the build's checks on an existing extension. A folder is read as a source
// folder (extension-source.ts; a flattened image, manifest.yaml + rootfs/, is one). An image is pulled through
// the registry client, each linux platform of an index (or the one image) flattened into a temporary
// directory and checked with talos/extension.ts checkExtensionTree in strict mode; every problem of every
// platform is reported at once.

import { lstat, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { badRequest } from "../errors.ts";
import type { RegistryClient } from "../oci/client/index.ts";
import { flattenLayers } from "../oci/flatten.ts";
import { decompressLayer } from "../oci/layer.ts";
import { type Descriptor, isImageIndex, parseManifest } from "../oci/manifest.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import { checkExtensionTree, type ExtensionManifest } from "../talos/extension.ts";
import {
  type ExtensionSourceOptions,
  problemsError,
  type ReportedProblem,
  validateExtensionSource,
} from "./extension-build.ts";
import { type ExtensionArch, extensionArches } from "./extension-source.ts";

export interface ValidateExtensionOptions extends ExtensionSourceOptions {
  /** Needed for an image reference. */
  client?: RegistryClient;
  signal?: AbortSignal;
}

export interface ExtensionValidation {
  /** The folder, or the image reference with its digest. */
  subject: string;
  name: string;
  version: string;
  talosVersion: string;
  arches: ExtensionArch[];
}

/** Most layers an extension image may have (upstream's have one). */
const maxLayers = 16;
/** Bounds on what a pulled extension may unpack to. */
const flattenLimits = { maxTotalBytes: 8 * 1024 ** 3, maxEntries: 500_000 };

async function isDirectory(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** Validates a folder or an image; throws every problem at once. */
export async function validateExtension(
  target: string,
  options: ValidateExtensionOptions,
): Promise<ExtensionValidation> {
  if (await isDirectory(target)) {
    const { manifest, talosVersion, arches } = await validateExtensionSource(target, options);
    return { subject: target, name: manifest.metadata.name, version: manifest.metadata.version, talosVersion, arches };
  }
  if (options.talosVersion === undefined) throw badRequest("validating an image needs --talos-version");
  if (options.client === undefined) throw badRequest(`${target}: not a folder, and no registry client for an image`);
  const talosVersion = options.talosVersion;
  const ref = parseReference(target);
  const repository = options.client.repository(ref);
  const top = await repository.getManifest(ref.digest ?? ref.tag ?? "latest");
  const subject = `${formatReference({ ...ref, digest: undefined })}@${top.digest}`;
  const { manifest: parsed } = parseManifest(top.body, top.mediaType);
  const children: { arch: ExtensionArch; descriptor?: Descriptor }[] = [];
  if (isImageIndex(parsed)) {
    for (const d of parsed.manifests) {
      const arch = d.platform?.architecture as ExtensionArch;
      if (d.platform?.os !== "linux" || !extensionArches.includes(arch)) continue;
      if (options.arches !== undefined && !options.arches.includes(arch)) continue;
      children.push({ arch, descriptor: d });
    }
    if (children.length === 0) throw badRequest(`${subject}: the index lists no linux/amd64 or linux/arm64 image`);
  } else children.push({ arch: options.arches?.[0] ?? "amd64" });

  const problems: ReportedProblem[] = [];
  const manifests: ExtensionManifest[] = [];
  const work = await mkdtemp(join(tmpdir(), "extension-validate-"));
  try {
    for (const [i, child] of children.entries()) {
      options.signal?.throwIfAborted();
      const record = child.descriptor ? await repository.getManifest(child.descriptor.digest) : top;
      const { manifest } = parseManifest(record.body, record.mediaType);
      if (isImageIndex(manifest)) throw badRequest(`${subject}: an index inside an index`);
      if (manifest.layers.length > maxLayers)
        throw badRequest(`${subject}: ${manifest.layers.length} layers (at most ${maxLayers})`);
      const tree = join(work, String(i));
      await flattenLayers(
        manifest.layers.map(
          (layer) => async () => decompressLayer((await repository.getBlob(layer.digest)).stream, layer.mediaType),
        ),
        tree,
        flattenLimits,
      );
      const label = children.length > 1 ? `${subject} (linux/${child.arch})` : subject;
      const checked = await checkExtensionTree(tree, { talosVersion, strict: true });
      for (const p of checked.problems) problems.push({ file: `${label} ${p.path}`, rule: p.rule, message: p.message });
      if (checked.manifest) manifests.push(checked.manifest);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const first = manifests[0];
  if (problems.length > 0 || first === undefined) throw problemsError(`extension ${subject}`, problems);
  return {
    subject,
    name: first.metadata.name,
    version: first.metadata.version,
    talosVersion,
    arches: children.map((c) => c.arch),
  };
}
