// A Fulcio-like certificate authority for tests: a root and an intermediate that issue short-lived code-signing
// leaf certificates carrying Fulcio's identity extensions. Every property of a leaf can be overridden so tests can
// build the bad certificates an attacker would present.

import "reflect-metadata";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  webcrypto,
} from "node:crypto";
import * as x509 from "@peculiar/x509";
import { derOctetString, derUtf8String } from "./der.ts";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1]);

/** Fulcio's OIDC issuer extensions: .1.1 holds the raw string, .1.8 a DER UTF8String. */
export const OidFulcioIssuerV1 = "1.3.6.1.4.1.57264.1.1";
export const OidFulcioIssuerV2 = "1.3.6.1.4.1.57264.1.8";
export const OidCodeSigning = "1.3.6.1.5.5.7.3.3";
export const OidSctList = "1.3.6.1.4.1.11129.2.4.2";

export type EcCurve = "P-256" | "P-384";

const hashFor: Record<EcCurve, string> = { "P-256": "SHA-256", "P-384": "SHA-384" };
const nodeCurve: Record<EcCurve, string> = { "P-256": "prime256v1", "P-384": "secp384r1" };

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateEcKeyPair(curve: EcCurve = "P-256"): KeyPair {
  return generateKeyPairSync("ec", { namedCurve: nodeCurve[curve] });
}

async function toWebKeys(pair: KeyPair, curve: EcCurve): Promise<CryptoKeyPair> {
  const algorithm = { name: "ECDSA", namedCurve: curve };
  return {
    privateKey: await pair.privateKey.toCryptoKey(algorithm, true, ["sign"]),
    publicKey: await pair.publicKey.toCryptoKey(algorithm, true, ["verify"]),
  } as unknown as CryptoKeyPair;
}

function curveOf(key: KeyObject): EcCurve {
  const named = key.asymmetricKeyDetails?.namedCurve;
  if (named === "prime256v1" || named === "P-256") return "P-256";
  if (named === "secp384r1" || named === "P-384") return "P-384";
  throw new Error(`test CA supports EC P-256/P-384 subject keys only, got ${named ?? key.asymmetricKeyType}`);
}

