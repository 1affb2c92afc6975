// Reading the files a configuration names (keys, certificates) once, at start-up, bounded in size, so a
// missing or malformed file refuses the start with one line instead of failing the first request. Keys and
// certificates are read by src/signing/pem-files.ts; here is what only the configuration reads.

import { type KeyObject, X509Certificate } from "node:crypto";
import { stat } from "node:fs/promises";
import { FileProblem, readPemPrivateKey, readSmallTextFile } from "../../signing/pem-files.ts";

/** The HTTPS server's private key: an unencrypted PEM key, RSA or ECDSA. */
export async function readTlsPrivateKey(path: string): Promise<KeyObject> {
  const key = await readPemPrivateKey(path);
  const type = key.asymmetricKeyType;
  if (type !== "rsa" && type !== "ec") throw new FileProblem(`a ${type} key; expected RSA or ECDSA`);
  return key;
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
