// `boot-assets mirror`: copies one Talos release, as the factory consumes it, with its signatures to another
// registry, for factories that cannot reach the vendor's (air-gapped). Plan first (plan.ts: every image
// verified with the factory's verification options, catalogs read to resolve extensions and overlays by
// digest), then copy (copy-item.ts: by digest, indexes whole, signatures with each image), a bounded number
// of images at a time. Resumable: what the destination holds is skipped, so a run after a complete one
// copies nothing, and a run after an interrupted one copies only what is missing.

import type { RegistryClient } from "../../oci/client/index.ts";
import type { SignatureVerifier } from "../../signing/verify.ts";
import { mapLimited } from "../../util/concurrency.ts";
import { addCounters, type CopyCounters, copyItemWithSignatures, emptyCounters } from "./copy-item.ts";
import { type MirrorItem, MirrorPlanner, type ReleaseImageNames, type Selection } from "./plan.ts";

export type { CopyCounters } from "./copy-item.ts";
export type { MirrorItem, MirrorItemKind, ReleaseImageNames, Selection } from "./plan.ts";

export interface MirrorRequest {
  /** v-prefixed Talos version tag. */
  talosVersion: string;
  /** `registry[/namespace]` the release is read from (the factory's -image-registry and namespace). */
  sourcePrefix: string;
  /** `registry[/namespace]` it is copied to. */
  destinationPrefix: string;
  names: ReleaseImageNames;
  extensions: Selection;
  overlays: Selection;
  client: RegistryClient;
  verifier: SignatureVerifier;
  /** Images verified or copied at once (default 4). */
  concurrency?: number;
  /** Blobs copied at once within one image (default 4). */
  blobConcurrency?: number;
  workDir?: string;
  signal?: AbortSignal;
  onEvent?: (event: MirrorEvent) => void;
}

export type MirrorEvent =
  | { kind: "verified"; item: MirrorItem }
  | { kind: "copied"; item: MirrorItem; destination: string; image: CopyCounters; signatures: CopyCounters };

export interface MirrorSummary {
  talosVersion: string;
  /** Images of the release copied (or found complete), signatures not counted. */
  images: number;
  /** Signature artifacts (`.sig` images, bundle referrers) at the destination for them. */
  signatureArtifacts: number;
  /** Images whose every manifest was already at the destination. */
  imagesAlreadyPresent: number;
  totals: CopyCounters;
  items: Array<{ item: MirrorItem; destination: string }>;
}

function joinPrefix(prefix: string, name: string): string {
  return `${prefix.replace(/\/+$/, "")}/${name}`;
}

export async function mirrorRelease(request: MirrorRequest): Promise<MirrorSummary> {
  const concurrency = request.concurrency ?? 4;
  const planner = new MirrorPlanner({
    talosVersion: request.talosVersion,
    sourcePrefix: request.sourcePrefix,
    names: request.names,
    extensions: request.extensions,
    overlays: request.overlays,
    verifier: request.verifier,
    concurrency,
    workDir: request.workDir,
    signal: request.signal,
    onVerified: (item) => request.onEvent?.({ kind: "verified", item }),
  });
  const items = await planner.plan();
  const totals = emptyCounters();
  let signatureArtifacts = 0;
  let imagesAlreadyPresent = 0;
  const copied = await mapLimited(items, concurrency, async (item) => {
    const destination = joinPrefix(request.destinationPrefix, item.name);
    const result = await copyItemWithSignatures({
      source: item.image.repository,
      destination: request.client.repository(destination),
      digest: item.digest,
      tag: item.tag,
      blobConcurrency: request.blobConcurrency ?? 4,
      signal: request.signal,
    });
    addCounters(totals, result.image);
    addCounters(totals, result.signatures);
    signatureArtifacts += result.signatureArtifacts;
    if (result.image.manifestsWritten === 0) imagesAlreadyPresent++;
    request.onEvent?.({ kind: "copied", item, destination, image: result.image, signatures: result.signatures });
    return { item, destination };
  });
  return {
    talosVersion: request.talosVersion,
    images: items.length,
    signatureArtifacts,
    imagesAlreadyPresent,
    totals,
    items: copied,
  };
}
