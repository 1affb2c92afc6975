// The imager's inputs for one Talos version, architecture and schematic, fetched the one way source images
// are fetched: resolve → verify → pull by that digest → unpack into the local content cache.
//
//   imager          `<imager>:<v>`, flattened (its usr/install/<arch>/ boot assets)
//   installer base  `installer-base:<v>` from 1.10, `installer:<v>` before (rulesFor), kept as layer blobs
//   extensions      each name of the schematic looked up in the version's catalog (pulled by the catalog's
//                   digest), flattened, then validated for the version (manifest, constraint, paths, modes)
//
// Every signature is verified before anything is pulled, and content is read only through the VerifiedImage
// (by digest, re-hashed). Layers are downloaded to files first and checked against their digests before a
// single byte is unpacked, so a tampered blob fails as Integrity and leaves nothing in the cache. What is
// only needed by some outputs is only fetched for them (cmdline needs nothing; kernel only the imager).

import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, badRequest, integrity, isAppError, upstream } from "../../errors.ts";
import type { ImagerInputs, InstallerBaseInput, LocalExtension } from "../../imager/inputs.ts";
import type { BuildKind, ProfileExtension } from "../../imager/profile.ts";
import type { Digest } from "../../oci/digest.ts";
import { type FlattenLimits, flattenLayers } from "../../oci/flatten.ts";
import { decompressLayer } from "../../oci/layer.ts";
import { type Descriptor, type ImageManifest, isImageIndex } from "../../oci/manifest.ts";
import { describeSigner } from "../../signing/sigstore-checks.ts";
import type { SignatureVerifier, VerifiedImage } from "../../signing/verify.ts";
import { validateExtensionTree } from "../../talos/extension.ts";
import { overlayUnavailableMessage, overlayUnsupportedMessage, schematicOverlay } from "../../talos/overlay.ts";
import type { Arch } from "../../talos/platforms.ts";
import type { GoValue, Schematic } from "../../talos/schematic.ts";
import { rulesFor } from "../../talos/version-rules.ts";
import { mapLimited, SingleFlight } from "../../util/concurrency.ts";
import type { CatalogService } from "./catalogs.ts";
import type { ContentLease, SourceContentCache } from "./content-cache.ts";

/** Where the imager and installer images come from: full names without tag (as FactoryConfig.images). */
/**
 * A source image this factory will not use (over a limit, a hostile layer): the image's fault, not the caller's,
 * so 502 as any broken source, with the image and the rule in the message.
 */
function sourceRefused(message: string, cause?: unknown): AppError {
  return upstream(message, cause, "SOURCE_REFUSED");
}

export interface ImagerSourceImages {
  imager: string;
  installerBase: string;
  installer: string;
}

export interface SourceImageLimits {
  maxLayers: number;
  /** Sum of an image's compressed layer sizes, as its manifest declares them. */
  maxCompressedBytes: number;
  maxConfigBytes: number;
  /** While unpacking (uncompressed). */
  flatten: FlattenLimits;
  /**
   * Decompression bombs: an image unpacks to at most `ratio` times its compressed layers' size, or `floorBytes`,
   * whichever is larger (and never more than `flatten.maxTotalBytes`). Real images expand a few times (tar of
   * binaries and firmware); gigabytes of zeros expand a thousandfold (gzip) or more (zstd). Checked against
   * each entry's header, so nothing of an oversized file is decompressed or written.
   */
  maxExpansion: { ratio: number; floorBytes: number };
}

export const defaultSourceImageLimits: SourceImageLimits = {
  maxLayers: 128,
  maxCompressedBytes: 16 * 1024 ** 3,
  maxConfigBytes: 1024 * 1024,
  flatten: { maxTotalBytes: 32 * 1024 ** 3, maxEntries: 400_000 },
  maxExpansion: { ratio: 100, floorBytes: 512 * 1024 ** 2 },
};

/** The flatten limits for an image whose layers total `compressed` bytes (see maxExpansion). */
export function unpackLimits(limits: SourceImageLimits, compressed: number): FlattenLimits {
  const configured = limits.flatten.maxTotalBytes ?? 16 * 1024 ** 3;
  const expansion = Math.max(limits.maxExpansion.floorBytes, limits.maxExpansion.ratio * compressed);
  return { ...limits.flatten, maxTotalBytes: Math.min(configured, expansion) };
}

