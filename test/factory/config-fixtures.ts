// Key material for factory configuration tests, made with openssl the way the seed README tells operators to
// (cache key: `openssl ecparam -name prime256v1 -genkey -noout`; Secure Boot: an RSA key with a self-signed
// certificate, and a separate PCR key), in a temporary directory.

import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface KeyFiles {
  dir: string;
  cacheKey: string;
  ukiKey: string;
  ukiCert: string;
  pcrKey: string;
  /** A second certificate, for a key that is not the UKI key. */
  otherCert: string;
  /** A public key (SPKI PEM) for -container-signature-pubkey. */
  cosignPub: string;
  notAKey: string;
  cleanup: () => Promise<void>;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export async function makeKeyFiles(): Promise<KeyFiles> {
  const dir = await mkdtemp(join(tmpdir(), "factory-config-"));
  const path = (name: string) => join(dir, name);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("image-factory.pem")]);
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=test UKI signing",
    "-keyout",
    path("uki-signing-key.pem"),
    "-out",
    path("uki-signing-cert.pem"),
  ]);
  openssl(["genrsa", "-out", path("pcr-signing-key.pem"), "2048"]);
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=other",
    "-keyout",
    path("other-key.pem"),
    "-out",
    path("other-cert.pem"),
  ]);
  openssl(["ec", "-in", path("image-factory.pem"), "-pubout", "-out", path("cosign.pub")]);
  await writeFile(path("not-a-key.pem"), "this is not PEM\n");
  return {
    dir,
    cacheKey: path("image-factory.pem"),
    ukiKey: path("uki-signing-key.pem"),
    ukiCert: path("uki-signing-cert.pem"),
    pcrKey: path("pcr-signing-key.pem"),
    otherCert: path("other-cert.pem"),
    cosignPub: path("cosign.pub"),
    notAKey: path("not-a-key.pem"),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
