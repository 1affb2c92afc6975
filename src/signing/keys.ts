// Signing keys as cosign stores them: plain PEM private keys (PKCS#8, SEC1 EC, PKCS#1 RSA), PEM public keys, and
// cosign's encrypted `cosign.key` — PEM type `ENCRYPTED SIGSTORE PRIVATE KEY` (older `ENCRYPTED COSIGN PRIVATE
// KEY`) around the JSON of go-securesystemslib's `encrypted` package: scrypt-derived key, NaCl secretbox
// (XSalsa20-Poly1305) over the PKCS#8 DER.

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  scryptSync,
  sign,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { secretbox } from "@noble/ciphers/salsa.js";
import { badRequest, unsupported } from "../errors.ts";

export const SigstorePrivateKeyPemType = "ENCRYPTED SIGSTORE PRIVATE KEY";
export const CosignPrivateKeyPemType = "ENCRYPTED COSIGN PRIVATE KEY";

/** Key files are small; refuse anything that cannot be one. */
const maxKeyFileBytes = 64 * 1024;

/**
 * scrypt parameters cosign writes (N=2^16, r=8, p=1; older files 2^15). Anything else is refused: the
 * parameters come from the file, and an attacker-chosen N would make loading a key cost unbounded memory/CPU.
 */
const acceptedScryptN = new Set([1 << 15, 1 << 16, 1 << 17]);
const defaultScrypt = { N: 1 << 16, r: 8, p: 1 };

interface PemBlock {
  type: string;
  der: Buffer;
}

function parsePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    blocks.push({ type: m[1] as string, der: Buffer.from((m[2] as string).replace(/\s+/g, ""), "base64") });
  }
  return blocks;
}

/** PEM text of DER bytes, 64-character lines (as Go's pem.EncodeToMemory writes them). */
export function toPem(type: string, der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
}

interface EncryptedKeyJson {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

function deriveKey(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  return scryptSync(Buffer.from(password, "utf8"), salt, 32, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  });
}

/** Encrypts PKCS#8 DER the way cosign does and returns the PEM `cosign.key` text. */
export function encryptPrivateKey(
  privateKey: KeyObject,
  password: string,
  options: { pemType?: string; scryptN?: number } = {},
): string {
  const params = { ...defaultScrypt, N: options.scryptN ?? defaultScrypt.N };
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" });
  const sealed = secretbox(deriveKey(password, salt, params), nonce).seal(pkcs8);
  // Key order as Go's encoding/json writes the struct fields.
  const json: EncryptedKeyJson = {
    kdf: { name: "scrypt", params: { N: params.N, r: params.r, p: params.p }, salt: salt.toString("base64") },
    cipher: { name: "nacl/secretbox", nonce: nonce.toString("base64") },
    ciphertext: Buffer.from(sealed).toString("base64"),
  };
  return toPem(options.pemType ?? SigstorePrivateKeyPemType, Buffer.from(JSON.stringify(json)));
}

/** Decrypts the body of an encrypted cosign key (the JSON inside the PEM) to a private key. */
export function decryptPrivateKey(json: Buffer, password: string): KeyObject {
  let data: EncryptedKeyJson;
  try {
    data = JSON.parse(json.toString("utf8")) as EncryptedKeyJson;
  } catch {
    throw badRequest("encrypted key: not JSON");
  }
  if (data?.kdf?.name !== "scrypt") throw badRequest(`encrypted key: unknown kdf "${String(data?.kdf?.name)}"`);
  if (data.cipher?.name !== "nacl/secretbox")
    throw badRequest(`encrypted key: unknown cipher "${String(data.cipher?.name)}"`);
  const { N, r, p } = data.kdf.params ?? {};
  if (!acceptedScryptN.has(N) || r !== 8 || p !== 1) throw badRequest("encrypted key: unexpected kdf parameters");
  const salt = Buffer.from(data.kdf.salt ?? "", "base64");
  const nonce = Buffer.from(data.cipher.nonce ?? "", "base64");
  if (nonce.length !== 24) throw badRequest("encrypted key: incorrect nonce size");
  let pkcs8: Uint8Array;
  try {
    pkcs8 = secretbox(deriveKey(password, salt, { N, r, p }), nonce).open(Buffer.from(data.ciphertext ?? "", "base64"));
  } catch {
    throw badRequest("encrypted key: decryption failed (wrong password?)");
  }
  return createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
}

export interface ParseKeyOptions {
  /** Password of an encrypted key; default the COSIGN_PASSWORD environment variable, else empty. */
  password?: string;
}

