// Installer images for the registry front (`/v2/<image>/<schematic>/manifests/<version>`), as upstream Image
// Factory makes them (internal/frontend/http/registry.go `handleManifest`, `buildInstallImage`,
// `PublishInstallerIndex`):
//   look for `<internal>/<image>/<schematic>:<version>`; present and signed by the cache signing key → its
//   digest. Otherwise build, once however many ask (single-flight on `<image>-<schematic>-<version>`), on a
//   signal detached from the request: per architecture the installer tarball from the asset service, loaded
//   as a Docker schema-2 image; an OCI index of them pushed by digest only; the index signed (cosign legacy
//   `.sig`) and the signature read back and verified; only then the version tag is pushed. A failure
//   anywhere leaves no tag, so nothing half-made is ever answered.

import type { KeyObject } from "node:crypto";
import { badRequest, integrity, isAppError, notFound } from "../../errors.ts";
import type { Digest } from "../../oci/digest.ts";
import { loadDockerArchive } from "../../oci/docker-archive-load.ts";
import type { Descriptor, ImageIndex } from "../../oci/manifest.ts";
import { MediaType } from "../../oci/mediatypes.ts";
import type { Repository } from "../../oci/repository.ts";
import { signImage } from "../../signing/sign.ts";
import type { Signer } from "../../signing/signer.ts";
import { SignatureVerifier } from "../../signing/verify.ts";
import { verificationByKey } from "../../signing/verify-options.ts";
import { type AssetRequest, parseAssetRequest } from "../../talos/asset-path.ts";
import type { Arch } from "../../talos/platforms.ts";
import type { Schematic } from "../../talos/schematic.ts";
import { SingleFlight, waitFor } from "../../util/concurrency.ts";
import type { CachedAsset, GetAssetOptions } from "../assets/service.ts";

/** An installer image name of the registry front (upstream `getRequestedImage`). */
export interface InstallerImageName {
  name: string;
  /** undefined: the default platform (metal). */
  platform: string | undefined;
  secureBoot: boolean;
}

/**
 * `installer`, `installer-secureboot`, `<platform>-installer-secureboot` (tried first), `<platform>-installer`;
 * anything else is a 400 `invalid image: <name>` as upstream answers.
 */
export function parseInstallerImageName(image: string): InstallerImageName {
  if (image === "installer") return { name: image, platform: undefined, secureBoot: false };
  if (image === "installer-secureboot") return { name: image, platform: undefined, secureBoot: true };
  if (image.endsWith("-installer-secureboot"))
    return { name: image, platform: image.slice(0, -"-installer-secureboot".length), secureBoot: true };
  if (image.endsWith("-installer"))
    return { name: image, platform: image.slice(0, -"-installer".length), secureBoot: false };
  throw badRequest(`invalid image: ${image}`, "IMAGE_INVALID");
}

/** The `/image` asset name of one architecture's installer tarball for an image name. */
export function installerAssetPath(image: InstallerImageName, arch: Arch): string {
  const suffix = image.secureBoot ? "-secureboot" : "";
  return image.platform === undefined
    ? `installer-${arch}${suffix}.tar`
    : `${image.platform}-installer-${arch}${suffix}.tar`;
}

export interface InstallerLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface InstallerServiceOptions {
  /** The internal repository of `<image>/<schematic>` (`<installerInternal>/<image>/<schematic>`). */
  repositoryFor(image: string, schematicId: string): Repository;
  /** The signature's docker-reference claim: how users name the image, e.g. `factory.example.com/installer/<id>`. */
  dockerReferenceFor(image: string, schematicId: string): string;
  assets: { get(request: AssetRequest, schematic: Schematic, options?: GetAssetOptions): Promise<CachedAsset> };
  /** The cache signing key (signs installer indexes; its public half verifies them). */
  signingKey: KeyObject;
  signer: Signer;
  versions: { has(tag: string): boolean };
  secureBootEnabled: boolean;
  /** Tried in this order; one whose sources lack that platform is left out of the index. Default amd64, arm64. */
  arches?: readonly Arch[];
  /** A build's time limit. Default 30 minutes. */
  buildTimeoutMs?: number;
  /** How long the signature may take to read back after signing (upstream: 30 s). */
  verifyTimeoutMs?: number;
  /** Aborted at shutdown: stops builds under way. */
  signal?: AbortSignal;
  log: InstallerLog;
  /** An index was built and tagged. */
  onBuilt?: (image: string, version: string, digest: Digest, seconds: number) => void;
  /** An existing signed index answered. */
  onHit?: (image: string, version: string, digest: Digest) => void;
}

export interface InstallerIndex {
  digest: Digest;
  /** true when this call (or the flight it joined) built it. */
  built: boolean;
}

/**
 * The sources have nothing for this architecture: an image index without the platform (the verifier's
 * NotFound), or a single-platform imager image without `usr/install/<arch>/` (the imager's
 * IMAGER_ASSET_MISSING), as the test bed's linux/amd64-only release is for arm64.
 */
function isMissingArchitecture(err: unknown, arch: Arch): boolean {
  if (isAppError(err, "NotFound") && err.message.includes(`no manifest for platform linux/${arch}`)) return true;
  return isAppError(err) && err.code === "IMAGER_ASSET_MISSING" && err.message.includes(`/usr/install/${arch}/`);
}

export class InstallerService {
  readonly #options: InstallerServiceOptions;
  readonly #flights = new SingleFlight<string, Digest>();
  readonly #verifier: SignatureVerifier;

