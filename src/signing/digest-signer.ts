// The signer below every Secure Boot signature (Authenticode on PE files, PCR policy signatures, EFI
// authenticated variables): it signs a digest computed by the caller with a named hash, and gives the
// certificate that goes with the key. The file implementation reads a PEM RSA key (PKCS#1 or PKCS#8) and a PEM
// certificate through src/signing/pem-files.ts, as the factory configuration does; a KMS or HSM implementation
// needs only `signDigest` and the certificate, since nothing here ever holds the message itself.

import {
  constants,
  createHash,
  createPublicKey,
  type KeyObject,
  privateEncrypt,
  type X509Certificate,
} from "node:crypto";
import { badRequest, isAppError } from "../errors.ts";
import { FileProblem, readPemCertificate, readPemPrivateKey } from "./pem-files.ts";

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

/** Where a key and its certificate came from (a flag and file, or a path), for messages. */
export interface KeyPairOrigins {
  key: string;
  certificate: string;
}

/** The problem when the certificate does not certify the key (any key type), naming both; else undefined. */
export function certificateKeyMismatch(pair: KeyPairCheck, origins: KeyPairOrigins): string | undefined {
  return pair.certificate.checkPrivateKey(pair.key)
    ? undefined
    : `${origins.certificate}: does not certify the key of ${origins.key}`;
}

/**
 * Everything wrong with a Secure Boot key and certificate pair, each problem naming its origin: the key not
 * RSA or too small, the certificate not for this key, not valid now. Empty when the pair is usable.
 */
export function keyPairProblems(pair: KeyPairCheck, origins: KeyPairOrigins, now = new Date()): string[] {
  const { certificate } = pair;
  const problems = keyProblems(pair.key, origins.key);
  const mismatch = certificateKeyMismatch(pair, origins);
  if (mismatch !== undefined) problems.push(mismatch);
  if (now < new Date(certificate.validFrom))
    problems.push(`${origins.certificate}: the certificate is not valid before ${certificate.validFrom}`);
  if (now > new Date(certificate.validTo))
    problems.push(`${origins.certificate}: the certificate expired ${certificate.validTo}`);
  return problems;
}

/** `read(path)`, a FileProblem turned into a bad request naming `origin`. */
async function readNamed<T>(read: (path: string) => Promise<T>, path: string, origin: string): Promise<T> {
  try {
    return await read(path);
  } catch (err) {
    if (err instanceof FileProblem) throw badRequest(`${origin}: ${err.message}`);
    throw err;
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
  let problems: string[];
  let key: KeyObject | undefined;
  try {
    key = await readNamed(readPemPrivateKey, keyPath, origin);
    problems = keyProblems(key, origin);
  } catch (err) {
    if (!isAppError(err)) throw err;
    problems = [err.message];
  }
  if (problems.length > 0 || key === undefined)
    throw badRequest(`unusable signing key: ${problems.join("; ")}`, "SIGNING_KEY_INVALID", problems);
  return localKeySigner(key, `key file ${keyPath}`);
}

/**
 * Reads a key file and a certificate file (`origins` name where they came from, e.g. the flag; default the
 * paths) and checks them together; every problem is reported at once.
 */
export async function fileDigestSigner(
  keyPath: string,
  certPath: string,
  origins: KeyPairOrigins = { key: keyPath, certificate: certPath },
): Promise<CertifiedSigner> {
  const [key, certificate] = await Promise.allSettled([
    readNamed(readPemPrivateKey, keyPath, origins.key),
    readNamed(readPemCertificate, certPath, origins.certificate),
  ]);
  const problems: string[] = [];
  for (const read of [key, certificate])
    if (read.status === "rejected") {
      if (!isAppError(read.reason)) throw read.reason;
      problems.push(read.reason.message);
    }
  if (key.status === "fulfilled" && certificate.status === "fulfilled")
    problems.push(...keyPairProblems({ key: key.value, certificate: certificate.value }, origins));
  if (problems.length > 0 || key.status !== "fulfilled" || certificate.status !== "fulfilled")
    throw badRequest(`unusable signing key:\n  ${problems.join("\n  ")}`, "SIGNING_KEY_INVALID", problems);
  return localCertifiedSigner({ key: key.value, certificate: certificate.value }, `key file ${keyPath}`);
}
