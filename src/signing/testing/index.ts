// A self-contained Sigstore for tests: a Fulcio-like CA, a Rekor-like log, optionally a CT log, the matching
// trusted_root.json, and helpers that produce keyless signatures in cosign's legacy and bundle formats.
// Tests of signing, verification and the test bed use it instead of the public-good instance.

import { createHash, createPublicKey, type KeyObject, sign } from "node:crypto";
import { writeFile } from "node:fs/promises";
import {
  Annotation,
  formatLegacyRekorBundle,
  formatLegacyTimestampAnnotation,
  InTotoPayloadType,
  type LegacyRekorBundle,
} from "../cosign-format.ts";
import { dsseBundle, dsseEnvelope, preAuthEncoding, type SigstoreBundleJson } from "../sigstore-bundle.ts";
import {
  type CertificateAuthorityOptions,
  type EcCurve,
  generateEcKeyPair,
  type Leaf,
  type LeafOptions,
  TestCertificateAuthority,
} from "./ca.ts";
import { type LogEntry, TestCtLog, TestTransparencyLog } from "./tlog.ts";
import { TestTimestampAuthority, type TimestampAuthorityOptions } from "./tsa.ts";

export * from "./ca.ts";
export * from "./tlog.ts";
export * from "./tsa.ts";

export interface TestSigstoreOptions {
  /** Options for the Fulcio-like CA (curve, name, validity). */
  ca?: CertificateAuthorityOptions;
  /** Curve of the Rekor key; default P-256 like rekor.sigstore.dev. */
  rekorCurve?: EcCurve;
  /** Also run a CT log: leaves get an embedded SCT and the trusted root lists the log. Default false. */
  ctlog?: boolean;
  /** Checkpoint origin / host name of the Rekor log. */
  rekorOrigin?: string;
  /** Also run an RFC 3161 timestamp authority listed in the trusted root (`true` or its options). Default false. */
  tsa?: boolean | TimestampAuthorityOptions;
}

/** Who a keyless signature claims to be, and how to bend the certificate and log entry for negative tests. */
export interface KeylessIdentity {
  issuer?: string | null;
  subject?: string;
  /** Any further leaf overrides (issuerV1/V2, EKU, validity, extensions…). */
  leaf?: Omit<LeafOptions, "publicKey">;
  /** Unix seconds the log records; default now. */
  integratedTime?: number;
  /** Issue the leaf from this CA instead (e.g. an attacker's CA not in the trusted root). */
  ca?: TestCertificateAuthority;
  /** The signer's ephemeral key; default a fresh P-256 key. */
  privateKey?: KeyObject;
}

export interface KeylessSignature {
  payload: Buffer;
  signature: Buffer;
  certificatePem: string;
  chainPem: string;
  logEntry: LogEntry;
  rekorBundle: LegacyRekorBundle;
  /** The layer annotations cosign writes for this signature. */
  annotations: Record<string, string>;
  privateKey: KeyObject;
}

export interface KeylessBundle {
  bundle: SigstoreBundleJson;
  certificatePem: string;
  logEntry: LogEntry;
  privateKey: KeyObject;
}

/** How a signature gets its RFC 3161 timestamp (`keylessSignTimestamped`, `keylessBundleTimestamped`). */
export interface TimestampingOptions {
  /** The authority that timestamps; default this Sigstore's own (e.g. a stranger's TSA, absent from the root). */
  authority?: TestTimestampAuthority;
  /** Timestamp these bytes instead of the signature: a timestamp that belongs to something else. */
  over?: Buffer;
  /** The time the token certifies; default the identity's `integratedTime`, else now. */
  genTime?: Date;
  /** Also log the signature in Rekor (SET and bundle annotation / tlog entry), as cosign does with both. */
  rekor?: boolean;
}

