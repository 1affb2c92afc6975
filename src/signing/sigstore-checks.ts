// The cryptographic verification of one Sigstore bundle (a real v0.3 one, or a v0.1 one rebuilt from legacy
// annotations), with sigstore-js doing the chain/SET/SCT/signature work and this module adding what it
// leaves out: the transparency-log body must name the same certificate that signed, the leaf must have the
// codeSigning EKU, its issuer extensions must agree, and its identity must match the operator's policy.
//
// Trust comes only from the trusted root: sigstore-js builds the chain from the leaf and the root's CAs, so a
// chain shipped next to the signature (the legacy chain annotation, extra bundle certificates) never anchors.

import type { Bundle, TransparencyLogEntry } from "@sigstore/bundle";
import { ASN1Obj, pem, X509Certificate } from "@sigstore/core";
import { type SignedEntity, type TrustMaterial, toSignedEntity, Verifier } from "@sigstore/verify";
import { integrity } from "../errors.ts";
import { leafIdentity } from "./certificate-identity.ts";
import { maxTimestampBytes } from "./cosign-format.ts";
import type { IdentityMatcher } from "./policy.ts";
import type { KeylessTrust, VerificationKey } from "./verify-options.ts";

/** Who a verified signature is from. */
export type SignerInfo =
  | { mode: "key"; key: string }
  | {
      mode: "keyless";
      issuer: string;
      subject: string;
      matched: IdentityMatcher;
      /** The transparency log's time for the signature, when it has one. */
      integratedTime?: Date;
      /** The time a timestamp authority certified (RFC 3161 genTime), when the signature has a timestamp. */
      timestampAuthorityTime?: Date;
    };

export function describeSigner(signer: SignerInfo): string {
  return signer.mode === "key" ? signer.key : `${signer.subject} (issuer ${signer.issuer})`;
}

/** A sigstore-js error with its cause chain, in one line. */
export function sigstoreMessage(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current instanceof Error && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    parts.push(
      typeof code === "string" && !current.message.includes(code) ? `${code}: ${current.message}` : current.message,
    );
    current = current.cause;
  }
  return parts.length > 0 ? parts.join(": ") : String(err);
}

function leafOf(bundle: Bundle): X509Certificate {
  const content = bundle.verificationMaterial.content;
  switch (content.$case) {
    case "certificate":
      return X509Certificate.parse(Buffer.from(content.certificate.rawBytes));
    case "x509CertificateChain": {
      const first = content.x509CertificateChain.certificates[0];
      if (!first) throw integrity("the bundle's certificate chain is empty");
      return X509Certificate.parse(Buffer.from(first.rawBytes));
    }
    case "publicKey":
      throw integrity("the bundle is signed with a key, not a certificate");
  }
}

/** The DER certificate a Rekor entry body names as the signer, when the body names a certificate. */
function tlogBodyCertificate(entry: TransparencyLogEntry): Buffer | undefined {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(entry.canonicalizedBody.toString("utf8"));
  } catch {
    throw integrity("the transparency-log entry body is not JSON");
  }
  const spec = body.spec as Record<string, unknown> | undefined;
  const fromPemBase64 = (value: unknown) => {
    if (typeof value !== "string") return undefined;
    const text = Buffer.from(value, "base64").toString("utf8");
    return text.includes("-----BEGIN CERTIFICATE-----") ? pem.toDER(text) : undefined;
  };
  if (body.apiVersion === "0.0.1" && body.kind === "hashedrekord") {
    const signature = spec?.signature as { publicKey?: { content?: unknown } } | undefined;
    return fromPemBase64(signature?.publicKey?.content);
  }
  if (body.apiVersion === "0.0.1" && body.kind === "dsse") {
    const signatures = spec?.signatures as Array<{ verifier?: unknown }> | undefined;
    return fromPemBase64(signatures?.[0]?.verifier);
  }
  // Rekor v2 entries (proto JSON): spec.{hashedRekordV002|dsseV002}.signature(s).verifier.x509Certificate.
  const v2 = (spec?.hashedRekordV002 ?? spec?.dsseV002) as Record<string, unknown> | undefined;
  if (v2) {
    const signature = (v2.signature ?? (v2.signatures as unknown[] | undefined)?.[0]) as
      | { verifier?: { x509Certificate?: { rawBytes?: unknown } } }
      | undefined;
    const raw = signature?.verifier?.x509Certificate?.rawBytes;
    return typeof raw === "string" ? Buffer.from(raw, "base64") : undefined;
  }
  throw integrity(`unsupported transparency-log entry kind ${String(body.kind)} ${String(body.apiVersion)}`);
}

const OidExtKeyUsage = "2.5.29.37";
const OidTimeStamping = "1.3.6.1.5.5.7.3.8";

/**
 * RFC 3161 §2.3: a TSA certificate has one extended key usage, timeStamping, marked critical. cosign and
 * sigstore-go refuse a TSA whose certificate says otherwise; sigstore-js does not look, so TSAs of the trusted
 * root that fail it are left out before it runs.
 */
function isTimestampingCertificate(cert: X509Certificate | undefined): boolean {
  const eku = cert?.extension(OidExtKeyUsage);
  if (!eku?.critical) return false;
  try {
    const usages = ASN1Obj.parseBuffer(Buffer.from(eku.value)).subs;
    return usages.length === 1 && usages[0]?.tag.isOID() === true && usages[0].toOID() === OidTimeStamping;
  } catch {
    return false;
  }
}