  constructor(options: InstallerServiceOptions) {
    this.#options = options;
    this.#verifier = new SignatureVerifier(
      () => {
        throw new Error("the installer verifier reads repositories it is given");
      },
      verificationByKey(options.signingKey, "the cache signing key"),
    );
  }

  /** Whether `digest` in `repository` carries a signature by the cache signing key. */
  async #signed(repository: Repository, digest: Digest): Promise<boolean> {
    try {
      await this.#verifier.verifySignatures(repository, digest);
      return true;
    } catch (err) {
      if (isAppError(err, "Integrity")) {
        this.#options.log.warn(
          { image: repository.displayName, digest, err: (err as Error).message },
          "installer image signature doesn't validate: rebuilding",
        );
        return false;
      }
      throw err;
    }
  }

  /**
   * The digest of the signed installer index `<image>/<schematic>:<versionTag>`, built when missing or not
   * signed by the cache key. `signal` is the caller's: it stops waiting, never the build.
   */
  async index(
    image: InstallerImageName,
    schematicId: string,
    schematic: Schematic,
    versionTag: string,
    signal?: AbortSignal,
  ): Promise<InstallerIndex> {
    const repository = this.#options.repositoryFor(image.name, schematicId);
    const existing = await this.#statTag(repository, versionTag);
    if (existing !== undefined && (await this.#signed(repository, existing))) {
      this.#options.onHit?.(image.name, versionTag, existing);
      return { digest: existing, built: false };
    }
    // Checked before building (upstream's order: the profile fails on an unknown version or Secure Boot).
    const requests = this.#options.arches ?? ["amd64", "arm64"];
    const firstRequest = parseAssetRequest(schematicId, versionTag, installerAssetPath(image, requests[0] ?? "amd64"));
    if (!this.#options.versions.has(firstRequest.talosVersion))
      throw notFound(`Talos version ${firstRequest.talosVersion} is not available`, "VERSION_NOT_FOUND");
    if (image.secureBoot && !this.#options.secureBootEnabled)
      throw badRequest("error enhancing profile from schematic: secure boot is disabled", "SECUREBOOT_DISABLED");
    const key = `${image.name}-${schematicId}-${versionTag}`;
    const flight = this.#flights.run(key, () => this.#build(repository, image, schematicId, schematic, versionTag));
    return { digest: await waitFor(flight, signal), built: true };
  }

  async #statTag(repository: Repository, tag: string): Promise<Digest | undefined> {
    try {
      return (await repository.statManifest(tag))?.digest;
    } catch (err) {
      if (isAppError(err, "NotFound") || isAppError(err, "Unauthorized")) return undefined;
      throw err;
    }
  }

  async #build(
    repository: Repository,
    image: InstallerImageName,
    schematicId: string,
    schematic: Schematic,
    versionTag: string,
  ): Promise<Digest> {
    const signals = [AbortSignal.timeout(this.#options.buildTimeoutMs ?? 30 * 60 * 1000)];
    if (this.#options.signal !== undefined) signals.push(this.#options.signal);
    const signal = AbortSignal.any(signals);
    const started = performance.now();
    const { log } = this.#options;
    log.info({ image: image.name, schematic: schematicId, version: versionTag }, "building installer image");
    const manifests: Descriptor[] = [];
    let firstError: unknown;
    for (const arch of this.#options.arches ?? ["amd64", "arm64"]) {
      const request = parseAssetRequest(schematicId, versionTag, installerAssetPath(image, arch));
      let asset: CachedAsset;
      try {
        asset = await this.#options.assets.get(request, schematic, { signal });
      } catch (err) {
        if (!isMissingArchitecture(err, arch)) throw err;
        firstError ??= err;
        log.warn(
          { image: image.name, arch, err: (err as Error).message },
          "installer image: the sources have no image for this architecture, left out of the index",
        );
        continue;
      }
      let loaded: Awaited<ReturnType<typeof loadDockerArchive>>;
      try {
        signal.throwIfAborted();
        loaded = await loadDockerArchive(asset.path, repository, { signal });
      } finally {
        asset.release(); // read: garbage collection may have it
      }
      manifests.push({
        mediaType: loaded.mediaType,
        size: loaded.size,
        digest: loaded.digest,
        platform: { architecture: arch, os: "linux" },
      });
    }
    if (manifests.length === 0) throw firstError;
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
    const body = Buffer.from(JSON.stringify(index));
    // Staged by digest only: the tag appears once the signature verifies.
    const digest = await repository.putManifest(body, MediaType.ociIndex);
    await signImage(repository, digest, this.#options.signer, {
      dockerReference: this.#options.dockerReferenceFor(image.name, schematicId),
    });
    await this.#verifyPublished(repository, digest, signal);
    signal.throwIfAborted();
    await repository.putManifest(body, MediaType.ociIndex, versionTag);
    const seconds = (performance.now() - started) / 1000;
    log.info(
      { image: image.name, schematic: schematicId, version: versionTag, digest, seconds, arches: manifests.length },
      "installer image built, signed and tagged",
    );
    this.#options.onBuilt?.(image.name, versionTag, digest, seconds);
    return digest;
  }

  /** Reads the signature back until it verifies (a registry may be eventually consistent), as upstream does. */
  async #verifyPublished(repository: Repository, digest: Digest, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + (this.#options.verifyTimeoutMs ?? 30_000);
    let wait = 250;
    for (;;) {
      try {
        await this.#verifier.verifySignatures(repository, digest);
        return;
      } catch (err) {
        if (Date.now() + wait > deadline) {
          if (isAppError(err, "Integrity"))
            throw integrity(
              `the installer index ${repository.displayName}@${digest} was signed, but its signature does not verify: ${(err as Error).message}`,
            );
          throw err;
        }
        this.#options.log.warn({ digest, err: (err as Error).message }, "read-after-write verification failed");
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      signal.throwIfAborted();
      wait *= 2;
    }
  }

  /** Waits for the builds under way (at shutdown). */
  async settled(): Promise<void> {
    await this.#flights.settled();
  }
}
