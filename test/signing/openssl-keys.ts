// Key pairs for the Secure Boot tests, made by openssl itself (Debian's): an RSA key and a self-signed
// certificate, written as `<dir>/<name>.key` and `<dir>/<name>.crt`.

import { join } from "node:path";
import { runTool, type Tool } from "../../src/tools/run.ts";

export const openssl: Tool = { command: "openssl", debianPackage: "openssl" };

export interface KeyPairFiles {
  key: string;
  cert: string;
}

/** `openssl req -x509` with a new key (`keyArgs`, default a 2048-bit RSA key), valid for 30 days, CN=`name`. */
export async function opensslKeyPair(
  dir: string,
  name: string,
  keyArgs: string[] = ["-newkey", "rsa:2048"],
): Promise<KeyPairFiles> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  await runTool(openssl, [
    "req",
    "-x509",
    ...keyArgs,
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "30",
    "-subj",
    `/CN=${name}`,
  ]);
  return { key, cert };
}
