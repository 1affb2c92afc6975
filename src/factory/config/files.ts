// Reading the files a configuration names (keys, certificates) once, at start-up, bounded in size, so a
// missing or malformed file refuses the start with one line instead of failing the first request.

import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";

const maxPemFileBytes = 256 * 1024;

export class FileProblem extends Error {}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** The file's text; FileProblem("cannot read it (ENOENT)", "not a regular file", …) otherwise. */
export async function readSmallTextFile(path: string, max = maxPemFileBytes): Promise<string> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new FileProblem("not a regular file");
    size = info.size;
  } catch (err) {
    if (err instanceof FileProblem) throw err;
    throw new FileProblem(`cannot read it (${codeOf(err)})`);
  }
  if (size > max) throw new FileProblem(`larger than ${max} bytes, not a key or certificate file`);
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new FileProblem(`cannot read it (${codeOf(err)})`);
  }
}

/** An unencrypted PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of type RSA or EC. */
export async function readPemPrivateKey(path: string): Promise<KeyObject> {
  const text = await readSmallTextFile(path);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new FileProblem("no PEM private key in it");
  if (text.includes("ENCRYPTED")) throw new FileProblem("the private key is encrypted; give an unencrypted PEM key");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: "pem" });
  } catch (err) {
    throw new FileProblem(`not a usable PEM private key (${(err as Error).message})`);
  }
  const type = key.asymmetricKeyType;
  if (type !== "rsa" && type !== "ec") throw new FileProblem(`a ${type} key; expected RSA or ECDSA`);
  return key;
}

export async function readPemCertificate(path: string): Promise<X509Certificate> {
  const text = await readSmallTextFile(path);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new FileProblem("no PEM certificate in it");
  try {
    return new X509Certificate(text);
  } catch (err) {
    throw new FileProblem(`not a usable PEM certificate (${(err as Error).message})`);
  }
}

/** Bound on a CA bundle: one with every public root is about 250 KiB. */
const maxCaBundleBytes = 4 * 1024 * 1024;
const pemCertificatePattern = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** A PEM bundle of CA certificates (text between them, as in distribution bundles, is allowed); their count. */
export async function readPemCaBundle(path: string): Promise<number> {
  const text = await readSmallTextFile(path, maxCaBundleBytes);
  const blocks = text.match(pemCertificatePattern) ?? [];
  if (blocks.length === 0) throw new FileProblem("no PEM certificate in it");
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new FileProblem(`certificate ${index + 1} is not usable (${(err as Error).message})`);
    }
  }
  return blocks.length;
}

/** Whether the certificate certifies this private key's public key. */
export function certificateMatchesKey(certificate: X509Certificate, privateKey: KeyObject): boolean {
  const fromCert = certificate.publicKey.export({ type: "spki", format: "der" });
  const fromKey = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  return Buffer.compare(fromCert, fromKey) === 0;
}

/** "missing" when nothing is there, "directory" or "other" otherwise. */
export async function pathKind(path: string): Promise<"missing" | "directory" | "file" | "other"> {
  try {
    const info = await stat(path);
    return info.isDirectory() ? "directory" : info.isFile() ? "file" : "other";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    return "other";
  }
}
