// An RFC 3161 timestamp authority for tests: its own self-signed root and a TSA leaf (timeStamping EKU,
// critical, as RFC 3161 §2.3 requires), issuing time-stamp responses shaped like sigstore's timestamp-authority
// gives them to cosign: a TimeStampResp whose token is CMS SignedData over a TSTInfo, signed attributes
// contentType, signingTime, messageDigest and signingCertificateV2, and the TSA certificate embedded.
// cosign timestamps the raw signature bytes and stores the whole response; see ../cosign-format.ts.

import "reflect-metadata";
import { createHash, type KeyObject, randomBytes, sign, type webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { X509Certificate as SigstoreCertificate } from "@sigstore/core";
import { type EcCurve, generateEcKeyPair, type IssuedCertificate, type KeyPair, toPem } from "./ca.ts";
import {
  derGeneralizedTime,
  derInteger,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derTlv,
  derUtcTime,
} from "./der.ts";

export const OidTimeStamping = "1.3.6.1.5.5.7.3.8";

const Oid = {
  signedData: "1.2.840.113549.1.7.2",
  tstInfo: "1.2.840.113549.1.9.16.1.4",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingTime: "1.2.840.113549.1.9.5",
  signingCertificateV2: "1.2.840.113549.1.9.16.2.47",
} as const;

export type TimestampHash = "sha256" | "sha384" | "sha512";

const hashOid: Record<TimestampHash, string> = {
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
};
const ecdsaOid: Record<EcCurve, { oid: string; hash: string }> = {
  "P-256": { oid: "1.2.840.10045.4.3.2", hash: "sha256" },
  "P-384": { oid: "1.2.840.10045.4.3.3", hash: "sha384" },
};

/** A policy OID under the `2.999` arc that X.660 reserves for examples. */
export const TestTsaPolicy = "2.999.3161.1";

export interface TimestampAuthorityOptions {
  /** Common name prefix; also tells a trusted TSA from a stranger's in messages. */
  name?: string;
  /** Curve of the TSA keys; default P-256. */
  curve?: EcCurve;
  /** Validity of the root and the TSA certificate; default from one day ago for ten years. */
  notBefore?: Date;
  notAfter?: Date;
  policy?: string;
  /** The TSA certificate's extended key usages; default timeStamping, critical. `null` leaves the extension out. */
  extendedKeyUsage?: { usages: string[]; critical: boolean } | null;
}

export interface TimestampOptions {
  /** The time the token certifies; default now. Encoded in whole seconds. */
  genTime?: Date;
  /** Hash of the message imprint; default sha256 (what cosign requests). */
  hashAlgorithm?: TimestampHash;
  /** A nonce, as cosign puts one in every request. Default: a random one. */
  nonce?: bigint;
}

/** A `timestampAuthorities` entry of trusted_root.json. */
export interface TimestampAuthorityJson {
  subject: { organization: string; commonName: string };
  uri: string;
  certChain: { certificates: { rawBytes: string }[] };
  validFor: { start: string; end?: string };
}

function positiveSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01; // positive, and no leading zero byte to strip
  return bytes.toString("hex");
}

async function webKeys(pair: KeyPair, curve: EcCurve) {
  const algorithm = { name: "ECDSA", namedCurve: curve };
  return {
    privateKey: await pair.privateKey.toCryptoKey(algorithm, true, ["sign"]),
    publicKey: await pair.publicKey.toCryptoKey(algorithm, true, ["verify"]),
  } as unknown as webcrypto.CryptoKeyPair;
}

function issued(certificate: x509.X509Certificate): IssuedCertificate {
  const der = Buffer.from(certificate.rawData);
  return { der, pem: toPem(der), certificate };
}

const algorithmIdentifier = (oid: string) => derSequence(derOid(oid));
const attribute = (oid: string, value: Buffer) => derSequence(derOid(oid), derSetOf(value));

export class TestTimestampAuthority {
  readonly name: string;
  readonly root: IssuedCertificate;
  /** The TSA certificate that signs the tokens. */
  readonly leaf: IssuedCertificate;
  readonly policy: string;
  readonly uri: string;
  private readonly signingKey: KeyObject;
  private readonly curve: EcCurve;

  private constructor(init: {
    name: string;
    root: IssuedCertificate;
    leaf: IssuedCertificate;
    policy: string;
    signingKey: KeyObject;
    curve: EcCurve;
  }) {
    this.name = init.name;
    this.root = init.root;
    this.leaf = init.leaf;
    this.policy = init.policy;
    this.uri = `https://${init.name}.tsa.test`;
    this.signingKey = init.signingKey;
    this.curve = init.curve;
  }