function verifierFor(trustMaterial: TrustMaterial): Verifier {
  const timestampAuthorities = trustMaterial.timestampAuthorities.filter((tsa) =>
    isTimestampingCertificate(tsa.certChain[0]),
  );
  return new Verifier(
    { ...trustMaterial, timestampAuthorities },
    {
      // SCTs are required exactly when the trusted root lists CT logs (a self-made test root may have none).
      ctlogThreshold: trustMaterial.ctlogs.length > 0 ? 1 : 0,
      // The signing time must be proven by at least one verified timestamp, and sigstore-js counts both kinds
      // here: a Rekor SET (inclusion promise) or an RFC 3161 token from a TSA of the trusted root over the
      // signature bytes. The leaf must be valid at every one of them.
      timestampThreshold: 1,
      // Every tlog entry present is still verified (SET, inclusion proof, body), but none is required on its own:
      // a TSA-timestamped signature (cosign `--timestamp-server-url`, no Rekor upload) has none.
      tlogThreshold: 0,
    },
  );
}

const isSequence = (obj: ASN1Obj) => obj.tag.isUniversal() && obj.tag.constructed && obj.tag.number === 0x10;

/** At most this many RFC 3161 timestamps per signature (cosign writes one). */
const maxTimestamps = 4;

/**
 * Bounds the bundle's RFC 3161 timestamps before sigstore-js parses them, and refuses a response whose status
 * is not granted: sigstore-js reads the token without looking at the status, cosign's parser refuses it.
 */
function checkRfc3161Timestamps(bundle: Bundle): void {
  const timestamps = bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps ?? [];
  if (timestamps.length > maxTimestamps)
    throw integrity(`the signature has ${timestamps.length} RFC 3161 timestamps, over the limit of ${maxTimestamps}`);
  for (const { signedTimestamp } of timestamps) {
    if (signedTimestamp.length > maxTimestampBytes)
      throw integrity(`an RFC 3161 timestamp is ${signedTimestamp.length} bytes, over ${maxTimestampBytes}`);
    let status: bigint | undefined;
    try {
      const response = ASN1Obj.parseBuffer(Buffer.from(signedTimestamp));
      const statusInfo = response.subs[0];
      if (isSequence(response) && response.subs.length === 2 && statusInfo && isSequence(statusInfo))
        status = statusInfo.subs[0]?.toInteger();
    } catch {
      status = undefined;
    }
    if (status === undefined) throw integrity("an RFC 3161 timestamp is not a DER TimeStampResp with a token");
    // 0 granted, 1 grantedWithMods (RFC 3161 PKIStatus); anything else carries no valid token.
    if (status !== 0n && status !== 1n) throw integrity(`an RFC 3161 timestamp response has status ${status}`);
  }
}

/**
 * Keyless: chain to the trusted root's CAs, timestamps (a Rekor SET or a TSA's RFC 3161 token, at least one),
 * certificate valid at each of them, SCTs, tlog body ↔ signature, signature over the content; then EKU, issuer,
 * identity policy.
 */
export function verifyKeylessBundle(bundle: Bundle, artifact: Buffer | undefined, trust: KeylessTrust): SignerInfo {
  const leaf = leafOf(bundle);
  checkRfc3161Timestamps(bundle);
  let entity: SignedEntity;
  try {
    entity = toSignedEntity(bundle, artifact);
    verifierFor(trust.trustMaterial).verify(entity);
  } catch (err) {
    throw integrity(`sigstore verification against ${trust.rootDescription} failed: ${sigstoreMessage(err)}`);
  }
  for (const entry of bundle.verificationMaterial.tlogEntries) {
    const named = tlogBodyCertificate(entry);
    if (named !== undefined && !named.equals(leaf.root.toDER()))
      throw integrity("the transparency-log entry names another certificate than the one that signed");
  }
  const identity = leafIdentity(leaf);
  if (identity.issuer === undefined) throw integrity(`certificate for ${identity.subject} has no OIDC issuer`);
  const matched = trust.policy.match(identity);
  if (!matched)
    throw integrity(
      `identity ${identity.subject} (issuer ${identity.issuer}) does not match ${trust.policy.describe()}`,
    );
  const times = entity.tlogEntries
    .filter((e) => e.inclusionPromise !== undefined && e.integratedTime !== "0")
    .map((e) => new Date(Number(e.integratedTime) * 1000));
  const signer: SignerInfo = { mode: "keyless", issuer: identity.issuer, subject: identity.subject, matched };
  if (times[0] !== undefined) signer.integratedTime = times[0];
  for (const timestamp of entity.timestamps)
    if (timestamp.$case === "timestamp-authority") {
      signer.timestampAuthorityTime = timestamp.timestamp.signingTime;
      break;
    }
  return signer;
}

/**
 * Key mode for a bundle: the signature must verify with the configured key. The transparency log is not
 * needed (as with `cosign verify --key … --insecure-ignore-tlog`), so log entries and timestamps are set aside
 * rather than checked against a root that may not list the log they came from.
 */
export function verifyKeyBundle(bundle: Bundle, artifact: Buffer | undefined, key: VerificationKey): SignerInfo {
  if (bundle.verificationMaterial.content.$case !== "publicKey")
    throw integrity("the bundle carries a certificate, not a key signature");
  const trustMaterial: TrustMaterial = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: () => ({ publicKey: key.publicKey, validFor: () => true }),
  };
  try {
    const entity = { ...toSignedEntity(bundle, artifact), tlogEntries: [], timestamps: [] };
    new Verifier(trustMaterial, { tlogThreshold: 0, timestampThreshold: 0, ctlogThreshold: 0 }).verify(entity);
  } catch (err) {
    throw integrity(`signature does not verify with key ${key.description}: ${sigstoreMessage(err)}`);
  }
  return { mode: "key", key: key.description };
}
