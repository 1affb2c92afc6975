// The byte formats cosign writes to registries (see docs/formats.md, "Signatures"). Everything here is
// pure: building and parsing payloads, configs, tags and annotations, so that signer and verifier share one
// definition and what we publish is byte-compatible with what cosign publishes.

import { badRequest, integrity } from "../errors.ts";
import { type Digest, isDigest, sha256Digest } from "../oci/digest.ts";

export const SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json";
export const SigstoreBundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";
/** The `type` a cosign simple-signing payload must carry. */
export const CosignSignatureType = "cosign container image signature";
/** predicateType of the in-toto statement inside a cosign v3 bundle. */
export const CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1";

export const Annotation = {
  signature: "dev.cosignproject.cosign/signature",
  certificate: "dev.sigstore.cosign/certificate",
  chain: "dev.sigstore.cosign/chain",
  bundle: "dev.sigstore.cosign/bundle",
  rfc3161Timestamp: "dev.sigstore.cosign/rfc3161timestamp",
  bundleContent: "dev.sigstore.bundle.content",
  bundlePredicateType: "dev.sigstore.bundle.predicateType",
} as const;

/** Tag of the legacy signature image for a signed manifest digest: `sha256-<hex>.sig`. */
export function signatureTag(signed: Digest): string {
  return `${signed.replace(":", "-")}.sig`;
}

/** A simple-signing payload's claims. */
export interface SimpleSigningClaims {
  dockerReference: string;
  manifestDigest: Digest;
  type: string;
  optional: Record<string, unknown> | null;
}

/**
 * The payload cosign signs: exact key order, no spaces, `optional: null` unless annotations are given.
 * JSON.stringify of an object literal keeps insertion order, which is what makes the bytes match cosign's.
 */
export function simpleSigningPayload(
  dockerReference: string,
  manifestDigest: Digest,
  optional: Record<string, string> | null = null,
): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": dockerReference },
        image: { "docker-manifest-digest": manifestDigest },
        type: CosignSignatureType,
      },
      optional,
    }),
  );
}

/** Upper bound on a payload we parse; cosign payloads are a few hundred bytes. */
export const maxPayloadBytes = 64 * 1024;