/** A keyless legacy signature timestamped by a TSA: the annotations carry `rfc3161timestamp`. */
export interface TimestampedKeylessSignature {
  payload: Buffer;
  signature: Buffer;
  certificatePem: string;
  chainPem: string;
  /** DER TimeStampResp over the signature bytes. */
  timestamp: Buffer;
  /** The Rekor entry, when `rekor` was asked for. */
  logEntry?: LogEntry;
  annotations: Record<string, string>;
  privateKey: KeyObject;
}

/** A keyless v0.3 bundle with `timestampVerificationData.rfc3161Timestamps`. */
export interface TimestampedKeylessBundle {
  bundle: SigstoreBundleJson;
  certificatePem: string;
  /** DER TimeStampResp over the DSSE signature bytes. */
  timestamp: Buffer;
  logEntry?: LogEntry;
  privateKey: KeyObject;
}

export interface TrustedRootJson {
  mediaType: string;
  tlogs: unknown[];
  certificateAuthorities: unknown[];
  ctlogs: unknown[];
  timestampAuthorities: unknown[];
}

const TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

function keyDetails(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "PKIX_ECDSA_P384_SHA_384" : "PKIX_ECDSA_P256_SHA_256";
}

function hashFor(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "sha384" : "sha256";
}

export class TestSigstore {
  readonly ca: TestCertificateAuthority;
  readonly rekor: TestTransparencyLog;
  readonly ctlog: TestCtLog | undefined;
  readonly tsa: TestTimestampAuthority | undefined;

  constructor(
    ca: TestCertificateAuthority,
    rekor: TestTransparencyLog,
    ctlog: TestCtLog | undefined,
    tsa?: TestTimestampAuthority,
  ) {
    this.ca = ca;
    this.rekor = rekor;
    this.ctlog = ctlog;
    this.tsa = tsa;
  }

  /** The trusted_root.json object naming this CA, log and (optional) CT log. */
  trustedRoot(): TrustedRootJson {
    const validFrom = this.ca.root.certificate.notBefore.toISOString();
    const logJson = (baseUrl: string, log: { keys: { publicKey: KeyObject }; spki: Buffer; logId: Buffer }) => ({
      baseUrl,
      hashAlgorithm: "SHA2_256",
      publicKey: {
        rawBytes: log.spki.toString("base64"),
        keyDetails: keyDetails(log.keys.publicKey),
        validFor: { start: validFrom },
      },
      logId: { keyId: log.logId.toString("base64") },
    });
    return {
      mediaType: TrustedRootMediaType,
      tlogs: [logJson(this.rekor.baseUrl, this.rekor.key)],
      certificateAuthorities: [
        {
          subject: { organization: "test-sigstore", commonName: "test-sigstore" },
          uri: "https://fulcio.test",
          certChain: {
            certificates: [this.ca.intermediate.der, this.ca.root.der].map((der) => ({
              rawBytes: der.toString("base64"),
            })),
          },
          validFor: { start: validFrom },
        },
      ],
      ctlogs: this.ctlog ? [logJson(this.ctlog.baseUrl, this.ctlog.key)] : [],
      timestampAuthorities: this.tsa ? [this.tsa.trustedRootEntry()] : [],
    };
  }

  async writeTrustedRoot(file: string): Promise<void> {
    await writeFile(file, `${JSON.stringify(this.trustedRoot(), null, 2)}\n`);
  }

  /** Issues a leaf from this CA (or `ca`), with an SCT when the CT log runs and the caller set none. */
  async issueLeaf(options: LeafOptions, ca: TestCertificateAuthority = this.ca): Promise<Leaf> {
    const ctlog = this.ctlog;
    const sct = options.sct ?? (ctlog ? (pre: Parameters<TestCtLog["signSct"]>[0]) => ctlog.signSct(pre) : undefined);
    return ca.issueLeaf({ ...options, sct });
  }

