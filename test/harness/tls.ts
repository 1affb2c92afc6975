import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Files of a throwaway PKI made for one test run. */
export interface TestPki {
  /** The self-made CA's certificate (PEM); trust it to reach the server. */
  caCertFile: string;
  /** Server certificate for 127.0.0.1 and localhost, signed by the CA. */
  certFile: string;
  keyFile: string;
  /** EC P-256 key that a test token server signs bearer tokens with. */
  tokenSigningKeyFile: string;
  /** Self-signed certificate of that key: distribution's `auth.token.rootcertbundle`. */
  tokenSigningCertFile: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

/** A PKCS#8 EC P-256 private key: readable by Go's TLS stack and node:crypto alike. */
function newEcKey(file: string): Promise<void> {
  return openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
}

/** Makes a CA, a loopback server certificate and a token-signing key pair in `dir` with the openssl CLI. */
export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  const pki: TestPki = {
    caCertFile: file("ca.crt"),
    certFile: file("server.crt"),
    keyFile: file("server.key"),
    tokenSigningKeyFile: file("token.key"),
    tokenSigningCertFile: file("token.crt"),
  };
  const caKey = file("ca.key");
  const csr = file("server.csr");
  const extFile = file("server.ext");

  await newEcKey(caKey);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-subj",
    "/CN=boot-assets test CA",
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    pki.caCertFile,
  ]);

  await newEcKey(pki.keyFile);
  await openssl(["req", "-new", "-key", pki.keyFile, "-subj", "/CN=127.0.0.1", "-out", csr]);
  // Go's TLS stack (distribution, skopeo, containerd) only honours the SAN, never the CN.
  await writeFile(
    extFile,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    pki.caCertFile,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    extFile,
    "-out",
    pki.certFile,
  ]);

  await newEcKey(pki.tokenSigningKeyFile);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    pki.tokenSigningKeyFile,
    "-subj",
    "/CN=boot-assets test token issuer",
    "-days",
    "2",
    "-out",
    pki.tokenSigningCertFile,
  ]);
  return pki;
}
