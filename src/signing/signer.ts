// Who signs: a key file (cosign.key) or a keyless identity (an OIDC token exchanged at Fulcio for a short-lived
// certificate, the signature logged in Rekor v1 for the SET the legacy annotation carries). Both produce the
// material cosign stores: the signature, plus certificate, chain and Rekor bundle for keyless, and v0.3 bundles.

import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import type { TransparencyLogEntry as ProtoTlogEntry } from "@sigstore/bundle";
import { X509Certificate } from "@sigstore/core";
import { HashAlgorithm } from "@sigstore/protobuf-specs";
import { CIContextProvider, type IdentityProvider, RekorWitness } from "@sigstore/sign";
import { badRequest, upstream } from "../errors.ts";
import { Annotation, type LegacyRekorBundle } from "./cosign-format.ts";
import { publicKeyPem, signatureAlgorithm, signWithKey } from "./keys.ts";
import {
  dsseBundle,
  dsseEnvelope,
  preAuthEncoding,
  publicKeyHint,
  type SigstoreBundleJson,
  type TransparencyLogEntry,
} from "./sigstore-bundle.ts";

export const DefaultFulcioUrl = "https://fulcio.sigstore.dev";
export const DefaultRekorUrl = "https://rekor.sigstore.dev";

/** What a legacy `.sig` layer records about one signature. */
export interface SignatureMaterial {
  signature: Buffer;
  /** Key mode: the signer's public key (not written to the layer; used to recognise earlier signatures). */
  publicKeyPem?: string;
  certificatePem?: string;
  chainPem?: string;
  rekorBundle?: LegacyRekorBundle;
}

export interface Signer {
  /** For messages: "key <fingerprint>" or "keyless via <fulcio>". */
  readonly description: string;
  /** Signs a simple-signing payload for a legacy `.sig` layer. */
  sign(payload: Buffer): Promise<SignatureMaterial>;
  /** Signs `payload` as a DSSE envelope and returns the v0.3 Sigstore bundle. */
  signBundle(payload: Buffer, payloadType: string): Promise<SigstoreBundleJson>;
  /**
   * Whether an existing layer (its annotations) over `payload` is already a signature by this signer: the same
   * key, or for keyless the same certificate identity (SAN and issuer). A keyless signer obtains its certificate
   * to answer, which costs no transparency log entry.
   */
  recognizes(annotations: Readonly<Record<string, string>>, payload: Buffer): Promise<boolean>;
  /** The same question for an existing v0.3 bundle: is it this signer's DSSE signature over `payload`? */
  recognizesBundle(bundle: SigstoreBundleJson, payload: Buffer, payloadType: string): Promise<boolean>;
}

/** The envelope's signatures when it carries exactly `payload` of `payloadType`; otherwise none. */
function envelopeSignaturesOver(bundle: SigstoreBundleJson, payload: Buffer, payloadType: string): Buffer[] {
  const envelope = bundle.dsseEnvelope;
  if (envelope?.payloadType !== payloadType || typeof envelope.payload !== "string") return [];
  if (!Buffer.from(envelope.payload, "base64").equals(payload)) return [];
  return (envelope.signatures ?? []).map((s) => Buffer.from(s.sig ?? "", "base64"));
}