  private async leafFor(identity: KeylessIdentity, privateKey: KeyObject, integratedTime: number): Promise<Leaf> {
    const publicKey = createPublicKey(privateKey);
    return this.issueLeaf(
      {
        publicKey,
        subject: identity.subject ?? "signer@example.com",
        issuer: identity.issuer === undefined ? "https://issuer.example.com" : identity.issuer,
        notBefore: new Date((integratedTime - 60) * 1000),
        ...identity.leaf,
      },
      identity.ca,
    );
  }

  /**
   * A keyless legacy signature over `payload`, as cosign makes it with Fulcio and Rekor v1: the signature, leaf,
   * chain, the hashedrekord entry with its SET, and the layer annotations.
   */
  async keylessSign(payload: Buffer, identity: KeylessIdentity = {}): Promise<KeylessSignature> {
    const privateKey = identity.privateKey ?? generateEcKeyPair("P-256").privateKey;
    const integratedTime = identity.integratedTime ?? Math.floor(Date.now() / 1000);
    const leaf = await this.leafFor(identity, privateKey, integratedTime);
    const signature = sign(hashFor(privateKey), payload, privateKey);
    const logEntry = this.rekor.append(
      TestTransparencyLog.hashedRekordBody({
        signature,
        verifierPem: leaf.pem,
        digestHex: createHash("sha256").update(payload).digest("hex"),
      }),
      { integratedTime },
    );
    const rekorBundle: LegacyRekorBundle = {
      SignedEntryTimestamp: logEntry.signedEntryTimestamp.toString("base64"),
      Payload: {
        body: logEntry.body.toString("base64"),
        integratedTime: logEntry.integratedTime,
        logIndex: logEntry.logIndex,
        logID: logEntry.logID,
      },
    };
    return {
      payload,
      signature,
      certificatePem: leaf.pem,
      chainPem: leaf.chainPem,
      logEntry,
      rekorBundle,
      annotations: {
        [Annotation.signature]: signature.toString("base64"),
        [Annotation.certificate]: leaf.pem,
        [Annotation.chain]: leaf.chainPem,
        [Annotation.bundle]: formatLegacyRekorBundle(rekorBundle),
      },
      privateKey,
    };
  }

  /** A keyless v0.3 bundle: DSSE envelope of `payload` (an in-toto statement by default), dsse tlog entry. */
  async keylessBundle(
    payload: Buffer,
    identity: KeylessIdentity = {},
    payloadType: string = InTotoPayloadType,
  ): Promise<KeylessBundle> {
    const privateKey = identity.privateKey ?? generateEcKeyPair("P-256").privateKey;
    const integratedTime = identity.integratedTime ?? Math.floor(Date.now() / 1000);
    const leaf = await this.leafFor(identity, privateKey, integratedTime);
    const signature = sign(hashFor(privateKey), preAuthEncoding(payloadType, payload), privateKey);
    const envelope = dsseEnvelope(payload, payloadType, signature);
    const logEntry = this.rekor.append(
      TestTransparencyLog.dsseBody({
        envelopeJson: JSON.stringify(envelope),
        payload,
        signature,
        verifierPem: leaf.pem,
      }),
      { integratedTime },
    );
    return {
      bundle: dsseBundle({ envelope, certificatePem: leaf.pem, tlogEntries: [logEntry] }),
      certificatePem: leaf.pem,
      logEntry,
      privateKey,
    };
  }

  private timestampOver(signature: Buffer, identity: KeylessIdentity, options: TimestampingOptions): Buffer {
    const authority = options.authority ?? this.tsa;
    if (!authority) throw new Error("this test Sigstore has no TSA: create it with { tsa: true } or pass an authority");
    const genTime =
      options.genTime ?? (identity.integratedTime !== undefined ? new Date(identity.integratedTime * 1000) : undefined);
    return authority.timestamp(options.over ?? signature, { genTime });
  }