export function parseSimpleSigningPayload(payload: Uint8Array): SimpleSigningClaims {
  if (payload.length > maxPayloadBytes)
    throw integrity(`signature payload is ${payload.length} bytes, over the ${maxPayloadBytes} byte limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch (err) {
    throw integrity(`signature payload is not JSON: ${(err as Error).message}`);
  }
  const critical = (parsed as { critical?: Record<string, unknown> } | null)?.critical;
  const identity = critical?.identity as Record<string, unknown> | undefined;
  const image = critical?.image as Record<string, unknown> | undefined;
  const dockerReference = identity?.["docker-reference"];
  const manifestDigest = image?.["docker-manifest-digest"];
  const type = critical?.type;
  if (typeof dockerReference !== "string" || typeof manifestDigest !== "string" || typeof type !== "string")
    throw integrity("signature payload lacks critical.identity, critical.image or critical.type");
  if (!isDigest(manifestDigest)) throw integrity(`signature payload names an invalid digest "${manifestDigest}"`);
  const optional = (parsed as { optional?: unknown }).optional;
  return {
    dockerReference,
    manifestDigest,
    type,
    optional: typeof optional === "object" && optional !== null ? (optional as Record<string, unknown>) : null,
  };
}

/**
 * The config blob of a signature image: what go-containerregistry's empty image gives once the payload layer is
 * appended (its diff_id is the payload's digest, as the layer is not compressed). Key order matters.
 */
export function signatureImageConfig(payloadDigests: readonly Digest[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "",
      created: "0001-01-01T00:00:00Z",
      history: payloadDigests.map(() => ({ created: "0001-01-01T00:00:00Z" })),
      os: "",
      rootfs: { type: "layers", diff_ids: payloadDigests },
      config: {},
    }),
  );
}

/** The Rekor bundle annotation of a keyless legacy signature. */
export interface LegacyRekorBundle {
  SignedEntryTimestamp: string;
  Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
}

export function parseLegacyRekorBundle(annotation: string): LegacyRekorBundle {
  if (annotation.length > 256 * 1024) throw integrity("Rekor bundle annotation is over 256 KiB");
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (err) {
    throw integrity(`Rekor bundle annotation is not JSON: ${(err as Error).message}`);
  }
  const b = parsed as Partial<LegacyRekorBundle> | null;
  const p = b?.Payload;
  if (
    typeof b?.SignedEntryTimestamp !== "string" ||
    typeof p?.body !== "string" ||
    typeof p.integratedTime !== "number" ||
    typeof p.logIndex !== "number" ||
    typeof p.logID !== "string"
  )
    throw integrity("Rekor bundle annotation lacks SignedEntryTimestamp or Payload fields");
  return b as LegacyRekorBundle;
}

/** Serializes a Rekor bundle annotation in cosign's key order. */
export function formatLegacyRekorBundle(bundle: LegacyRekorBundle): string {
  const { body, integratedTime, logIndex, logID } = bundle.Payload;
  return JSON.stringify({
    SignedEntryTimestamp: bundle.SignedEntryTimestamp,
    Payload: { body, integratedTime, logIndex, logID },
  });
}

/** Upper bound on one RFC 3161 timestamp (a TimeStampResp with its TSA certificate is a few KiB). */
export const maxTimestampBytes = 64 * 1024;

const strictBase64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The RFC 3161 timestamp annotation of a legacy signature layer: cosign's `bundle.RFC3161Timestamp` as JSON,
 * `{"SignedRFC3161Timestamp":"<base64 of the DER TimeStampResp>"}` (Go encodes the []byte field as base64).
 * Returns the DER bytes.
 */
export function parseLegacyTimestampAnnotation(annotation: string): Buffer {
  if (annotation.length > 2 * maxTimestampBytes) throw integrity("RFC 3161 timestamp annotation is too large");
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (err) {
    throw integrity(`RFC 3161 timestamp annotation is not JSON: ${(err as Error).message}`);
  }
  const encoded = (parsed as { SignedRFC3161Timestamp?: unknown } | null)?.SignedRFC3161Timestamp;
  if (typeof encoded !== "string" || encoded === "" || !strictBase64Pattern.test(encoded))
    throw integrity("RFC 3161 timestamp annotation lacks a base64 SignedRFC3161Timestamp");
  const der = Buffer.from(encoded, "base64");
  if (der.length > maxTimestampBytes)
    throw integrity(`RFC 3161 timestamp is ${der.length} bytes, over the ${maxTimestampBytes} byte limit`);
  return der;
}

/** Serializes an RFC 3161 timestamp annotation as cosign does. */
export function formatLegacyTimestampAnnotation(timestamp: Uint8Array): string {
  return JSON.stringify({ SignedRFC3161Timestamp: Buffer.from(timestamp).toString("base64") });
}

export function payloadDigest(payload: Uint8Array): Digest {
  return sha256Digest(payload);
}

export function requireDigest(value: string, what: string): Digest {
  if (!isDigest(value)) throw badRequest(`${what} "${value}" is not a digest`, "DIGEST_INVALID");
  return value;
}

/** payloadType of the DSSE envelope in a cosign v3 bundle. */
export const InTotoPayloadType = "application/vnd.in-toto+json";
export const InTotoStatementType = "https://in-toto.io/Statement/v1";

/**
 * The in-toto statement cosign v3 signs for an image: one subject with the manifest digest (no name, empty
 * annotations) and an empty cosign/sign predicate. Key order as cosign writes it.
 */
export function cosignSignStatement(manifestDigest: Digest): Buffer {
  const [algorithm, hex] = manifestDigest.split(":") as [string, string];
  return Buffer.from(
    JSON.stringify({
      _type: InTotoStatementType,
      subject: [{ digest: { [algorithm]: hex }, annotations: {} }],
      predicateType: CosignSignPredicateType,
      predicate: {},
    }),
  );
}
