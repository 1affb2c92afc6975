// The signer below every Secure Boot signature (Authenticode on PE files, PCR policy signatures, EFI
// authenticated variables): it signs a digest computed by the caller with a named hash, and gives the
// certificate that goes with the key. The file implementation reads a PEM RSA key (PKCS#1 or PKCS#8) and a PEM
// certificate; a KMS or HSM implementation needs only `signDigest` and the certificate, since nothing here
// ever holds the message itself.

import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  privateEncrypt,
  X509Certificate,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { badRequest } from "../errors.ts";

export type DigestAlgorithm = "sha256" | "sha384" | "sha512";

export interface DigestSigner {
  /** For messages, e.g. "key file uki-signing-key.pem (certificate SHA-256 ab12…)". */
  readonly description: string;
  /** The public half of the key (an RSA key: signatures are RSASSA-PKCS1-v1_5). */
  readonly publicKey: KeyObject;
  /** SHA-256 hex of the certificate's DER, or for a bare key of its SPKI DER: the key's identity in profile hashes. */
  readonly fingerprint: string;
  /** Signs `digest` (the output of `algorithm` over the message) with RSASSA-PKCS1-v1_5. */
  signDigest(digest: Uint8Array, algorithm: DigestAlgorithm, signal?: AbortSignal): Promise<Buffer>;
}

/** A signer whose key comes with a certificate (Authenticode, EFI signature lists). */
export interface CertifiedSigner extends DigestSigner {
  /** The signing certificate, DER. */
  readonly certificate: Buffer;
}

/** DER DigestInfo prefixes for RSASSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1). */
const digestInfoPrefix: Record<DigestAlgorithm, Buffer> = {
  sha256: Buffer.from("3031300d060960864801650304020105000420", "hex"),
  sha384: Buffer.from("3041300d060960864801650304020205000430", "hex"),
  sha512: Buffer.from("3051300d060960864801650304020305000440", "hex"),
};
const digestLength: Record<DigestAlgorithm, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** Smallest RSA modulus accepted for Secure Boot keys (UEFI firmware takes 2048 and up). */
export const minRsaBits = 2048;
const maxPemBytes = 64 * 1024;

/** RSASSA-PKCS1-v1_5 over a digest with a local key. */
export function rsaSignDigest(key: KeyObject, digest: Uint8Array, algorithm: DigestAlgorithm): Buffer {
  if (digest.length !== digestLength[algorithm])
    throw badRequest(`a ${algorithm} digest is ${digestLength[algorithm]} bytes, not ${digest.length}`);
  return privateEncrypt(
    { key, padding: constants.RSA_PKCS1_PADDING },
    Buffer.concat([digestInfoPrefix[algorithm], digest]),
  );
}

export interface KeyPairCheck {
  key: KeyObject;
  certificate: X509Certificate;
}

/**
 * Everything wrong with a key and certificate pair, each problem naming `origin` (the flag or file): not RSA,
 * too small, the certificate not for this key, not valid now. Empty when the pair is usable.
 */
export function keyPairProblems(pair: KeyPairCheck, origin: string, now = new Date()): string[] {
  const { key, certificate } = pair;
  const problems = keyProblems(key, origin);
  if (!certificate.checkPrivateKey(key)) problems.push(`${origin}: the certificate is not for this key`);
  if (now < new Date(certificate.validFrom))
    problems.push(`${origin}: the certificate is not valid before ${certificate.validFrom}`);
  if (now > new Date(certificate.validTo)) problems.push(`${origin}: the certificate expired ${certificate.validTo}`);
  return problems;
}

async function readPem(path: string, what: string): Promise<string> {
  let text: string;
  try {
    const data = await readFile(path);
    if (data.length > maxPemBytes) throw badRequest(`${what} ${path} is larger than ${maxPemBytes} bytes`);
    text = data.toString("utf8");
  } catch (err) {
    if (err instanceof Error && "code" in err) throw badRequest(`${what} ${path}: ${err.message}`);
    throw err;
  }
  return text;
}

