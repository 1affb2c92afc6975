// Reading the PEM files a deployment names (signing keys, certificates, TLS key pairs): bounded in size, each
// problem one FileProblem whose message says what is wrong with the file and leaves naming it (the path, the
// flag) to the caller. The factory configuration and the file-backed signers both read through here.

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";

/** Bound on a key or certificate file; a PEM certificate chain of a dozen certificates fits many times over. */
export const maxPemFileBytes = 256 * 1024;

/** What is wrong with a file, without its name ("cannot read it (ENOENT)", "no PEM private key in it"). */
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

/**
 * An unencrypted PEM private key (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`) of any
 * type: what a key must be (RSA for Secure Boot, RSA or ECDSA for TLS) is the caller's check.
 */
export async function readPemPrivateKey(path: string): Promise<KeyObject> {
  const text = await readSmallTextFile(path);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new FileProblem("no PEM private key in it");
  if (text.includes("ENCRYPTED")) throw new FileProblem("the private key is encrypted; give an unencrypted PEM key");
  try {
    return createPrivateKey({ key: text, format: "pem" });
  } catch (err) {
    throw new FileProblem(`not a usable PEM private key (${(err as Error).message})`);
  }
}

/** A PEM certificate; of a chain, the first (the leaf). */
export async function readPemCertificate(path: string): Promise<X509Certificate> {
  const text = await readSmallTextFile(path);
  const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  if (first === null) throw new FileProblem("no PEM certificate in it");
  try {
    return new X509Certificate(first[0]);
  } catch (err) {
    throw new FileProblem(`not a usable PEM certificate (${(err as Error).message})`);
  }
}
