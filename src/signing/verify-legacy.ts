// One layer of a legacy `sha256-<hex>.sig` image: the simple-signing payload must claim this image's digest,
// and its signature annotation must verify — with the configured key, or keyless by rebuilding a v0.1 Sigstore
// bundle (message signature + leaf certificate + Rekor entry whose inclusion promise is the SET, and/or the
// RFC 3161 timestamp of the `rfc3161timestamp` annotation as timestampVerificationData) from the annotations and
// verifying that like any bundle. The chain annotation is ignored on purpose: only the trusted root's CAs
// anchor a certificate.

import { createHash, verify as verifySignature } from "node:crypto";
import { type Bundle, bundleFromJSON, isBundleV01 } from "@sigstore/bundle";
import { pem } from "@sigstore/core";
import { integrity } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/manifest.ts";
import {
  Annotation,
  CosignSignatureType,
  parseLegacyRekorBundle,
  parseLegacyTimestampAnnotation,
  parseSimpleSigningPayload,
  SimpleSigningMediaType,
} from "./cosign-format.ts";
import { type SignerInfo, verifyKeylessBundle } from "./sigstore-checks.ts";
import type { LoadedVerification, VerificationKey } from "./verify-options.ts";

const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/;

function strictBase64(value: string, what: string): Buffer {
  const compact = value.trim();
  if (compact === "" || compact.length % 4 !== 0 || !base64Pattern.test(compact))
    throw integrity(`${what} is not base64`);
  return Buffer.from(compact, "base64");
}

/** The single PEM certificate of the certificate annotation, as DER. */
function singleCertificate(text: string): Buffer {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1)
    throw integrity(`the certificate annotation holds ${blocks.length} certificates; expected one`);
  return pem.toDER(blocks[0] as string);
}

/** The payload's claim must be about this very image. */
export function checkPayloadClaim(payload: Buffer, imageDigest: Digest): void {
  const claims = parseSimpleSigningPayload(payload);
  if (claims.type !== CosignSignatureType)
    throw integrity(`payload type is "${claims.type}", not "${CosignSignatureType}"`);
  if (claims.manifestDigest !== imageDigest)
    throw integrity(`payload signs ${claims.manifestDigest}, not this image ${imageDigest}`);
}

function verifyWithKey(payload: Buffer, signature: Buffer, key: VerificationKey): SignerInfo {
  let ok: boolean;
  try {
    ok = verifySignature(key.hashAlgo, payload, key.publicKey, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw integrity(`signature does not verify with key ${key.description}`);
  return { mode: "key", key: key.description };
}

type TlogEntryJson = Record<string, unknown>;

/** The v0.1 tlog entry (with its SET as inclusion promise) that the Rekor bundle annotation amounts to. */
function legacyTlogEntry(rekorAnnotation: string): TlogEntryJson {
  const rekor = parseLegacyRekorBundle(rekorAnnotation);
  const body = strictBase64(rekor.Payload.body, "the Rekor entry body");
  let parsedBody: { kind?: unknown; apiVersion?: unknown };
  try {
    parsedBody = JSON.parse(body.toString("utf8"));
  } catch {
    throw integrity("the Rekor entry body is not JSON");
  }
  if (typeof parsedBody.kind !== "string" || typeof parsedBody.apiVersion !== "string")
    throw integrity("the Rekor entry body has no kind or apiVersion");
  if (!/^[0-9a-f]{64}$/.test(rekor.Payload.logID)) throw integrity("the Rekor logID is not 64 hex digits");
  return {
    logIndex: String(rekor.Payload.logIndex),
    logId: { keyId: Buffer.from(rekor.Payload.logID, "hex").toString("base64") },
    kindVersion: { kind: parsedBody.kind, version: parsedBody.apiVersion },
    integratedTime: String(rekor.Payload.integratedTime),
    inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
    canonicalizedBody: body.toString("base64"),
  };
}

/**
 * Rebuilds the v0.1 bundle that the legacy annotations amount to. Its time evidence is the Rekor entry (bundle
 * annotation), the TSA's RFC 3161 timestamp over the signature bytes (rfc3161timestamp annotation, what
 * cosign writes with `--timestamp-server-url`), or both; with neither there is nothing to check the
 * short-lived certificate against, so it is refused here (and the verifier demands one verified timestamp).
 */
export function legacyAnnotationsToBundle(
  annotations: Record<string, string>,
  payload: Buffer,
  signature: Buffer,
): Bundle {
  const certificate = annotations[Annotation.certificate];
  const rekorAnnotation = annotations[Annotation.bundle];
  const timestampAnnotation = annotations[Annotation.rfc3161Timestamp];
  if (certificate === undefined) throw integrity("no certificate annotation (a key signature?)");
  if (rekorAnnotation === undefined && timestampAnnotation === undefined)
    throw integrity(
      "no Rekor bundle annotation and no RFC 3161 timestamp annotation: a keyless signature needs its transparency-log entry or a signed timestamp",
    );
  const tlogEntries = rekorAnnotation === undefined ? [] : [legacyTlogEntry(rekorAnnotation)];
  const rfc3161Timestamps =
    timestampAnnotation === undefined
      ? []
      : [{ signedTimestamp: parseLegacyTimestampAnnotation(timestampAnnotation).toString("base64") }];
  const serialized = {
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: {
      x509CertificateChain: { certificates: [{ rawBytes: singleCertificate(certificate).toString("base64") }] },
      tlogEntries,
      timestampVerificationData: { rfc3161Timestamps },
    },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(payload).digest("base64") },
      signature: signature.toString("base64"),
    },
  };
  const bundle = bundleFromJSON(serialized);
  if (!isBundleV01(bundle)) throw integrity("the legacy annotations do not make a valid v0.1 bundle");
  return bundle;
}

/**
 * Verifies one `.sig` layer whose payload has been read. Tries the key and/or keyless trust configured;
 * throws Integrity saying why when neither accepts it.
 */
export function verifyLegacyLayer(
  layer: Descriptor,
  payload: Buffer,
  imageDigest: Digest,
  verification: LoadedVerification,
): SignerInfo {
  if (layer.mediaType !== SimpleSigningMediaType)
    throw integrity(`media type ${layer.mediaType} is not simple-signing`);
  checkPayloadClaim(payload, imageDigest);
  const annotations = layer.annotations ?? {};
  const signatureText = annotations[Annotation.signature];
  if (signatureText === undefined) throw integrity("no signature annotation");
  const signature = strictBase64(signatureText, "the signature annotation");

  const reasons: string[] = [];
  if (verification.key) {
    try {
      return verifyWithKey(payload, signature, verification.key);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  if (verification.keyless) {
    try {
      const bundle = legacyAnnotationsToBundle(annotations, payload, signature);
      return verifyKeylessBundle(bundle, payload, verification.keyless);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  throw integrity(reasons.join("; "));
}
