import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { startServerProcess, waitForHttp } from "./process.ts";
import type { RunningRegistry } from "./types.ts";

export interface DistributionOptions {
  /** Serve HTTPS with this certificate and key. */
  tls?: { certFile: string; keyFile: string };
  /** Demand bearer tokens (distribution token spec) signed by a key whose certificate is in `rootCertBundle`. */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Keep storage here (not removed on stop) and listen on this port: a registry that can be stopped and started again. */
  persist?: { dir: string; port: number };
}

/**
 * Starts the real CNCF distribution registry (`docker-registry`, Debian's 2.8) on a free loopback port with
 * its own config and a temporary storage root. The stock /etc/docker/registry/config.yml is never used: it
 * turns on htpasswd auth and listens on all interfaces.
 */
export async function startDistribution(opts: DistributionOptions = {}): Promise<RunningRegistry> {
  const dir = opts.persist?.dir ?? (await mkdtemp(join(tmpdir(), "distribution-")));
  const removeOnStop = opts.persist === undefined;
  const root = join(dir, "data");
  const port = opts.persist?.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;

  // A fixed secret silences distribution's start-up warning about a generated one.
  const http: Record<string, unknown> = { addr: host, secret: randomBytes(16).toString("hex") };
  if (opts.tls) http.tls = { certificate: opts.tls.certFile, key: opts.tls.keyFile };
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: root }, delete: { enabled: true } },
    http,
  };
  if (opts.tokenAuth) {
    config.auth = {
      token: {
        realm: opts.tokenAuth.realm,
        service: opts.tokenAuth.service,
        issuer: opts.tokenAuth.issuer,
        rootcertbundle: opts.tokenAuth.rootCertBundle,
      },
    };
  }
  // YAML is a superset of JSON, so distribution reads this as its YAML config.
  const configFile = join(dir, "config.yml");
  await writeFile(configFile, JSON.stringify(config, null, 2));

  // REGISTRY_* variables override config keys: keep any from the environment out.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("REGISTRY_")));
  const server = startServerProcess("docker-registry", ["serve", configFile], env);
  const url = `${opts.tls ? "https" : "http"}://${host}`;
  try {
    await waitForHttp(server, `${url}/v2/`, [200, 401], "docker-registry");
  } catch (err) {
    await server.kill();
    if (removeOnStop) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let stopped = false;
  return {
    host,
    url,
    root,
    kind: "distribution",
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.kill();
      if (removeOnStop) await rm(dir, { recursive: true, force: true });
    },
  };
}