export function toPem(der: Uint8Array, label = "CERTIFICATE"): string {
  const lines =
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** One certificate with the key that signs for it. */
export interface IssuedCertificate {
  der: Buffer;
  pem: string;
  certificate: x509.X509Certificate;
}

interface Authority extends IssuedCertificate {
  keys: CryptoKeyPair;
  curve: EcCurve;
}

/** A signed certificate timestamp to embed, made by whoever plays the CT log (see TestCtLog). */
export type SctSigner = (preCertificate: { issuerKeyHash: Buffer; tbsCertificate: Buffer }) => Buffer;

export interface LeafOptions {
  /** The key the certificate certifies (the signer's ephemeral key). EC P-256 or P-384. */
  publicKey: KeyObject;
  /** The SAN value: an email address, or a URI (GitHub workflow identity). */
  subject?: string;
  /** How the SAN is encoded; default: email when the subject has an "@" and no "://", else URI. */
  subjectType?: "email" | "uri";
  /** OIDC issuer put in both .1.1 and .1.8 (unless overridden below). `null` leaves both out. */
  issuer?: string | null;
  /** Overrides .1.1 (raw) alone; `null` omits it. */
  issuerV1?: string | null;
  /** Overrides .1.8 (UTF8String) alone; `null` omits it. */
  issuerV2?: string | null;
  /** Extended key usages; default codeSigning. `null` omits the extension. */
  extendedKeyUsages?: string[] | null;
  /** Key usage flags (x509.KeyUsageFlags); default digitalSignature. `null` omits the extension. */
  keyUsage?: number | null;
  notBefore?: Date;
  notAfter?: Date;
  /** Extra extensions, e.g. GitHub workflow OIDs. */
  extensions?: x509.Extension[];
  /** Embeds an SCT list signed by this callback. */
  sct?: SctSigner;
}

export interface Leaf extends IssuedCertificate {
  /** Intermediate then root, PEM: what cosign writes in the chain annotation. */
  chainPem: string;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  return bytes.toString("hex");
}

function issued(certificate: x509.X509Certificate): IssuedCertificate {
  const der = Buffer.from(certificate.rawData);
  return { der, pem: toPem(der), certificate };
}

export interface CertificateAuthorityOptions {
  /** Curve of the CA keys; default P-384 like Fulcio's. */
  curve?: EcCurve;
  /** Common name prefix, to tell apart a trusted CA from an attacker's in messages. */
  name?: string;
  /** Validity of the CA certificates; default from one day ago for ten years. */
  notBefore?: Date;
  notAfter?: Date;
}

/** One CA certificate and its private key, PEM (PKCS#8): what persisting a test CA stores. */
export interface AuthorityMaterial {
  certificatePem: string;
  privateKeyPem: string;
}

export interface CertificateAuthorityMaterial {
  root: AuthorityMaterial;
  intermediate: AuthorityMaterial;
}

function authorityToMaterial(authority: Authority): AuthorityMaterial {
  const privateKey = KeyObject.from(authority.keys.privateKey as Parameters<typeof KeyObject.from>[0]);
  return {
    certificatePem: authority.pem,
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

async function authorityFromMaterial(material: AuthorityMaterial): Promise<Authority> {
  const certificate = new x509.X509Certificate(material.certificatePem);
  const privateKey = createPrivateKey(material.privateKeyPem);
  const curve = curveOf(privateKey);
  const keys = await toWebKeys({ privateKey, publicKey: createPublicKey(privateKey) }, curve);
  return { ...issued(certificate), keys, curve };
}

/** A root and an intermediate, like Fulcio's `sigstore` / `sigstore-intermediate`. */
export class TestCertificateAuthority {
  readonly root: Authority;
  readonly intermediate: Authority;
  private constructor(root: Authority, intermediate: Authority) {
    this.root = root;
    this.intermediate = intermediate;
  }

  static async create(options: CertificateAuthorityOptions = {}): Promise<TestCertificateAuthority> {
    const curve = options.curve ?? "P-384";
    const name = options.name ?? "test-sigstore";
    const notBefore = options.notBefore ?? new Date(Date.now() - 24 * 3600_000);
    const notAfter = options.notAfter ?? new Date(Date.now() + 10 * 365 * 24 * 3600_000);
    const signingAlgorithm = { name: "ECDSA", hash: hashFor[curve] };

    const rootKeys = await toWebKeys(generateEcKeyPair(curve), curve);
    const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `O=${name}, CN=${name}`,
      keys: rootKeys,
      notBefore,
      notAfter,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const intermediateKeys = await toWebKeys(generateEcKeyPair(curve), curve);
    const intermediateCert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `O=${name}, CN=${name}-intermediate`,
      issuer: rootCert.subject,
      publicKey: intermediateKeys.publicKey,
      signingKey: rootKeys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.ExtendedKeyUsageExtension([OidCodeSigning]),
        await x509.SubjectKeyIdentifierExtension.create(intermediateKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    return new TestCertificateAuthority(
      { ...issued(rootCert), keys: rootKeys, curve },
      { ...issued(intermediateCert), keys: intermediateKeys, curve },
    );
  }

  /** The certificates and keys, to persist this CA and restore it later with `fromMaterial`. */
  toMaterial(): CertificateAuthorityMaterial {
    return { root: authorityToMaterial(this.root), intermediate: authorityToMaterial(this.intermediate) };
  }

  /** A CA restored from `toMaterial()`'s output: same certificates, same keys (e.g. the test bed's persisted CA). */
  static async fromMaterial(material: CertificateAuthorityMaterial): Promise<TestCertificateAuthority> {
    return new TestCertificateAuthority(
      await authorityFromMaterial(material.root),
      await authorityFromMaterial(material.intermediate),
    );
  }

  /** Intermediate then root, PEM. */
  get chainPem(): string {
    return this.intermediate.pem + this.root.pem;
  }

  /** Issues a Fulcio-style leaf: no subject DN, SAN identity, issuer extensions, codeSigning, ten minutes. */
  async issueLeaf(options: LeafOptions): Promise<Leaf> {
    const curve = curveOf(options.publicKey);
    const publicKey = await options.publicKey.toCryptoKey({ name: "ECDSA", namedCurve: curve }, true, ["verify"]);
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
    const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 10 * 60_000);
    const extensions = await this.leafExtensions(options, publicKey as unknown as CryptoKey);
    const params = {
      serialNumber: serial(),
      subject: "",
      issuer: this.intermediate.certificate.subject,
      publicKey: publicKey as unknown as CryptoKey,
      signingKey: this.intermediate.keys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm: { name: "ECDSA", hash: hashFor[this.intermediate.curve] },
    };
    let certificate = await x509.X509CertificateGenerator.create({ ...params, extensions });
    if (options.sct) {
      // The SCT signs the TBS certificate without the SCT list itself, which is what verifiers rebuild by removing
      // the extension; so issue once without it, sign that TBS, then reissue with identical fields plus the list.
      const tbsCertificate = tbsOf(Buffer.from(certificate.rawData));
      const issuerKeyHash = createHash("sha256")
        .update(Buffer.from(this.intermediate.certificate.publicKey.rawData))
        .digest();
      const sct = options.sct({ issuerKeyHash, tbsCertificate });
      const sctEntry = Buffer.concat([u16(sct.length), sct]);
      const list = Buffer.concat([u16(sctEntry.length), sctEntry]);
      certificate = await x509.X509CertificateGenerator.create({
        ...params,
        extensions: [...extensions, new x509.Extension(OidSctList, false, derOctetString(list))],
      });
    }
    return { ...issued(certificate), chainPem: this.chainPem };
  }

  private async leafExtensions(options: LeafOptions, publicKey: CryptoKey): Promise<x509.Extension[]> {
    const extensions: x509.Extension[] = [];
    if (options.keyUsage !== null)
      extensions.push(new x509.KeyUsagesExtension(options.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true));
    if (options.extendedKeyUsages !== null)
      extensions.push(new x509.ExtendedKeyUsageExtension(options.extendedKeyUsages ?? [OidCodeSigning]));
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(publicKey));
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(this.intermediate.keys.publicKey));
    if (options.subject !== undefined) {
      const type =
        options.subjectType ?? (options.subject.includes("@") && !options.subject.includes("://") ? "email" : "uri");
      extensions.push(
        new x509.SubjectAlternativeNameExtension(
          [{ type: type === "uri" ? "url" : "email", value: options.subject }],
          true,
        ),
      );
    }
    const issuerV1 = options.issuerV1 !== undefined ? options.issuerV1 : options.issuer;
    const issuerV2 = options.issuerV2 !== undefined ? options.issuerV2 : options.issuer;
    if (issuerV1 != null) extensions.push(new x509.Extension(OidFulcioIssuerV1, false, Buffer.from(issuerV1, "utf8")));
    if (issuerV2 != null) extensions.push(new x509.Extension(OidFulcioIssuerV2, false, derUtf8String(issuerV2)));
    extensions.push(...(options.extensions ?? []));
    return extensions;
  }
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** The TBSCertificate element (first element of the Certificate SEQUENCE), DER. */
function tbsOf(certificateDer: Buffer): Buffer {
  const { contentStart } = readHeader(certificateDer, 0);
  const tbs = readHeader(certificateDer, contentStart);
  return certificateDer.subarray(contentStart, tbs.contentStart + tbs.length);
}

function readHeader(der: Buffer, offset: number): { contentStart: number; length: number } {
  const first = der[offset + 1] ?? 0;
  if (first < 0x80) return { contentStart: offset + 2, length: first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 2 + i] ?? 0);
  return { contentStart: offset + 2 + count, length };
}