  static async create(options: TimestampAuthorityOptions = {}): Promise<TestTimestampAuthority> {
    const curve = options.curve ?? "P-256";
    const name = options.name ?? "test-tsa";
    const notBefore = options.notBefore ?? new Date(Date.now() - 24 * 3600_000);
    const notAfter = options.notAfter ?? new Date(Date.now() + 10 * 365 * 24 * 3600_000);
    const signingAlgorithm = { name: "ECDSA", hash: ecdsaOid[curve].hash === "sha384" ? "SHA-384" : "SHA-256" };

    const rootKeys = await webKeys(generateEcKeyPair(curve), curve);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: positiveSerial(),
      name: `O=${name}, CN=${name}-root`,
      keys: rootKeys,
      notBefore,
      notAfter,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const eku =
      options.extendedKeyUsage === undefined ? { usages: [OidTimeStamping], critical: true } : options.extendedKeyUsage;
    const leafPair = generateEcKeyPair(curve);
    const leafKeys = await webKeys(leafPair, curve);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: positiveSerial(),
      subject: `O=${name}, CN=${name}`,
      issuer: root.subject,
      publicKey: leafKeys.publicKey,
      signingKey: rootKeys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        ...(eku ? [new x509.ExtendedKeyUsageExtension(eku.usages, eku.critical)] : []),
        await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    return new TestTimestampAuthority({
      name,
      root: issued(root),
      leaf: issued(leaf),
      policy: options.policy ?? TestTsaPolicy,
      signingKey: leafPair.privateKey,
      curve,
    });
  }

  /** TSA certificate then root, PEM (what `cosign verify --timestamp-certificate-chain` takes). */
  get chainPem(): string {
    return this.leaf.pem + this.root.pem;
  }

  /** The trusted_root.json entry: the chain leaf first, valid from the root's notBefore. */
  trustedRootEntry(): TimestampAuthorityJson {
    return {
      subject: { organization: this.name, commonName: this.name },
      uri: this.uri,
      certChain: { certificates: [this.leaf.der, this.root.der].map((der) => ({ rawBytes: der.toString("base64") })) },
      validFor: { start: this.root.certificate.notBefore.toISOString() },
    };
  }

  /** A DER TimeStampResp (status granted) whose token certifies `data` (hashed here) at `genTime`. */
  timestamp(data: Uint8Array, options: TimestampOptions = {}): Buffer {
    const status = derSequence(derInteger(0));
    return derSequence(status, this.token(data, options));
  }

  /** The TimeStampToken alone: a CMS ContentInfo holding SignedData over the TSTInfo. */
  token(data: Uint8Array, options: TimestampOptions = {}): Buffer {
    const hash = options.hashAlgorithm ?? "sha256";
    const genTime = options.genTime ?? new Date();
    const tstInfo = derSequence(
      derInteger(1),
      derOid(this.policy),
      derSequence(algorithmIdentifier(hashOid[hash]), derOctetString(createHash(hash).update(data).digest())),
      derInteger(BigInt(`0x${positiveSerial()}`)),
      derGeneralizedTime(genTime),
      derInteger(options.nonce ?? BigInt(`0x${positiveSerial()}`)),
    );
    const signer = SigstoreCertificate.parse(Buffer.from(this.leaf.der));
    // The issuer Name and serial INTEGER exactly as the certificate encodes them: verifiers compare bytes.
    const issuerName = derTlv(0x30, signer.issuer);
    const serialNumber = derTlv(0x02, signer.serialNumber);
    const essCertIdV2 = derSequence(
      // hashAlgorithm is left out: its DEFAULT is sha256.
      derOctetString(createHash("sha256").update(this.leaf.der).digest()),
      derSequence(derSequence(derTlv(0xa4, issuerName)), serialNumber),
    );
    const signedAttributes = [
      attribute(Oid.contentType, derOid(Oid.tstInfo)),
      attribute(Oid.signingTime, derUtcTime(genTime)),
      attribute(Oid.messageDigest, derOctetString(createHash("sha256").update(tstInfo).digest())),
      attribute(Oid.signingCertificateV2, derSequence(derSequence(essCertIdV2))),
    ];
    // The signature covers the attributes as a SET OF; the SignerInfo carries them as `[0] IMPLICIT`.
    const attributesSet = derSetOf(...signedAttributes);
    const algorithm = ecdsaOid[this.curve];
    const signature = sign(algorithm.hash, attributesSet, this.signingKey);
    const signerInfo = derSequence(
      derInteger(1),
      derSequence(issuerName, serialNumber),
      algorithmIdentifier(hashOid.sha256),
      derTlv(0xa0, attributesSet.subarray(attributesSet.length - setContentLength(attributesSet))),
      algorithmIdentifier(algorithm.oid),
      derOctetString(signature),
    );
    const signedData = derSequence(
      derInteger(3),
      derSetOf(algorithmIdentifier(hashOid.sha256)),
      derSequence(derOid(Oid.tstInfo), derTlv(0xa0, derOctetString(tstInfo))),
      derTlv(0xa0, this.leaf.der),
      derSetOf(signerInfo),
    );
    return derSequence(derOid(Oid.signedData), derTlv(0xa0, signedData));
  }
}

/** Length of a DER TLV's content (the TLV is whole, so it is what follows the header). */
function setContentLength(tlv: Buffer): number {
  const first = tlv[1] ?? 0;
  if (first < 0x80) return first;
  let length = 0;
  for (let i = 0; i < (first & 0x7f); i++) length = length * 256 + (tlv[2 + i] ?? 0);
  return length;
}
