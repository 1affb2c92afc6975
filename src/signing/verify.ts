// Verify an image's signatures, then hand out an object that can read the image only by the digest that was
// verified. The flow (docs/upstream.md, "Signature verification"; upstream image-factory
// internal/image/verify/verify.go):
//   1. resolve a tag to a digest ONCE (a digest reference makes no request for the image at all, like cosign:
//      an operator can check a signature before pulling anything);
//   2. try each candidate signature on its own, as cosign does: the cosign v3 bundles (OCI referrers, or the
//      `sha256-<hex>` fallback index) first, then, when no bundle verifies, each layer of the legacy
//      `sha256-<hex>.sig` image; the image is accepted when one candidate verifies under the configured rules
//      (several signers may sign the same image, e.g. the vendor and the operator's CI), and junk beside a good
//      signature is only reported (docs/limits.md has the bounds);
//   4. a `VerifiedImage` pinned to the digest: manifest and blobs are fetched by digest and re-hashed, and only
//      blobs reachable from the verified manifest can be read.

import { createHash } from "node:crypto";
import { pipeline } from "node:stream";
import { integrity, isAppError, notFound } from "../errors.ts";
import type { RegistryClient } from "../oci/client/index.ts";
import { type Digest, digestAlgorithm, VerifyingStream } from "../oci/digest.ts";
import { type Descriptor, isImageIndex, type Manifest, parseManifest, referencedDescriptors } from "../oci/manifest.ts";
import { isManifestMediaType } from "../oci/mediatypes.ts";
import { formatPlatform, type PlatformSpec, selectPlatform } from "../oci/platform.ts";
import { formatReference, type ImageReference, parseReference, tagOrDefault } from "../oci/reference.ts";
import type { BlobReader, ManifestRecord, Repository } from "../oci/repository.ts";
import { Annotation, maxPayloadBytes, SimpleSigningMediaType, signatureTag } from "./cosign-format.ts";
import {
  fetchLegacySignatures,
  findBundleReferrers,
  maxBundleReferrers,
  maxSignatureBytesRead,
  readLegacyPayload,
  readReferrerBundle,
} from "./signature-sources.ts";
import { describeSigner, type SignerInfo } from "./sigstore-checks.ts";
import { parseBundle, verifyImageBundle } from "./verify-bundle.ts";
import { verifyLegacyLayer } from "./verify-legacy.ts";
import { type LoadedVerification, loadVerification, type VerificationOptions } from "./verify-options.ts";

/** One signature that verified. */
export interface VerifiedSignature {
  kind: "legacy" | "bundle";
  /** Where it was found, e.g. "sha256-….sig layer 0" or "referrer sha256:…". */
  source: string;
  signer: SignerInfo;
}

/** How the verifier reaches a repository: a registry client, or a function (e.g. for the embedded store). */
export type RepositoryAccess = RegistryClient | ((ref: ImageReference) => Repository);

export interface ParsedManifest {
  record: ManifestRecord;
  manifest: Manifest;
}

// Only this module can mint a VerifiedImage: its constructor demands this token.
const mintToken: unique symbol = Symbol("VerifiedImage");

interface VerifiedImageInit {
  reference: ImageReference;
  digest: Digest;
  repository: Repository;
  verified: boolean;
  signatures: VerifiedSignature[];
  rejected: string[];
}

function digestOf(data: Uint8Array, like: Digest): Digest {
  const algorithm = digestAlgorithm(like);
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as Digest;
}

/**
 * An image whose signature was verified (or, when verification is disabled, at least pinned): everything read
 * through it is read by the verified digest and checked against it.
 */
export class VerifiedImage {
  /** The reference as given, with the verified digest filled in. */
  readonly reference: ImageReference;
  readonly digest: Digest;
  readonly repository: Repository;
  /** False only when verification was disabled. */
  readonly verified: boolean;
  readonly signatures: readonly VerifiedSignature[];
  /** Candidate signatures that did not verify (junk beside a good one), for the log. */
  readonly rejected: readonly string[];
  /** Descriptors reachable from what has been fetched through this object, by digest. */
  readonly #reachable = new Map<Digest, Descriptor>();
  #top: Promise<ParsedManifest> | undefined;

  constructor(token: typeof mintToken, init: VerifiedImageInit) {
    if (token !== mintToken) throw new TypeError("a VerifiedImage is only made by SignatureVerifier.verify");
    this.reference = init.reference;
    this.digest = init.digest;
    this.repository = init.repository;
    this.verified = init.verified;
    this.signatures = Object.freeze([...init.signatures]);
    this.rejected = Object.freeze([...init.rejected]);
  }

  /** `registry/repository@digest`. */
  get pinned(): string {
    return formatReference({
      registry: this.reference.registry,
      repository: this.reference.repository,
      digest: this.digest,
    });
  }

