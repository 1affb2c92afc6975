// `boot-assets inspect | tags | copy`: look at and move images between registries and OCI image layouts.
// An image is named `oci:DIR[:REF]` (an OCI image layout, as skopeo spells it) or by a registry reference
// (`HOST/REPO[:TAG][@DIGEST]`, optionally prefixed `docker://`). The work happens in src/oci/copy.ts.

import { type Command, Option } from "commander";
import { badRequest, unsupported } from "../errors.ts";
import type { RegistryClient } from "../oci/client/index.ts";
import {
  copyImage,
  fetchChildManifest,
  fetchManifest,
  type ImageDestination,
  type ImageSource,
  platformDescriptor,
} from "../oci/copy.ts";
import type { Digest } from "../oci/digest.ts";
import { OciLayout } from "../oci/layout.ts";
import { OciLayoutImageStore } from "../oci/layout-image.ts";
import { type Descriptor, isImageIndex, parseManifest } from "../oci/manifest.ts";
import { formatPlatform, type PlatformSpec, parsePlatform } from "../oci/platform.ts";
import {
  formatReference,
  type ImageReference,
  manifestReferenceOf,
  parseReference,
  validateTag,
} from "../oci/reference.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";

/** An image named on the command line. */
type ImageLocation =
  | { kind: "layout"; dir: string; refName?: string; text: string }
  | { kind: "registry"; ref: ImageReference; text: string };

/** Transports skopeo knows that this tool does not: named so they are not mistaken for Docker Hub names. */
const otherTransports = ["docker-archive", "oci-archive", "docker-daemon", "containers-storage", "dir", "tarball"];

export function parseImageLocation(text: string): ImageLocation {
  if (text.startsWith("oci:")) {
    const rest = text.slice("oci:".length);
    // Like skopeo: the directory ends at the first ":" (a ref name may itself contain ":").
    const colon = rest.indexOf(":");
    const dir = colon === -1 ? rest : rest.slice(0, colon);
    const refName = colon === -1 ? undefined : rest.slice(colon + 1);
    if (dir === "") throw badRequest(`invalid image "${text}": oci: needs a directory (oci:DIR[:REF])`);
    if (refName === "") throw badRequest(`invalid image "${text}": empty reference after the directory`);
    return refName === undefined ? { kind: "layout", dir, text } : { kind: "layout", dir, refName, text };
  }
  const transport = /^([a-z-]+):(?!\/\/)/.exec(text)?.[1];
  if (transport !== undefined && otherTransports.includes(transport))
    throw unsupported(`image "${text}": the ${transport}: transport is not supported; use oci:DIR[:REF] or a registry`);
  const name = text.startsWith("docker://") ? text.slice("docker://".length) : text;
  return { kind: "registry", ref: parseReference(name), text };
}

function registriesOf(locations: readonly ImageLocation[]): string[] {
  return locations.flatMap((l) => (l.kind === "registry" ? [l.ref.registry] : []));
}

/** Opens a registry client only when some location is on a registry; closes it after `work`. */
async function withClient<T>(
  options: RegistryClientCliOptions,
  locations: readonly ImageLocation[],
  work: (client: RegistryClient | undefined) => Promise<T>,
): Promise<T> {
  const registries = registriesOf(locations);
  // Built even without registries, so a bad --ca-file is refused whatever the images are.
  const client = registryClientFromOptions(options, registries);
  try {
    return await work(registries.length > 0 ? client : undefined);
  } finally {
    await client.close();
  }
}

interface OpenedSource {
  source: ImageSource;
  /** Tag/ref name or digest of the manifest meant. */
  reference: string;
  /** The tag it was named by, if any: a destination without one gets it. */
  tag?: string;
  /** For messages: the image as fully named. */
  name: string;
}

async function openSource(location: ImageLocation, client: RegistryClient | undefined): Promise<OpenedSource> {
  if (location.kind === "layout") {
    const store = new OciLayoutImageStore(await OciLayout.open(location.dir));
    const reference = location.refName ?? (await store.defaultReference());
    const opened: OpenedSource = { source: store, reference, name: `oci:${location.dir}:${reference}` };
    if (location.refName !== undefined) opened.tag = location.refName;
    return opened;
  }
  const { ref } = location;
  const repository = (client as RegistryClient).repository(ref);
  const opened: OpenedSource = { source: repository, reference: manifestReferenceOf(ref), name: formatReference(ref) };
  if (ref.tag !== undefined) opened.tag = ref.tag;
  return opened;
}

