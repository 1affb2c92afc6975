import { badRequest } from "../errors.ts";
import { type Digest, isDigest } from "./digest.ts";
import { isIndexMediaType, isManifestMediaType, MediaType } from "./mediatypes.ts";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  urls?: string[];
  data?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type Manifest = ImageManifest | ImageIndex;

export function isImageIndex(manifest: Manifest): manifest is ImageIndex {
  return Array.isArray((manifest as ImageIndex).manifests);
}

/** Upper bound on a manifest body, as distribution and most registries enforce. */
export const maxManifestBytes = 4 * 1024 * 1024;

function checkDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== "object" || value === null) throw badRequest(`${where} is not an object`, "MANIFEST_INVALID");
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || d.mediaType === "")
    throw badRequest(`${where} has no mediaType`, "MANIFEST_INVALID");
  if (typeof d.digest !== "string" || !isDigest(d.digest))
    throw badRequest(`${where} has an invalid digest "${String(d.digest)}"`, "MANIFEST_INVALID");
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0)
    throw badRequest(`${where} has an invalid size`, "MANIFEST_INVALID");
  return d as unknown as Descriptor;
}

/**
 * Parses and validates a manifest or index body. `mediaType` is what the transport said (Content-Type);
 * the body's own mediaType field, when present, must agree with it.
 */
export function parseManifest(body: Uint8Array, mediaType?: string): { manifest: Manifest; mediaType: string } {
  if (body.length > maxManifestBytes)
    throw badRequest(`manifest is ${body.length} bytes, over the ${maxManifestBytes} byte limit`, "MANIFEST_INVALID");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch (err) {
    throw badRequest(`manifest is not valid JSON: ${(err as Error).message}`, "MANIFEST_INVALID");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw badRequest("manifest is not a JSON object", "MANIFEST_INVALID");
  const m = parsed as Record<string, unknown>;
  if (m.schemaVersion !== 2) throw badRequest("manifest schemaVersion must be 2", "MANIFEST_INVALID");
  const declared = typeof m.mediaType === "string" ? m.mediaType : undefined;
  if (declared !== undefined && mediaType !== undefined && isManifestMediaType(mediaType) && declared !== mediaType)
    throw badRequest(`manifest mediaType "${declared}" does not match Content-Type "${mediaType}"`, "MANIFEST_INVALID");
  const isIndex = Array.isArray(m.manifests);
  const effective =
    declared ??
    (mediaType && isManifestMediaType(mediaType) ? mediaType : isIndex ? MediaType.ociIndex : MediaType.ociManifest);
  if (!isManifestMediaType(effective))
    throw badRequest(`unsupported manifest media type "${effective}"`, "MANIFEST_INVALID");
  if (isIndexMediaType(effective)) {
    if (!isIndex) throw badRequest("index has no manifests array", "MANIFEST_INVALID");
    (m.manifests as unknown[]).forEach((d, i) => {
      checkDescriptor(d, `manifests[${i}]`);
    });
  } else {
    if (isIndex) throw badRequest("image manifest has a manifests array", "MANIFEST_INVALID");
    checkDescriptor(m.config, "config");
    if (!Array.isArray(m.layers)) throw badRequest("manifest has no layers array", "MANIFEST_INVALID");
    (m.layers as unknown[]).forEach((d, i) => {
      checkDescriptor(d, `layers[${i}]`);
    });
  }
  if (m.subject !== undefined) checkDescriptor(m.subject, "subject");
  return { manifest: m as unknown as Manifest, mediaType: effective };
}

/** Every blob or child manifest a manifest points at (config, layers, or index entries). */
export function referencedDescriptors(manifest: Manifest): Descriptor[] {
  return isImageIndex(manifest) ? manifest.manifests : [manifest.config, ...manifest.layers];
}