  /**
   * A keyless legacy signature timestamped by a TSA, as `cosign sign --timestamp-server-url … --tlog-upload=false`
   * writes it: signature, certificate, chain and `rfc3161timestamp` annotations, no Rekor bundle (unless `rekor`).
   */
  async keylessSignTimestamped(
    payload: Buffer,
    identity: KeylessIdentity = {},
    options: TimestampingOptions = {},
  ): Promise<TimestampedKeylessSignature> {
    const privateKey = identity.privateKey ?? generateEcKeyPair("P-256").privateKey;
    let base: Omit<TimestampedKeylessSignature, "timestamp">;
    if (options.rekor) {
      const signed = await this.keylessSign(payload, { ...identity, privateKey });
      base = { ...signed, annotations: { ...signed.annotations } };
    } else {
      const signingTime = identity.integratedTime ?? Math.floor(Date.now() / 1000);
      const leaf = await this.leafFor(identity, privateKey, signingTime);
      const signature = sign(hashFor(privateKey), payload, privateKey);
      base = {
        payload,
        signature,
        certificatePem: leaf.pem,
        chainPem: leaf.chainPem,
        annotations: {
          [Annotation.signature]: signature.toString("base64"),
          [Annotation.certificate]: leaf.pem,
          [Annotation.chain]: leaf.chainPem,
        },
        privateKey,
      };
    }
    const timestamp = this.timestampOver(base.signature, identity, options);
    base.annotations[Annotation.rfc3161Timestamp] = formatLegacyTimestampAnnotation(timestamp);
    return { ...base, timestamp };
  }

  /** A keyless v0.3 bundle whose time comes from the TSA (over the DSSE signature), no tlog entry (unless `rekor`). */
  async keylessBundleTimestamped(
    payload: Buffer,
    identity: KeylessIdentity = {},
    options: TimestampingOptions = {},
    payloadType: string = InTotoPayloadType,
  ): Promise<TimestampedKeylessBundle> {
    const privateKey = identity.privateKey ?? generateEcKeyPair("P-256").privateKey;
    let made: Omit<TimestampedKeylessBundle, "timestamp">;
    if (options.rekor) {
      made = await this.keylessBundle(payload, { ...identity, privateKey }, payloadType);
    } else {
      const signingTime = identity.integratedTime ?? Math.floor(Date.now() / 1000);
      const leaf = await this.leafFor(identity, privateKey, signingTime);
      const signature = sign(hashFor(privateKey), preAuthEncoding(payloadType, payload), privateKey);
      const envelope = dsseEnvelope(payload, payloadType, signature);
      made = {
        bundle: dsseBundle({ envelope, certificatePem: leaf.pem, tlogEntries: [] }),
        certificatePem: leaf.pem,
        privateKey,
      };
    }
    const sig = made.bundle.dsseEnvelope.signatures[0]?.sig ?? "";
    const timestamp = this.timestampOver(Buffer.from(sig, "base64"), identity, options);
    made.bundle.verificationMaterial.timestampVerificationData = {
      rfc3161Timestamps: [{ signedTimestamp: timestamp.toString("base64") }],
    };
    return { ...made, timestamp };
  }
}

export async function createTestSigstore(options: TestSigstoreOptions = {}): Promise<TestSigstore> {
  const ca = await TestCertificateAuthority.create(options.ca);
  const rekor = new TestTransparencyLog({ curve: options.rekorCurve, origin: options.rekorOrigin });
  const ctlog = options.ctlog ? new TestCtLog() : undefined;
  const tsa = options.tsa ? await TestTimestampAuthority.create(options.tsa === true ? {} : options.tsa) : undefined;
  return new TestSigstore(ca, rekor, ctlog, tsa);
}

/** An attacker's CA: same shape as the trusted one, absent from any trusted root. */
export function createAttackerCa(options: CertificateAuthorityOptions = {}): Promise<TestCertificateAuthority> {
  return TestCertificateAuthority.create({ name: "attacker", ...options });
}
export * from "./server.ts";