/** The signing certificate of a bundle (v0.3 `certificate`, or the first of an older chain), as PEM. */
function bundleCertificatePem(bundle: SigstoreBundleJson): string | undefined {
  const material = bundle.verificationMaterial as SigstoreBundleJson["verificationMaterial"] & {
    x509CertificateChain?: { certificates?: { rawBytes: string }[] };
  };
  const raw = material?.certificate?.rawBytes ?? material?.x509CertificateChain?.certificates?.[0]?.rawBytes;
  if (!raw) return undefined;
  const body = Buffer.from(raw, "base64")
    .toString("base64")
    .replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----\n`;
}

/** SAN plus both issuer extensions: what makes two Fulcio certificates "the same identity". */
export function certificateIdentityKey(certificatePem: string): string {
  const cert = X509Certificate.parse(certificatePem);
  const raw = (oid: string) => cert.extension(oid)?.value.toString("hex") ?? "";
  return `${cert.subjectAltName ?? ""}|${raw("1.3.6.1.4.1.57264.1.1")}|${raw("1.3.6.1.4.1.57264.1.8")}`;
}

function legacyRekorBundle(entry: TransparencyLogEntry): LegacyRekorBundle {
  if (!entry.signedEntryTimestamp) throw upstream("Rekor returned no signed entry timestamp");
  return {
    SignedEntryTimestamp: entry.signedEntryTimestamp.toString("base64"),
    Payload: {
      body: entry.body.toString("base64"),
      integratedTime: entry.integratedTime,
      logIndex: entry.logIndex,
      logID: entry.logID,
    },
  };
}

function fromProtoEntry(entry: ProtoTlogEntry): TransparencyLogEntry {
  const proof = entry.inclusionProof;
  return {
    body: Buffer.from(entry.canonicalizedBody),
    integratedTime: Number(entry.integratedTime),
    logIndex: Number(entry.logIndex),
    logID: Buffer.from(entry.logId?.keyId ?? []).toString("hex"),
    kind: entry.kindVersion?.kind ?? "",
    apiVersion: entry.kindVersion?.version ?? "",
    signedEntryTimestamp: entry.inclusionPromise ? Buffer.from(entry.inclusionPromise.signedEntryTimestamp) : undefined,
    inclusionProof: proof?.checkpoint
      ? {
          logIndex: Number(proof.logIndex),
          treeSize: Number(proof.treeSize),
          rootHash: Buffer.from(proof.rootHash),
          hashes: proof.hashes.map((h) => Buffer.from(h)),
          checkpoint: proof.checkpoint.envelope,
        }
      : undefined,
  };
}

/** Logs signatures in a Rekor v1 log through sigstore-js's witness. */
class RekorLog {
  private readonly witness: RekorWitness;
  constructor(rekorUrl: string, timeoutMs: number) {
    this.witness = new RekorWitness({ rekorBaseURL: rekorUrl, entryType: "dsse", timeout: timeoutMs, retry: 2 });
  }

  async logMessageSignature(payload: Buffer, signature: Buffer, verifierPem: string): Promise<TransparencyLogEntry> {
    return this.testify(
      {
        $case: "messageSignature",
        messageSignature: {
          messageDigest: { algorithm: HashAlgorithm.SHA2_256, digest: createHash("sha256").update(payload).digest() },
          signature,
        },
      },
      verifierPem,
    );
  }

  async logEnvelope(payload: Buffer, payloadType: string, signature: Buffer, verifierPem: string) {
    return this.testify(
      { $case: "dsseEnvelope", dsseEnvelope: { payload, payloadType, signatures: [{ sig: signature, keyid: "" }] } },
      verifierPem,
    );
  }

  private async testify(
    content: Parameters<RekorWitness["testify"]>[0],
    verifierPem: string,
  ): Promise<TransparencyLogEntry> {
    let result: Awaited<ReturnType<RekorWitness["testify"]>>;
    try {
      result = await this.witness.testify(content, verifierPem);
    } catch (err) {
      throw upstream(`Rekor: ${(err as Error).message}`, err);
    }
    const entry = result.tlogEntries[0];
    if (!entry) throw upstream("Rekor returned no entry");
    return fromProtoEntry(entry);
  }
}

export interface KeySignerOptions {
  /** Also log signatures in this Rekor v1 log (cosign's default for key signing); none by default. */
  rekorUrl?: string;
  timeoutMs?: number;
}

/** Signs with a private key, as `cosign sign --key`. */
export class KeySigner implements Signer {
  readonly description: string;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly publicKeyPem: string;
  private readonly rekor: RekorLog | undefined;

  constructor(privateKey: KeyObject, options: KeySignerOptions = {}) {
    signatureAlgorithm(privateKey);
    this.privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
    this.publicKeyPem = publicKeyPem(this.publicKey);
    const spki = this.publicKey.export({ type: "spki", format: "der" });
    this.description = `key sha256:${createHash("sha256").update(spki).digest("hex").slice(0, 16)}`;
    this.rekor = options.rekorUrl ? new RekorLog(options.rekorUrl, options.timeoutMs ?? 30_000) : undefined;
  }

  async sign(payload: Buffer): Promise<SignatureMaterial> {
    const signature = signWithKey(this.privateKey, payload);
    const material: SignatureMaterial = { signature, publicKeyPem: this.publicKeyPem };
    if (this.rekor)
      material.rekorBundle = legacyRekorBundle(
        await this.rekor.logMessageSignature(payload, signature, this.publicKeyPem),
      );
    return material;
  }

  async signBundle(payload: Buffer, payloadType: string): Promise<SigstoreBundleJson> {
    const signature = signWithKey(this.privateKey, preAuthEncoding(payloadType, payload));
    const tlogEntries = this.rekor
      ? [await this.rekor.logEnvelope(payload, payloadType, signature, this.publicKeyPem)]
      : [];
    return dsseBundle({
      envelope: dsseEnvelope(payload, payloadType, signature),
      publicKeyHint: publicKeyHint(this.publicKey.export({ type: "spki", format: "der" })),
      tlogEntries,
    });
  }

  async recognizes(annotations: Readonly<Record<string, string>>, payload: Buffer): Promise<boolean> {
    // A keyless layer carries a certificate: even if its key were ours, it is not "signed with this key file".
    if (annotations[Annotation.certificate]) return false;
    const signature = annotations[Annotation.signature];
    if (!signature) return false;
    try {
      return verify(signatureAlgorithm(this.publicKey), payload, this.publicKey, Buffer.from(signature, "base64"));
    } catch {
      return false;
    }
  }

  async recognizesBundle(bundle: SigstoreBundleJson, payload: Buffer, payloadType: string): Promise<boolean> {
    if (bundleCertificatePem(bundle)) return false;
    const signed = preAuthEncoding(payloadType, payload);
    return envelopeSignaturesOver(bundle, payload, payloadType).some((signature) => {
      try {
        return verify(signatureAlgorithm(this.publicKey), signed, this.publicKey, signature);
      } catch {
        return false;
      }
    });
  }
}

export interface KeylessSignerOptions {
  fulcioUrl?: string;
  rekorUrl?: string;
  /** A fixed OIDC token (`--identity-token`); default: the CI provider (GitHub Actions, or SIGSTORE_ID_TOKEN). */
  identityToken?: string;
  /** Audience asked of the CI provider. */
  audience?: string;
  timeoutMs?: number;
}

/** Upper bound on a Fulcio response (a chain of a few certificates). */
const maxFulcioResponseBytes = 256 * 1024;

/**
 * Keyless signing: an ephemeral P-256 key certified by Fulcio for the OIDC identity, every signature logged in
 * Rekor. The Fulcio exchange is done here rather than with sigstore-js's FulcioSigner because that signer keeps
 * only the leaf, and cosign's legacy format also records the chain. The token comes from sigstore-js's CI
 * provider and the Rekor entry from its RekorWitness.
 */
export class KeylessSigner implements Signer {
  readonly description: string;
  private readonly fulcioUrl: string;
  private readonly rekor: RekorLog;
  private readonly identity: IdentityProvider;
  private readonly timeoutMs: number;
  private certificate: Promise<{ leafPem: string; chainPem: string; privateKey: KeyObject }> | undefined;

  constructor(options: KeylessSignerOptions = {}) {
    this.fulcioUrl = (options.fulcioUrl ?? DefaultFulcioUrl).replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.rekor = new RekorLog((options.rekorUrl ?? DefaultRekorUrl).replace(/\/+$/, ""), this.timeoutMs);
    const token = options.identityToken;
    this.identity = token ? { getToken: async () => token } : new CIContextProvider(options.audience ?? "sigstore");
    this.description = `keyless via ${this.fulcioUrl}`;
  }

  /** One certificate per signer: cosign also signs every manifest of a recursive run with one certificate. */
  private obtainCertificate() {
    this.certificate ??= this.requestCertificate();
    return this.certificate;
  }

  private async requestCertificate() {
    const token = await this.identity.getToken().catch((err: unknown) => {
      throw badRequest(
        `keyless signing found no OIDC token (${err instanceof Error ? err.message : String(err)}): run it in a GitHub Actions job with \`permissions: id-token: write\`, or pass --identity-token`,
      );
    });
    const subject = jwtSubject(token);
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const request = {
      credentials: { oidcIdentityToken: token },
      publicKeyRequest: {
        publicKey: { algorithm: "ECDSA", content: publicKeyPem(publicKey) },
        // Proof of possession: the token's subject signed with the key to certify.
        proofOfPossession: sign("sha256", Buffer.from(subject), privateKey).toString("base64"),
      },
    };
    let response: Response;
    try {
      response = await fetch(`${this.fulcioUrl}/api/v2/signingCert`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw upstream(`Fulcio ${this.fulcioUrl}: ${(err as Error).message}`, err);
    }
    const text = await response.text();
    if (text.length > maxFulcioResponseBytes) throw upstream(`Fulcio ${this.fulcioUrl}: response too large`);
    if (!response.ok) throw upstream(`Fulcio ${this.fulcioUrl}: HTTP ${response.status}: ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as {
      signedCertificateEmbeddedSct?: { chain?: { certificates?: string[] } };
      signedCertificateDetachedSct?: { chain?: { certificates?: string[] } };
    };
    const chain = (body.signedCertificateEmbeddedSct ?? body.signedCertificateDetachedSct)?.chain?.certificates ?? [];
    const [leaf, ...rest] = chain;
    if (!leaf) throw upstream(`Fulcio ${this.fulcioUrl}: no certificate in response`);
    const normalize = (pem: string) => (pem.endsWith("\n") ? pem : `${pem}\n`);
    return { leafPem: normalize(leaf), chainPem: rest.map(normalize).join(""), privateKey };
  }

  async sign(payload: Buffer): Promise<SignatureMaterial> {
    const { leafPem, chainPem, privateKey } = await this.obtainCertificate();
    const signature = sign("sha256", payload, privateKey);
    const entry = await this.rekor.logMessageSignature(payload, signature, leafPem);
    return { signature, certificatePem: leafPem, chainPem, rekorBundle: legacyRekorBundle(entry) };
  }

  async signBundle(payload: Buffer, payloadType: string): Promise<SigstoreBundleJson> {
    const { leafPem, privateKey } = await this.obtainCertificate();
    const signature = sign("sha256", preAuthEncoding(payloadType, payload), privateKey);
    const entry = await this.rekor.logEnvelope(payload, payloadType, signature, leafPem);
    return dsseBundle({
      envelope: dsseEnvelope(payload, payloadType, signature),
      certificatePem: leafPem,
      tlogEntries: [entry],
    });
  }

  async recognizes(annotations: Readonly<Record<string, string>>): Promise<boolean> {
    const existing = annotations[Annotation.certificate];
    if (!existing) return false;
    const { leafPem } = await this.obtainCertificate();
    try {
      return certificateIdentityKey(existing) === certificateIdentityKey(leafPem);
    } catch {
      return false;
    }
  }

  async recognizesBundle(bundle: SigstoreBundleJson, payload: Buffer, payloadType: string): Promise<boolean> {
    const existing = bundleCertificatePem(bundle);
    if (!existing || envelopeSignaturesOver(bundle, payload, payloadType).length === 0) return false;
    const { leafPem } = await this.obtainCertificate();
    try {
      return certificateIdentityKey(existing) === certificateIdentityKey(leafPem);
    } catch {
      return false;
    }
  }
}

function jwtSubject(token: string): string {
  const part = token.split(".")[1];
  if (!part) throw badRequest("identity token is not a JWT");
  let claims: { sub?: unknown; email?: unknown };
  try {
    claims = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    throw badRequest("identity token is not a JWT");
  }
  // Fulcio's proof of possession signs the email claim for email tokens and `sub` otherwise.
  const subject = typeof claims.email === "string" ? claims.email : claims.sub;
  if (typeof subject !== "string") throw badRequest("identity token has no subject");
  return subject;
}
