// A Secure Boot key set, as `talosctl gen secureboot uki` and `talosctl gen secureboot pcr` make one
// (siderolabs/talos cmd/talosctl/cmd/mgmt/gen/secureboot.go generateSigningCerts, with siderolabs/crypto
// x509.NewSelfSignedCertificateAuthority):
//
// - uki-signing-key.pem: RSA 4096, PKCS#1 PEM ("RSA PRIVATE KEY");
// - uki-signing-cert.pem and uki-signing-cert.der: a self-signed CA certificate for that key, subject
//   O=<common name> (default "Test UKI Signing Key"; the library puts the name in the organization only), a
//   random 128-bit serial, valid from now for 87600 hours (talos secrets.CAValidityTime), sha512WithRSA,
//   basic constraints CA, key usage certSign + digitalSignature, a subject key identifier. One difference: no
//   extended key usage. Upstream's library adds serverAuth + clientAuth, with which OpenSSL-based verifiers
//   (sbverify: PKCS7_verify checks the S/MIME signing purpose) refuse every signature the key makes; firmware
//   does not read the extension, so leaving it out restricts nothing there;
// - pcr-signing-key.pem: RSA 2048, PKCS#1 PEM (upstream makes a certificate for it too but writes only the key).
//
// Every file is written mode 0600 (as upstream), atomically, in a directory made 0700 if missing; existing files
// are refused (all checked before anything is written) unless `force`, as upstream's `--force`.

import "reflect-metadata";
import { type KeyObject, generateKeyPair as nodeGenerateKeyPair, randomBytes, webcrypto } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import * as x509 from "@peculiar/x509";
import { badRequest } from "../errors.ts";
import { isNotFoundError, writeFileAtomic } from "../util/fs.ts";
import { toPem } from "./keys.ts";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1]);

const generateRsa = promisify(nodeGenerateKeyPair);

/** talos pkg/machinery/config/generate/secrets CAValidityTime: 87600 hours. */
export const secureBootCertificateValidityMs = 87_600 * 60 * 60 * 1000;
export const defaultUkiCommonName = "Test UKI Signing Key";

/** The files of a key set, by upstream's names (the factory's -secureboot-*-path flags take them). */
export const secureBootKeyFiles = {
  ukiKey: "uki-signing-key.pem",
  ukiCert: "uki-signing-cert.pem",
  ukiCertDer: "uki-signing-cert.der",
  pcrKey: "pcr-signing-key.pem",
} as const;

export interface WrittenFile {
  path: string;
  what: string;
}

export interface GenerateSecureBootKeysOptions {
  /** The certificate's name (upstream `--common-name`), default "Test UKI Signing Key". */
  commonName?: string;
  /** Replace existing files. */
  force?: boolean;
  /** The certificate's notBefore (default now). */
  now?: Date;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFoundError(err)) return false;
    throw err;
  }
}

async function rsaKey(bits: number): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return await generateRsa("rsa", { modulusLength: bits, publicExponent: 0x10001 });
}

const pkcs1Pem = (key: KeyObject): string => key.export({ type: "pkcs1", format: "pem" }).toString();

/** The self-signed UKI signing certificate upstream's library makes (see the header), DER. */
async function selfSignedCertificate(
  keys: { privateKey: KeyObject; publicKey: KeyObject },
  commonName: string,
  now: Date,
): Promise<Buffer> {
  const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" };
  const webKeys = {
    privateKey: await keys.privateKey.toCryptoKey(algorithm, false, ["sign"]),
    publicKey: await keys.publicKey.toCryptoKey(algorithm, true, ["verify"]),
  } as unknown as webcrypto.CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f; // a positive INTEGER below 2^127, no leading zero needed
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString("hex"),
    name: [{ O: [commonName] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + secureBootCertificateValidityMs),
    signingAlgorithm: algorithm,
    keys: webKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(webKeys.publicKey),
    ],
  });
  return Buffer.from(certificate.rawData);
}

/**
 * Makes a UKI signing key and certificate and a PCR signing key in `dir` (see the header) and returns the files
 * written, in the order written.
 */
export async function generateSecureBootKeys(
  dir: string,
  options: GenerateSecureBootKeysOptions = {},
): Promise<WrittenFile[]> {
  const commonName = options.commonName ?? defaultUkiCommonName;
  if (commonName.trim() === "" || commonName.length > 64)
    throw badRequest(`common name "${commonName}": 1 to 64 characters (X.520 ub-organization-name)`);
  const root = resolve(dir);
  const path = (name: string) => join(root, name);
  if (!options.force) {
    const present = [];
    for (const name of Object.values(secureBootKeyFiles)) if (await exists(path(name))) present.push(path(name));
    if (present.length > 0)
      throw badRequest(
        `${present.map((p) => `"${p}"`).join(", ")} already exist${present.length === 1 ? "s" : ""}, use --force to overwrite`,
      );
  }
  const [uki, pcr] = await Promise.all([rsaKey(4096), rsaKey(2048)]);
  const certificate = await selfSignedCertificate(uki, commonName, options.now ?? new Date());
  await mkdir(root, { recursive: true, mode: 0o700 });
  const files: [string, string | Buffer, string][] = [
    [secureBootKeyFiles.ukiCert, toPem("CERTIFICATE", certificate), "UKI signing certificate (PEM)"],
    [secureBootKeyFiles.ukiCertDer, certificate, "UKI signing certificate (DER)"],
    [secureBootKeyFiles.ukiKey, pkcs1Pem(uki.privateKey), "UKI signing key (RSA 4096)"],
    [secureBootKeyFiles.pcrKey, pkcs1Pem(pcr.privateKey), "PCR signing key (RSA 2048)"],
  ];
  const written: WrittenFile[] = [];
  for (const [name, data, what] of files) {
    await writeFileAtomic(root, path(name), data, { mode: 0o600 });
    written.push({ path: path(name), what });
  }
  return written;
}