interface OpenedDestination {
  dest: ImageDestination;
  tag?: string;
  expectedDigest?: Digest;
  name: string;
}

/** A destination without tag or digest takes the source's tag (or "latest"), so `copy A:v1 oci:out` keeps v1. */
async function openDestination(
  location: ImageLocation,
  client: RegistryClient | undefined,
  sourceTag: string | undefined,
): Promise<OpenedDestination> {
  if (location.kind === "layout") {
    const store = new OciLayoutImageStore(await OciLayout.create(location.dir));
    const tag = location.refName ?? sourceTag ?? "latest";
    return { dest: store, tag, name: `oci:${location.dir}:${tag}` };
  }
  const { ref } = location;
  const dest = (client as RegistryClient).repository(ref);
  const opened: OpenedDestination = { dest, name: formatReference(ref) };
  if (ref.digest !== undefined) opened.expectedDigest = ref.digest;
  if (ref.tag !== undefined) opened.tag = ref.tag;
  else if (ref.digest === undefined) opened.tag = validateTag(sourceTag ?? "latest");
  if (ref.digest === undefined) opened.name = formatReference({ ...ref, tag: opened.tag as string });
  return opened;
}

function platformOption(): Option {
  return new Option("--platform <os/arch[/variant]>", "platform to select from an index, e.g. linux/arm64");
}

// ---- inspect -------------------------------------------------------------------------------------------

interface InspectOptions extends RegistryClientCliOptions {
  platform?: string;
  raw?: boolean;
  json?: boolean;
}

interface InspectReport {
  reference: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** With --platform on an index: the index the image was selected from. */
  index?: { digest: Digest; mediaType: string; size: number };
  platform?: string;
  manifests?: Array<{ platform?: string; digest: Digest; mediaType: string; size: number }>;
  config?: Descriptor;
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

function formatInspect(report: InspectReport): string {
  const lines = [
    `Reference:   ${report.reference}`,
    `Digest:      ${report.digest}`,
    `Media type:  ${report.mediaType}`,
    `Size:        ${report.size} bytes`,
  ];
  if (report.index)
    lines.push(`Index:       ${report.index.digest} (${report.index.mediaType}), selected ${report.platform}`);
  if (report.manifests) {
    lines.push(`Manifests:   ${report.manifests.length}`);
    for (const m of report.manifests)
      lines.push(`  ${(m.platform ?? "-").padEnd(16)} ${m.digest}  ${m.mediaType}  ${m.size} bytes`);
  }
  if (report.config)
    lines.push(`Config:      ${report.config.digest} (${report.config.mediaType}, ${report.config.size} bytes)`);
  if (report.layers) {
    const total = report.layers.reduce((sum, l) => sum + l.size, 0);
    lines.push(`Layers:      ${report.layers.length} (${total} bytes)`);
    for (const l of report.layers) lines.push(`  ${l.digest}  ${l.mediaType}  ${l.size} bytes`);
  }
  for (const [key, value] of Object.entries(report.annotations ?? {})) lines.push(`Annotation:  ${key}=${value}`);
  return `${lines.join("\n")}\n`;
}

async function inspect(image: string, options: InspectOptions): Promise<void> {
  if (options.raw && options.json) throw badRequest("--raw and --json exclude each other");
  const platform: PlatformSpec | undefined = options.platform ? parsePlatform(options.platform) : undefined;
  const location = parseImageLocation(image);
  await withClient(options, [location], async (client) => {
    const { source, reference, name } = await openSource(location, client);
    let record = await fetchManifest(source, reference);
    let manifest = parseManifest(record.body, record.mediaType).manifest;
    let index: InspectReport["index"];
    if (platform !== undefined && isImageIndex(manifest)) {
      index = { digest: record.digest, mediaType: record.mediaType, size: record.body.length };
      record = await fetchChildManifest(source, platformDescriptor(manifest, platform, name));
      manifest = parseManifest(record.body, record.mediaType).manifest;
    }
    if (options.raw) {
      // The exact bytes the digest is computed over: no newline, no re-serialization.
      process.stdout.write(record.body);
      return;
    }
    const report: InspectReport = {
      reference: name,
      digest: record.digest,
      mediaType: record.mediaType,
      size: record.body.length,
    };
    if (index && platform) {
      report.index = index;
      report.platform = formatPlatform(platform);
    }
    if (isImageIndex(manifest)) {
      report.manifests = manifest.manifests.map((d) => ({
        ...(d.platform ? { platform: formatPlatform(d.platform) } : {}),
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size,
      }));
    } else {
      report.config = manifest.config;
      report.layers = manifest.layers;
    }
    if (manifest.annotations) report.annotations = manifest.annotations;
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report));
  });
}