/** Parses a PEM RSA private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`). */
export function parsePrivateKeyPem(text: string, origin: string): KeyObject {
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(text))
    throw badRequest(`${origin}: expected a PEM "PRIVATE KEY" or "RSA PRIVATE KEY" (unencrypted)`);
  try {
    return createPrivateKey({ key: text, format: "pem" });
  } catch (err) {
    throw badRequest(`${origin}: not a readable private key (${(err as Error).message})`);
  }
}

/** Parses a PEM certificate (the first one, if several). */
export function parseCertificatePem(text: string, origin: string): X509Certificate {
  const match = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  if (match === null) throw badRequest(`${origin}: expected a PEM "CERTIFICATE"`);
  try {
    return new X509Certificate(match[0]);
  } catch (err) {
    throw badRequest(`${origin}: not a readable certificate (${(err as Error).message})`);
  }
}

/** A signer from a key and a certificate already read and checked. */
export function localCertifiedSigner(pair: KeyPairCheck, description: string): CertifiedSigner {
  const certificate = Buffer.from(pair.certificate.raw);
  const fingerprint = createHash("sha256").update(certificate).digest("hex");
  return {
    ...localKeySigner(pair.key, `${description} (certificate SHA-256 ${fingerprint.slice(0, 16)}…)`),
    certificate,
    fingerprint,
  };
}

/** A signer from a bare RSA key already read and checked (the PCR signing key has no certificate). */
export function localKeySigner(key: KeyObject, description: string): DigestSigner {
  const publicKey = createPublicKey(key);
  const fingerprint = createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
  return {
    description,
    publicKey,
    fingerprint,
    async signDigest(digest, algorithm, signal) {
      signal?.throwIfAborted();
      return rsaSignDigest(key, digest, algorithm);
    },
  };
}

/** Everything wrong with a bare signing key (RSA, size), naming `origin`. */
export function keyProblems(key: KeyObject, origin: string): string[] {
  if (key.asymmetricKeyType !== "rsa") return [`${origin}: the key is ${key.asymmetricKeyType}, not RSA`];
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  return bits < minRsaBits ? [`${origin}: the RSA key has ${bits} bits, fewer than ${minRsaBits}`] : [];
}

/** Reads a bare RSA signing key file (the PCR signing key), checked. */
export async function fileKeySigner(keyPath: string, origin = keyPath): Promise<DigestSigner> {
  const key = parsePrivateKeyPem(await readPem(keyPath, "key file"), origin);
  const problems = keyProblems(key, origin);
  if (problems.length > 0) throw badRequest(`unusable signing key: ${problems.join("; ")}`, "SIGNING_KEY_INVALID");
  return localKeySigner(key, `key file ${keyPath}`);
}

/**
 * Reads a key file and a certificate file (`keyOrigin`/`certOrigin` name where they came from, e.g. the flag)
 * and checks them together; every problem is reported at once.
 */
export async function fileDigestSigner(
  keyPath: string,
  certPath: string,
  origins: { key: string; certificate: string } = { key: keyPath, certificate: certPath },
): Promise<CertifiedSigner> {
  const problems: string[] = [];
  let key: KeyObject | undefined;
  let certificate: X509Certificate | undefined;
  try {
    key = parsePrivateKeyPem(await readPem(keyPath, "key file"), origins.key);
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    certificate = parseCertificatePem(await readPem(certPath, "certificate file"), origins.certificate);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (key !== undefined && certificate !== undefined)
    problems.push(...keyPairProblems({ key, certificate }, `${origins.key} with ${origins.certificate}`));
  if (problems.length > 0 || key === undefined || certificate === undefined)
    throw badRequest(`unusable signing key:\n  ${problems.join("\n  ")}`, "SIGNING_KEY_INVALID", problems);
  return localCertifiedSigner({ key, certificate }, `key file ${keyPath}`);
}