  private async fetchChecked(digest: Digest, expectedSize?: number): Promise<ParsedManifest> {
    const record = await this.repository.getManifest(digest);
    const actual = digestOf(record.body, digest);
    if (actual !== digest) throw integrity(`${this.repository.displayName}: manifest ${digest} has digest ${actual}`);
    if (expectedSize !== undefined && record.body.length !== expectedSize)
      throw integrity(`manifest ${digest} is ${record.body.length} bytes, its descriptor says ${expectedSize}`);
    const { manifest } = parseManifest(record.body, record.mediaType);
    for (const d of referencedDescriptors(manifest)) this.#reachable.set(d.digest, d);
    return { record: { ...record, digest }, manifest };
  }

  /** The verified manifest (or index), fetched by digest and re-hashed. */
  manifest(): Promise<ParsedManifest> {
    if (!this.#top) {
      this.#top = this.fetchChecked(this.digest);
      this.#top.catch(() => {
        this.#top = undefined;
      });
    }
    return this.#top;
  }

  private reachable(descriptor: Descriptor, what: string): Descriptor {
    const known = this.#reachable.get(descriptor.digest);
    if (!known || known.size !== descriptor.size)
      throw integrity(`${what} ${descriptor.digest} is not reachable from the verified image ${this.pinned}`);
    return known;
  }

  /** A child of the verified index (or of a child already fetched), by its descriptor. */
  async childManifest(descriptor: Descriptor): Promise<ParsedManifest> {
    await this.manifest();
    const known = this.reachable(descriptor, "manifest");
    if (!isManifestMediaType(known.mediaType)) throw integrity(`${known.digest} is a blob, not a manifest`);
    return this.fetchChecked(known.digest, known.size);
  }

  /** The image manifest for a platform: the verified manifest itself, or the matching child of the verified index. */
  async platformManifest(platform: PlatformSpec): Promise<ParsedManifest & { descriptor?: Descriptor }> {
    const top = await this.manifest();
    if (!isImageIndex(top.manifest)) return top;
    const descriptor = selectPlatform(top.manifest, platform);
    if (!descriptor)
      throw notFound(`${this.pinned} has no manifest for platform ${formatPlatform(platform)}`, "MANIFEST_UNKNOWN");
    return { ...(await this.childManifest(descriptor)), descriptor };
  }

  /** A blob (config or layer) of a manifest fetched through this object; the stream is checked against it. */
  async blob(descriptor: Descriptor): Promise<BlobReader> {
    await this.manifest();
    const known = this.reachable(descriptor, "blob");
    const reader = await this.repository.getBlob(known.digest);
    const checked = new VerifyingStream(known.digest, known.size);
    pipeline(reader.stream, checked, (err) => {
      if (err && !checked.destroyed) checked.destroy(err);
    });
    return { digest: known.digest, size: known.size, stream: checked };
  }
}