export type SourceRole = "imager" | "installer" | "extension" | "overlay" | "talosctl";

/** What the resolver is doing, for progress displays. `image` is the reference as resolved from. */
export type SourceProgress =
  | { step: "verify"; role: SourceRole; image: string }
  | { step: "verified"; role: SourceRole; image: string; pinned: string; signers: string[]; rejected: string[] }
  | { step: "cached"; role: SourceRole; image: string; pinned: string }
  | { step: "pull"; role: SourceRole; image: string; bytes: number; total: number }
  | { step: "unpack"; role: SourceRole; image: string }
  | { step: "ready"; role: SourceRole; image: string; pinned: string }
  | { step: "discard"; role: SourceRole; image: string; reason: string };

export interface ResolveImagerInputsRequest {
  /** Talos version tag with its `v`. */
  talosVersion: string;
  arch: Arch;
  schematic: Schematic;
  /** The outputs to be built: decide what is fetched. */
  kinds: readonly BuildKind[];
  progress?: (event: SourceProgress) => void;
  signal?: AbortSignal;
}

/** The source images of a request, verified and pinned to their digests, not yet pulled. */
export interface PinnedImagerInputs {
  /** For `createBuildProfile`: the digests the inputs are pulled by. */
  sources: {
    imager: string;
    installerBase?: string;
    extensions: ProfileExtension[];
    overlay?: { image: string; digest: string };
  };
  /** Pulls them (by digest, into the content cache) for a build. */
  fetch(options?: { progress?: (event: SourceProgress) => void; signal?: AbortSignal }): Promise<FetchedImagerInputs>;
}

export interface FetchedImagerInputs {
  /** For `build`; `imagerDir` is "" when only cmdline outputs were asked for (they read nothing). */
  inputs: ImagerInputs;
  /** Lets the cache evict the entries again; call when the builds are done. */
  release(): void;
}

export interface ResolvedImagerInputs extends FetchedImagerInputs {
  sources: PinnedImagerInputs["sources"];
}

export interface ImagerInputResolverOptions {
  verifier: SignatureVerifier;
  catalogs: Pick<CatalogService, "extensionSources" | "overlaySources">;
  images: ImagerSourceImages;
  cache: SourceContentCache;
  limits?: SourceImageLimits;
  /** Images pulled at once. Default 3. */
  concurrency?: number;
  /** The versions on offer, named when the imager has no tag for the version asked for. */
  versions?: { names(): Promise<string[]> };
  /**
   * How long a verified tag is trusted without asking the registry again (default 60 s; 0: every time).
   * Within it, requests for assets of one release verify its images once, however many arrive at once.
   */
  verifiedTtlMs?: number;
}

/** Verified tags remembered at most (the least recently verified go first). */
const maxRememberedVerifications = 1024;

/** Kept with an installer entry: `content/config.json`, and `content/layers/<i>` for each of these. */
interface InstallerMeta {
  layers: { digest: Digest; size: number; mediaType: string }[];
}

interface Wanted {
  role: SourceRole;
  reference: string;
  /** Extension name (repository path) for extensions. */
  name?: string;
}

const extensionKinds: readonly BuildKind[] = ["initramfs", "uki", "installer", "iso", "disk"];
/** The outputs an overlay changes (see imager/profile.ts). */
const overlayKinds: readonly BuildKind[] = ["uki", "installer", "iso", "disk"];

/** The build host's architecture: the overlay's installer runs here (upstream: runtime.GOARCH). */
export function hostArch(): Arch {
  return process.arch === "arm64" ? "arm64" : "amd64";
}

