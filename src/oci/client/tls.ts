// TLS settings for one registry host: extra trusted CAs (`--ca-file` and the `certs.d/<host>/` convention
// of docker and containers-certs.d(5)), client certificates from the same directory, and `insecure`.

import { readdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { badRequest } from "../../errors.ts";

/** Which hosts are insecure: plain HTTP allowed and TLS certificates not verified. */
export type InsecurePolicy = boolean | ReadonlySet<string> | readonly string[] | ((host: string) => boolean);

export function isInsecureHost(policy: InsecurePolicy | undefined, host: string): boolean {
  if (policy === undefined || policy === false) return false;
  if (policy === true) return true;
  if (typeof policy === "function") return policy(host);
  if (Array.isArray(policy)) return policy.includes(host);
  return (policy as ReadonlySet<string>).has(host);
}

/** The certs.d directories docker, podman and containerd read, in that order. */
export function defaultCertsDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || homedir();
  return ["/etc/docker/certs.d", "/etc/containers/certs.d", join(home, ".config", "containers", "certs.d")];
}

export interface TlsSettings {
  /** Trusted roots: Node's defaults plus the extra CAs; undefined when there are no extras. */
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
}

export interface TlsOptions {
  insecure?: InsecurePolicy;
  /** A PEM file of extra CA certificates trusted for every registry (added to the default roots). */
  caFile?: string;
  /** Directories holding `<host[:port]>/` subdirectories with `*.crt`, `*.cert` and `*.key` files. */
  certsDirs?: readonly string[];
}

/** Bound on a certificate file; a PEM bundle of every public root is about 250 KiB. */
const maxPemBytes = 4 * 1024 * 1024;

async function readPem(path: string): Promise<string> {
  const data = await readFile(path);
  if (data.length > maxPemBytes) throw badRequest(`certificate file ${path} is larger than ${maxPemBytes} bytes`);
  const text = data.toString("utf8");
  if (!text.includes("-----BEGIN")) throw badRequest(`certificate file ${path} holds no PEM data`);
  return text;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw err;
  }
}

/**
 * Reads one `certs.d/<host>/` directory the way docker does: every `*.crt` is a CA; `name.cert` with
 * `name.key` is a client certificate pair (the first complete pair is used).
 */
async function readHostCertsDir(dir: string): Promise<{ cas: string[]; cert?: Buffer; key?: Buffer }> {
  const files = await listDir(dir);
  const cas: string[] = [];
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  for (const file of files) {
    if (file.endsWith(".crt")) cas.push(await readPem(join(dir, file)));
    else if (file.endsWith(".cert") && cert === undefined) {
      const keyFile = `${file.slice(0, -".cert".length)}.key`;
      if (!files.includes(keyFile)) throw badRequest(`client certificate ${join(dir, file)} has no ${keyFile}`);
      cert = Buffer.from(await readPem(join(dir, file)));
      key = Buffer.from(await readPem(join(dir, keyFile)));
    } else if (file.endsWith(".key")) {
      const certFile = `${file.slice(0, -".key".length)}.cert`;
      if (!files.includes(certFile)) throw badRequest(`client key ${join(dir, file)} has no ${certFile}`);
    }
  }
  return { cas, cert, key };
}

/** Computes the TLS settings for connections to `host` (`name` or `name:port`). */
export async function tlsSettingsFor(host: string, options: TlsOptions): Promise<TlsSettings> {
  const extraCas: string[] = [];
  if (options.caFile) extraCas.push(await readPem(options.caFile));
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  for (const certsDir of options.certsDirs ?? defaultCertsDirs()) {
    // Directory names never contain "/" legitimately; refuse hosts that would climb out of certsDir.
    if (host.includes("/") || host.startsWith(".")) break;
    const found = await readHostCertsDir(join(certsDir, host));
    extraCas.push(...found.cas);
    if (cert === undefined && found.cert) {
      cert = found.cert;
      key = found.key;
    }
  }
  const settings: TlsSettings = { rejectUnauthorized: !isInsecureHost(options.insecure, host) };
  if (extraCas.length > 0) settings.ca = [...rootCertificates, ...extraCas];
  if (cert) {
    settings.cert = cert;
    settings.key = key;
  }
  return settings;
}