// ---- tags ----------------------------------------------------------------------------------------------

async function tags(repository: string, options: RegistryClientCliOptions): Promise<void> {
  const location = parseImageLocation(repository);
  if (location.kind === "registry" && (location.ref.tag !== undefined || location.ref.digest !== undefined))
    throw badRequest(`"${repository}" names an image; tags takes a repository (HOST/REPO) without tag or digest`);
  await withClient(options, [location], async (client) => {
    const listed =
      location.kind === "layout"
        ? await new OciLayoutImageStore(await OciLayout.open(location.dir)).listTags()
        : await (client as RegistryClient).repository(location.ref).listTags();
    if (listed.length > 0) process.stdout.write(`${listed.join("\n")}\n`);
  });
}

// ---- copy ----------------------------------------------------------------------------------------------

interface CopyCliOptions extends RegistryClientCliOptions {
  all?: boolean;
  platform?: string;
}

async function copy(sourceText: string, destText: string, options: CopyCliOptions): Promise<void> {
  const platform = options.platform ? parsePlatform(options.platform) : undefined;
  const sourceLocation = parseImageLocation(sourceText);
  const destLocation = parseImageLocation(destText);
  await withClient(options, [sourceLocation, destLocation], async (client) => {
    const from = await openSource(sourceLocation, client);
    const to = await openDestination(destLocation, client, from.tag);
    const sameRegistry =
      sourceLocation.kind === "registry" &&
      destLocation.kind === "registry" &&
      sourceLocation.ref.registry === destLocation.ref.registry &&
      sourceLocation.ref.repository !== destLocation.ref.repository;
    const result = await copyImage(from.source, to.dest, {
      reference: from.reference,
      ...(to.tag !== undefined ? { tag: to.tag } : {}),
      ...(to.expectedDigest !== undefined ? { expectedDigest: to.expectedDigest } : {}),
      ...(options.all ? { all: true } : {}),
      ...(platform ? { platform } : {}),
      // On one registry, blobs are mounted from the source repository instead of sent again.
      ...(sameRegistry ? { mountFrom: sourceLocation.ref.repository } : {}),
    });
    process.stdout.write(`${result.digest}\n`);
    process.stderr.write(
      `copied ${from.name} to ${to.name}: ${result.manifests} manifest(s), ${result.blobsCopied} blob(s) ` +
        `(${result.bytesCopied} bytes) transferred, ${result.blobsSkipped} already present\n`,
    );
  });
}

export function registerImageCommands(program: Command): void {
  addRegistryClientOptions(
    program
      .command("inspect")
      .description("Show an image's digest, media type and size, and an index's platforms")
      .argument("<image>", "HOST/REPO[:TAG|@DIGEST], docker://…, or oci:DIR[:REF]")
      .addOption(platformOption())
      .option("--raw", "print the exact manifest bytes (with --platform, the selected image's)")
      .option("--json", "print the details as JSON"),
  ).action((image: string, options: InspectOptions) => inspect(image, options));

  addRegistryClientOptions(
    program
      .command("tags")
      .description("List a repository's tags, one per line")
      .argument("<repository>", "HOST/REPO, docker://HOST/REPO, or oci:DIR (its ref names)"),
  ).action((repository: string, options: RegistryClientCliOptions) => tags(repository, options));

  addRegistryClientOptions(
    program
      .command("copy")
      .description("Copy an image and its blobs between registries and OCI layouts, keeping digests; prints the digest")
      .argument("<source>", "HOST/REPO[:TAG|@DIGEST], docker://…, or oci:DIR[:REF]")
      .argument("<destination>", "same forms; without a tag it gets the source's tag (or latest)")
      .addOption(new Option("--all", "copy an index with every platform's image").conflicts("platform"))
      .addOption(platformOption().default(undefined, "linux/amd64")),
  ).action((source: string, destination: string, options: CopyCliOptions) => copy(source, destination, options));
}