function counting(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

/** The error with the image named first; a failed signature check says so. */
function aboutImage(reference: string, err: unknown): unknown {
  if (!isAppError(err)) return err;
  const message =
    err.kind === "Integrity"
      ? `signature verification failed for ${reference}: ${err.message}`
      : `${reference}: ${err.message}`;
  return new AppError(err.kind, message, { code: err.code, cause: err });
}

export class ImagerInputResolver {
  readonly #options: ImagerInputResolverOptions;
  readonly #limits: SourceImageLimits;

  readonly #verifications = new SingleFlight<string, VerifiedImage>();
  readonly #verified = new Map<string, { image: VerifiedImage; until: number }>();

  /** The tag resolved and its signature verified, or a verification of it made within the TTL. */
  async #verify(reference: string): Promise<VerifiedImage> {
    const ttl = this.#options.verifiedTtlMs ?? 60_000;
    const known = this.#verified.get(reference);
    if (known !== undefined && known.until > Date.now()) return known.image;
    return this.#verifications.run(reference, async () => {
      const image = await this.#options.verifier.verify(reference);
      if (ttl > 0) {
        this.#verified.delete(reference);
        this.#verified.set(reference, { image, until: Date.now() + ttl });
        if (this.#verified.size > maxRememberedVerifications) {
          const oldest = this.#verified.keys().next().value;
          if (oldest !== undefined) this.#verified.delete(oldest);
        }
      }
      return image;
    });
  }

  constructor(options: ImagerInputResolverOptions) {
    this.#options = options;
    this.#limits = options.limits ?? defaultSourceImageLimits;
  }

  /** The content cache images are pulled into. */
  get cache(): SourceContentCache {
    return this.#options.cache;
  }

  /** No imager for the version: say so, with the versions that are there (when they can be read). */
  async #unknownVersion(talosVersion: string, err: AppError): Promise<AppError> {
    let available = "";
    try {
      const names = (await this.#options.versions?.names()) ?? [];
      available = names.length > 0 ? `; available: ${names.join(", ")}` : "; no versions are available";
    } catch {
      // The listing failing too says nothing more than the original error.
    }
    return new AppError(
      "NotFound",
      `Talos version ${talosVersion} is not available from ${this.#options.images.imager}${available}`,
      { code: "VERSION_UNKNOWN", cause: err },
    );
  }

  /**
   * Another source image (e.g. `talosctl-all`) the same way: its tag verified (within the TTL), then pulled by
   * that digest for linux/`arch` and flattened into the content cache. Release the lease when done.
   */
  async pullTree(
    reference: string,
    role: SourceRole,
    options: { arch?: Arch; signal?: AbortSignal } = {},
  ): Promise<{ image: VerifiedImage; lease: ContentLease<unknown> }> {
    let image: VerifiedImage;
    try {
      image = await this.#verify(reference);
    } catch (err) {
      throw aboutImage(reference, err);
    }
    try {
      const lease = await this.#pullTree({ role, reference, image }, options.arch ?? "amd64", () => {}, options.signal);
      return { image, lease };
    } catch (err) {
      // The tag is there and verified: anything missing now (a platform, a blob) is the source's fault.
      if (isAppError(err, "NotFound"))
        throw new AppError("Upstream", `${image.pinned}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** Pins and pulls: the sources verified, then fetched. */
  async resolve(request: ResolveImagerInputsRequest): Promise<ResolvedImagerInputs> {
    const pinned = await this.pin(request);
    const fetched = await pinned.fetch({
      ...(request.progress !== undefined ? { progress: request.progress } : {}),
      ...(request.signal !== undefined ? { signal: request.signal } : {}),
    });
    return { ...fetched, sources: pinned.sources };
  }

  /**
   * Resolves every source image the request needs and verifies its signature, pinning it to a digest; pulls
   * nothing. The digests decide the build profile, so a cached asset is found without pulling anything.
   */
  async pin(request: ResolveImagerInputsRequest): Promise<PinnedImagerInputs> {
    const { talosVersion, kinds, signal } = request;
    const progress = request.progress ?? (() => {});
    const rules = rulesFor(talosVersion);
    const needsImager = kinds.some((k) => k !== "cmdline");
    const needsExtensions = kinds.some((k) => extensionKinds.includes(k));
    const needsInstaller = kinds.includes("installer");
    const { images } = this.#options;

    const wanted: Wanted[] = [{ role: "imager", reference: `${images.imager}:${talosVersion}` }];
    if (needsInstaller) {
      const base = rules.installerImage === "installer-base" ? images.installerBase : images.installer;
      wanted.push({ role: "installer", reference: `${base}:${talosVersion}` });
    }
    const names = request.schematic.customization.systemExtensions?.officialExtensions ?? [];
    if (needsExtensions && names.length > 0) {
      const catalog = await this.#options.catalogs.extensionSources(talosVersion);
      for (const name of names) {
        const found = catalog.find((e) => e.name === name);
        if (found === undefined)
          throw badRequest(
            `extension "${name}" is not available for Talos version ${talosVersion}`,
            "EXTENSION_UNKNOWN",
          );
        wanted.push({ role: "extension", reference: found.pull, name });
      }
    }

    // The schematic's overlay (image-factory EnhanceFromSchematic): refused before 1.7 for every output;
    // looked up by name in the version's catalog for the outputs that take extensions; pulled for those it changes.
    const overlay = schematicOverlay(request.schematic);
    let overlayImage: string | undefined;
    if (overlay !== undefined) {
      if (!rules.overlays) throw badRequest(overlayUnsupportedMessage(talosVersion), "OVERLAY_UNSUPPORTED");
      if (needsExtensions) {
        const catalog = await this.#options.catalogs.overlaySources(talosVersion);
        const found = catalog.find((o) => o.name === overlay.name);
        if (found === undefined) throw badRequest(overlayUnavailableMessage(talosVersion), "OVERLAY_UNKNOWN");
        if (kinds.some((k) => overlayKinds.includes(k))) {
          wanted.push({ role: "overlay", reference: found.pull, name: overlay.name });
          overlayImage = found.image;
        }
      }
    }

    // Every signature first: nothing is pulled from a release that is not entirely trusted.
    const verified = await Promise.all(
      wanted.map(async (item) => {
        signal?.throwIfAborted();
        progress({ step: "verify", role: item.role, image: item.reference });
        let image: VerifiedImage;
        try {
          image = await this.#verify(item.reference);
        } catch (err) {
          if (item.role === "imager" && isAppError(err, "NotFound"))
            throw await this.#unknownVersion(talosVersion, err);
          throw aboutImage(item.reference, err);
        }
        progress({
          step: "verified",
          role: item.role,
          image: item.reference,
          pinned: image.pinned,
          signers: image.verified ? image.signatures.map((s) => `${s.kind} ${describeSigner(s.signer)}`) : [],
          rejected: [...image.rejected],
        });
        return { ...item, image };
      }),
    );

    const imager = verified[0] as (typeof verified)[number];
    const installer = verified.find((item) => item.role === "installer");
    const extensionItems = verified.filter((item) => item.role === "extension");
    const overlayItem = verified.find((item) => item.role === "overlay");
    return {
      sources: {
        imager: imager.image.digest,
        ...(installer === undefined ? {} : { installerBase: installer.image.digest }),
        extensions: extensionItems.map((item) => ({ name: item.name as string, digest: item.image.digest })),
        ...(overlayItem === undefined || overlayImage === undefined
          ? {}
          : { overlay: { image: overlayImage, digest: overlayItem.image.digest } }),
      },
      fetch: (options = {}) =>
        this.#fetch(
          needsImager ? verified : verified.filter((item) => item.role !== "imager"),
          {
            talosVersion,
            arch: request.arch,
            ...(overlay === undefined || overlayImage === undefined
              ? {}
              : {
                  overlay: {
                    image: overlayImage,
                    ...(overlay.options === undefined ? {} : { options: overlay.options }),
                  },
                }),
          },
          options.progress ?? (() => {}),
          options.signal,
        ),
    };
  }

  /** Pulls the pinned images into the content cache and checks the extensions' manifests. */
  async #fetch(
    verified: readonly (Wanted & { image: VerifiedImage })[],
    target: { talosVersion: string; arch: Arch; overlay?: { image: string; options?: Array<[string, GoValue]> } },
    progress: (event: SourceProgress) => void,
    signal: AbortSignal | undefined,
  ): Promise<FetchedImagerInputs> {
    const { talosVersion, arch } = target;
    const leases: ContentLease<unknown>[] = [];
    const release = () => {
      for (const lease of leases) lease.release();
    };
    try {
      // The overlay twice when the asset's architecture is not the host's: its installer runs here.
      const jobs = verified.flatMap((item) =>
        item.role === "overlay" && hostArch() !== arch
          ? [
              { ...item, pullArch: hostArch() },
              { ...item, pullArch: arch },
            ]
          : [{ ...item, pullArch: item.role === "overlay" ? hostArch() : arch }],
      );
      const pulled = await mapLimited(jobs, this.#options.concurrency ?? 3, async (item) => {
        signal?.throwIfAborted();
        let lease: ContentLease<unknown>;
        try {
          lease =
            item.role === "installer"
              ? await this.#pullLayers(item, item.pullArch, progress, signal)
              : await this.#pullTree(item, item.pullArch, progress, signal);
        } catch (err) {
          // A verified overlay image without the platform asked for is the source's fault.
          if (item.role === "overlay" && isAppError(err, "NotFound"))
            throw new AppError("Upstream", `${item.image.pinned}: ${err.message}`, { cause: err });
          throw err;
        }
        leases.push(lease);
        progress({ step: "ready", role: item.role, image: item.reference, pinned: item.image.pinned });
        return { ...item, lease };
      });

      const installer = pulled.find((p) => p.role === "installer");
      const extensions: LocalExtension[] = [];
      for (const item of pulled.filter((p) => p.role === "extension")) {
        signal?.throwIfAborted();
        // Refused here (a bad manifest, an incompatible version), before any build starts; content problems
        // are only warned about, by the imager as it stages them.
        await validateExtensionTree(item.lease.dir, { talosVersion, name: item.name, contents: "warn" });
        const meta = (item.lease as ContentLease<TreeMeta>).meta;
        extensions.push({
          name: item.name as string,
          dir: item.lease.dir,
          digest: item.image.digest,
          selinuxLabels: new Map(Object.entries(meta.selinuxLabels)),
        });
      }
      const overlayHost = pulled.find((p) => p.role === "overlay" && p.pullArch === hostArch());
      const overlayTarget = pulled.find((p) => p.role === "overlay" && p.pullArch === arch);
      return {
        inputs: {
          imagerDir: pulled.find((p) => p.role === "imager")?.lease.dir ?? "",
          ...(overlayHost === undefined || overlayTarget === undefined || target.overlay === undefined
            ? {}
            : {
                overlay: {
                  name: overlayHost.name as string,
                  image: target.overlay.image,
                  digest: overlayHost.image.digest,
                  ...(target.overlay.options === undefined ? {} : { options: target.overlay.options }),
                  dir: overlayHost.lease.dir,
                  targetDir: overlayTarget.lease.dir,
                },
              }),
          ...(installer === undefined
            ? {}
            : { installerBase: await installerInput(installer.lease as ContentLease<InstallerMeta>) }),
          extensions,
        },
        release,
      };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** The image manifest for the architecture, its limits checked. */
  async #platformManifest(image: VerifiedImage, arch: Arch): Promise<{ digest: Digest; manifest: ImageManifest }> {
    const { record, manifest } = await image.platformManifest({ os: "linux", architecture: arch });
    if (isImageIndex(manifest)) throw sourceRefused(`${image.pinned}: an index nested in an index is not an image`);
    const limits = this.#limits;
    if (manifest.layers.length > limits.maxLayers)
      throw sourceRefused(`${image.pinned}: more than ${limits.maxLayers} layers`);
    const compressed = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
    if (compressed > limits.maxCompressedBytes)
      throw sourceRefused(`${image.pinned}: layers total ${compressed} bytes, over ${limits.maxCompressedBytes}`);
    return { digest: record.digest as Digest, manifest };
  }

  /** Downloads the layers into `dir`, each checked against its digest; reports bytes as they arrive. */
  async #download(
    item: Wanted & { image: VerifiedImage },
    layers: readonly Descriptor[],
    dir: string,
    progress: (event: SourceProgress) => void,
    signal: AbortSignal | undefined,
  ): Promise<string[]> {
    await mkdir(dir, { recursive: true });
    const total = layers.reduce((sum, layer) => sum + layer.size, 0);
    let bytes = 0;
    const report = () => progress({ step: "pull", role: item.role, image: item.reference, bytes, total });
    report();
    const files: string[] = [];
    for (const [index, layer] of layers.entries()) {
      const file = join(dir, String(index));
      const blob = await item.image.blob(layer);
      await pipeline(
        blob.stream,
        counting((n) => {
          bytes += n;
          report();
        }),
        createWriteStream(file, { flags: "wx" }),
        ...(signal === undefined ? [] : [{ signal }]),
      );
      files.push(file);
    }
    return files;
  }

  async #pullTree(
    item: Wanted & { image: VerifiedImage },
    arch: Arch,
    progress: (event: SourceProgress) => void,
    signal: AbortSignal | undefined,
  ): Promise<ContentLease<TreeMeta>> {
    const { digest, manifest } = await this.#platformManifest(item.image, arch);
    const lease = await this.#options.cache.obtain<TreeMeta>(
      digest,
      "tree",
      async (dir) => {
        const scratch = join(dirname(dir), "blobs");
        try {
          const files = await this.#download(item, manifest.layers, scratch, progress, signal);
          progress({ step: "unpack", role: item.role, image: item.reference });
          const compressed = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
          let stats: Awaited<ReturnType<typeof flattenLayers>>;
          try {
            stats = await flattenLayers(
              files.map(
                (file, i) => async () =>
                  decompressLayer(createReadStream(file), (manifest.layers[i] as Descriptor).mediaType),
              ),
              dir,
              unpackLimits(this.#limits, compressed),
            );
          } catch (err) {
            // A refused entry (traversal, links out, devices, bombs) is the image's, not the caller's (502): say
            // which image, which rule, and why the size bound is what it is.
            if (!isAppError(err)) throw err;
            const { ratio, floorBytes } = this.#limits.maxExpansion;
            const bound = /image content exceeds/.test(err.message)
              ? ` (at most ${ratio}× its ${compressed} compressed bytes, or ${floorBytes} bytes: a decompression bomb?)`
              : "";
            throw sourceRefused(`${item.image.pinned}: ${err.message}${bound}`, err);
          }
          // Kept with the tree (entry.json, renamed into place with it): the flattened files carry no xattrs.
          const labels = [...stats.selinuxLabels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          return { selinuxLabels: Object.fromEntries(labels) };
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
      },
      {
        onDiscard: (reason) => progress({ step: "discard", role: item.role, image: item.reference, reason }),
        checkMeta: treeMetaProblem,
      },
    );
    if (lease.hit) progress({ step: "cached", role: item.role, image: item.reference, pinned: item.image.pinned });
    return lease;
  }

  async #pullLayers(
    item: Wanted & { image: VerifiedImage },
    arch: Arch,
    progress: (event: SourceProgress) => void,
    signal: AbortSignal | undefined,
  ): Promise<ContentLease<InstallerMeta>> {
    const { digest, manifest } = await this.#platformManifest(item.image, arch);
    if (manifest.config.size > this.#limits.maxConfigBytes)
      throw sourceRefused(`${item.image.pinned}: its config is over ${this.#limits.maxConfigBytes} bytes`);
    const lease = await this.#options.cache.obtain<InstallerMeta>(
      digest,
      "layers",
      async (dir) => {
        await pipeline((await item.image.blob(manifest.config)).stream, createWriteStream(join(dir, "config.json")));
        await this.#download(item, manifest.layers, join(dir, "layers"), progress, signal);
        return {
          layers: manifest.layers.map((layer) => ({
            digest: layer.digest,
            size: layer.size,
            mediaType: layer.mediaType,
          })),
        };
      },
      { onDiscard: (reason) => progress({ step: "discard", role: item.role, image: item.reference, reason }) },
    );
    if (lease.hit) progress({ step: "cached", role: item.role, image: item.reference, pinned: item.image.pinned });
    return lease;
  }
}

/** What a flattened image's cache entry keeps beside the tree: SELinux labels by path (flatten.ts). */
interface TreeMeta {
  selinuxLabels: Record<string, string>;
}

function treeMetaProblem(meta: unknown): string | undefined {
  const labels = (meta as Partial<TreeMeta> | null)?.selinuxLabels;
  if (labels === null || typeof labels !== "object" || Array.isArray(labels))
    return "cached before SELinux labels were kept with flattened images";
  if (!Object.values(labels).every((label) => typeof label === "string")) return "its SELinux labels are not strings";
  return undefined;
}

async function installerInput(lease: ContentLease<InstallerMeta>): Promise<InstallerBaseInput> {
  const meta = lease.meta;
  if (meta === null || typeof meta !== "object" || !Array.isArray(meta.layers))
    throw integrity(`the cached installer entry for ${lease.digest} has no layer list`);
  return {
    config: await readFile(join(lease.dir, "config.json")),
    layers: meta.layers.map((layer, i) => ({
      path: join(lease.dir, "layers", String(i)),
      digest: layer.digest,
      size: layer.size,
      mediaType: layer.mediaType,
    })),
  };
}