/** Errors that are about reaching the registry, not about a signature: they abort verification as they are. */
function isTransportError(err: unknown): boolean {
  return isAppError(err, "Unauthorized") || isAppError(err, "Upstream") || isAppError(err, "Internal");
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The reasons, bounded: the first ten and a count of the rest. */
function summarize(reasons: readonly string[]): string {
  const shown = reasons.slice(0, 10).join("; ");
  return reasons.length > 10 ? `${shown}; and ${reasons.length - 10} more rejected` : shown;
}

/** Why a `.sig` layer cannot be a signature, seen from its descriptor alone; undefined when it may be one. */
function legacyLayerShapeProblem(layer: Descriptor): string | undefined {
  if (layer.mediaType !== SimpleSigningMediaType) return `media type ${layer.mediaType} is not simple-signing`;
  if (layer.annotations?.[Annotation.signature] === undefined) return "no signature annotation";
  if (layer.size > maxPayloadBytes) return `the payload is ${layer.size} bytes, over the ${maxPayloadBytes} byte limit`;
  return undefined;
}

export class SignatureVerifier {
  private readonly access: RepositoryAccess;
  readonly options: LoadedVerification;

  constructor(access: RepositoryAccess, options: LoadedVerification) {
    this.access = access;
    this.options = options;
  }

  /** Reads the option files once and makes a verifier. */
  static async create(access: RepositoryAccess, options: VerificationOptions): Promise<SignatureVerifier> {
    return new SignatureVerifier(access, await loadVerification(options));
  }

  private repositoryFor(ref: ImageReference): Repository {
    return typeof this.access === "function" ? this.access(ref) : this.access.repository(ref);
  }

  /** Resolves, verifies and pins an image; Integrity error naming why each signature failed. */
  async verify(image: ImageReference | string): Promise<VerifiedImage> {
    const ref = typeof image === "string" ? parseReference(image) : image;
    const repository = this.repositoryFor(ref);
    const digest = ref.digest ?? (await this.resolveTag(repository, ref));
    const reference: ImageReference = { ...ref, digest };
    const mint = (verified: boolean, signatures: VerifiedSignature[], rejected: string[]) =>
      new VerifiedImage(mintToken, { reference, digest, repository, verified, signatures, rejected });
    if (this.options.disabled) return mint(false, [], []);
    const { verified, rejected } = await this.verifySignaturesWithRejects(repository, digest);
    return mint(true, verified, rejected);
  }

  private async resolveTag(repository: Repository, ref: ImageReference): Promise<Digest> {
    const tag = tagOrDefault(ref);
    const info = await repository.statManifest(tag);
    if (!info) throw notFound(`${repository.displayName}:${tag} not found`, "MANIFEST_UNKNOWN");
    return info.digest;
  }

  /**
   * Every signature of `digest` that verifies, with the candidates that did not; throws when none verifies.
   * As cosign does, each candidate is tried on its own and one that verifies under the configured rules is
   * enough: junk beside a good signature (a malformed bundle referrer, garbage `.sig` layers) never makes it
   * fail, and never makes a bad one pass. Bundles first; the legacy `.sig` when no bundle verifies. Bounded:
   * maxBundleReferrers referrers, maxLegacyLayers layers, maxSignatureBytesRead bytes read in all.
   */
  async verifySignaturesWithRejects(
    repository: Repository,
    digest: Digest,
  ): Promise<{ verified: VerifiedSignature[]; rejected: string[] }> {
    const where = `${repository.displayName}@${digest}`;
    const verified: VerifiedSignature[] = [];
    const rejected: string[] = [];
    let bytesRead = 0;
    /** Tries one candidate: `read` fetches its material (counted against the budget), `check` verifies it. */
    const attempt = async <T>(
      source: string,
      size: number,
      read: () => Promise<T>,
      check: (material: T) => VerifiedSignature,
    ) => {
      if (bytesRead + size > maxSignatureBytesRead) {
        rejected.push(`${source}: not examined, over the ${maxSignatureBytesRead} byte budget for signature material`);
        return;
      }
      bytesRead += size;
      try {
        verified.push(check(await read()));
      } catch (err) {
        if (isTransportError(err)) throw err;
        rejected.push(`${source}: ${reasonOf(err)}`);
      }
    };

    const bundles = await findBundleReferrers(repository, digest);
    for (const [i, referrer] of bundles.entries()) {
      const source = `bundle ${referrer.digest}`;
      if (i >= maxBundleReferrers) {
        rejected.push(`${bundles.length - i} more bundle referrer(s): not examined (at most ${maxBundleReferrers})`);
        break;
      }
      await attempt(
        source,
        referrer.size,
        async () => parseBundle(await readReferrerBundle(repository, referrer, digest)),
        (bundle) => ({ kind: "bundle", source, signer: verifyImageBundle(bundle, digest, this.options) }),
      );
    }
    if (verified.length === 0) {
      const legacy = await fetchLegacySignatures(repository, digest);
      if (!legacy) rejected.push(`no ${signatureTag(digest)} image`);
      else if (legacy.layers.length === 0) rejected.push(`${legacy.tag} has no layers`);
      for (const [i, layer] of legacy?.layers.entries() ?? []) {
        const source = `${legacy?.tag} layer ${i}`;
        // What cannot be a signature is passed over without reading anything.
        const shape = legacyLayerShapeProblem(layer);
        if (shape !== undefined) {
          rejected.push(`${source}: ${shape}`);
          continue;
        }
        await attempt(
          source,
          layer.size,
          () => readLegacyPayload(repository, layer),
          (payload) => ({ kind: "legacy", source, signer: verifyLegacyLayer(layer, payload, digest, this.options) }),
        );
      }
    }
    if (verified.length === 0) {
      if (bundles.length === 0 && rejected.length === 1 && rejected[0]?.startsWith("no "))
        throw integrity(`no signature found for ${where}: no bundle referrer and ${rejected[0]}`);
      throw integrity(`no signature matched for ${where}: ${summarize(rejected)}`);
    }
    return { verified, rejected };
  }

  /** Every signature of `digest` that verifies; throws when none does. */
  async verifySignatures(repository: Repository, digest: Digest): Promise<VerifiedSignature[]> {
    return (await this.verifySignaturesWithRejects(repository, digest)).verified;
  }
}

/** One line for a verified signature, as the CLI prints it. */
export function describeVerifiedSignature(image: VerifiedImage, signature: VerifiedSignature): string {
  return `${image.pinned} ${signature.kind} ${signature.signer.mode} ${describeSigner(signature.signer)}`;
}