/** Reads a private key from PEM text: cosign's encrypted format, PKCS#8, SEC1 EC or PKCS#1 RSA. */
export function parsePrivateKey(pem: string, options: ParseKeyOptions = {}): KeyObject {
  const block = parsePem(pem)[0];
  if (!block) throw badRequest("no PEM block in private key");
  let key: KeyObject;
  switch (block.type) {
    case SigstorePrivateKeyPemType:
    case CosignPrivateKeyPemType:
      key = decryptPrivateKey(block.der, options.password ?? process.env.COSIGN_PASSWORD ?? "");
      break;
    case "PRIVATE KEY":
      key = createPrivateKey({ key: block.der, format: "der", type: "pkcs8" });
      break;
    case "EC PRIVATE KEY":
      key = createPrivateKey({ key: block.der, format: "der", type: "sec1" });
      break;
    case "RSA PRIVATE KEY":
      key = createPrivateKey({ key: block.der, format: "der", type: "pkcs1" });
      break;
    default:
      throw badRequest(`unsupported private key PEM type "${block.type}"`);
  }
  signatureAlgorithm(key); // refuse key types cosign does not sign with, at load time
  return key;
}

/** Reads a public key from PEM (`PUBLIC KEY` SPKI, or `RSA PUBLIC KEY` PKCS#1). */
export function parsePublicKey(pem: string): KeyObject {
  const block = parsePem(pem)[0];
  if (!block) throw badRequest("no PEM block in public key");
  if (block.type === "PUBLIC KEY") return createPublicKey({ key: block.der, format: "der", type: "spki" });
  if (block.type === "RSA PUBLIC KEY") return createPublicKey({ key: block.der, format: "der", type: "pkcs1" });
  throw badRequest(`unsupported public key PEM type "${block.type}"`);
}

async function readKeyFile(file: string): Promise<string> {
  const data = await readFile(file);
  if (data.length > maxKeyFileBytes) throw badRequest(`${file}: over ${maxKeyFileBytes} bytes, not a key file`);
  return data.toString("utf8");
}

export async function loadPrivateKey(file: string, options: ParseKeyOptions = {}): Promise<KeyObject> {
  const text = await readKeyFile(file);
  try {
    return parsePrivateKey(text, options);
  } catch (err) {
    throw badRequest(`${file}: ${(err as Error).message}`);
  }
}

export async function loadPublicKey(file: string): Promise<KeyObject> {
  const text = await readKeyFile(file);
  try {
    return parsePublicKey(text);
  } catch (err) {
    throw badRequest(`${file}: ${(err as Error).message}`);
  }
}

export function publicKeyPem(key: KeyObject): string {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

/**
 * The digest cosign's default signer uses for a key: SHA-256 for P-256 and RSA, SHA-384 for P-384, SHA-512 for
 * P-521. Ed25519 keys cosign signs with Ed25519ph, which node:crypto lacks, so they are refused.
 */
export function signatureAlgorithm(key: KeyObject): "sha256" | "sha384" | "sha512" {
  switch (key.asymmetricKeyType) {
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === "prime256v1") return "sha256";
      if (curve === "secp384r1") return "sha384";
      if (curve === "secp521r1") return "sha512";
      throw unsupported(`EC curve ${curve} is not one cosign signs with (P-256, P-384, P-521)`);
    }
    case "rsa": {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) throw unsupported(`RSA key of ${bits} bits is too small (cosign requires 2048 or more)`);
      return "sha256";
    }
    default:
      throw unsupported(
        `${key.asymmetricKeyType} keys are not supported for signing (cosign signs Ed25519 with Ed25519ph)`,
      );
  }
}

/** Signs as cosign's key-based signer does: ECDSA DER signatures, RSA PKCS#1 v1.5. */
export function signWithKey(privateKey: KeyObject, data: Uint8Array): Buffer {
  return sign(signatureAlgorithm(privateKey), data, privateKey);
}

export type KeyAlgorithm = "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "rsa-2048" | "rsa-4096";

export interface GeneratedKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** `cosign.key`: always encrypted (with the empty password when none is given), like cosign. */
  privateKeyPem: string;
  /** `cosign.pub` */
  publicKeyPem: string;
}

export function generateKeyPair(
  options: { algorithm?: KeyAlgorithm; password?: string; scryptN?: number } = {},
): GeneratedKeyPair {
  const algorithm = options.algorithm ?? "ecdsa-p256";
  const { privateKey, publicKey } = algorithm.startsWith("rsa-")
    ? generateKeyPairSync("rsa", { modulusLength: Number(algorithm.slice(4)) })
    : generateKeyPairSync("ec", {
        namedCurve: { "ecdsa-p256": "prime256v1", "ecdsa-p384": "secp384r1", "ecdsa-p521": "secp521r1" }[
          algorithm as "ecdsa-p256"
        ],
      });
  return {
    privateKey,
    publicKey,
    privateKeyPem: encryptPrivateKey(privateKey, options.password ?? process.env.COSIGN_PASSWORD ?? "", {
      scryptN: options.scryptN,
    }),
    publicKeyPem: publicKeyPem(publicKey),
  };
}
