// `boot-assets factory --testbed`: the demo that needs no internet. The test bed release (a miniature,
// signed Talos release built from Debian packages; src/testbed/) is published into an embedded registry
// served on a loopback port, and the factory is pointed at it with signature verification ON: the test bed's
// key and its keyless identity under its own trusted root.
//
// Layout under <data-dir>/testbed/: registry/ (the registry's store), registry.json (its last port, reused
// so signatures, which name the registry, are not re-made at every start), keys/ (the release's signing key
// and test Sigstore: one data directory always signs with the same keys, whatever the cache directory), and
// the verification material the release writes: cosign.key, cosign.pub, trusted_root.json, identity.json.

import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { type RegistryServer, startRegistryServer } from "../registry/server.ts";
import { testbedArches } from "../testbed/debian.ts";
import { publishTestbedRelease, type ReleaseSummary } from "../testbed/release.ts";
import { type KeylessIdentityClaim, testbedKeylessIdentity } from "../testbed/release-keys.ts";

export interface TestbedRegistry {
  /** 127.0.0.1:<port> */
  registry: string;
  dir: string;
  summary: ReleaseSummary;
  /** Factory flags pointing at the test bed; placed before the operator's own, which win. */
  factoryArgs: string[];
  close(): Promise<void>;
}

export interface StartTestbedOptions {
  /** <data-dir>/testbed */
  dir: string;
  /** Progress lines (publishing). */
  log: (line: string) => void;
  /** Logger of the test bed registry (it logs warnings only). */
  logger: Logger;
}

/** Defaults of the demo: loopback only, on upstream's ports. */
export const testbedListen = "127.0.0.1:8080";
export const testbedMetricsListen = "127.0.0.1:2122";

const portFile = "registry.json";

async function lastPort(dir: string): Promise<number> {
  try {
    const port = (JSON.parse(await readFile(join(dir, portFile), "utf8")) as { port?: unknown }).port;
    return typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536 ? port : 0;
  } catch {
    return 0;
  }
}

async function startOnLastPort(dir: string, logger: Logger): Promise<RegistryServer> {
  const root = join(dir, "registry");
  const port = await lastPort(dir);
  const start = (p: number) =>
    startRegistryServer({ root, listen: `127.0.0.1:${p}`, logger: logger.child({ component: "testbed-registry" }) });
  if (port === 0) return start(0);
  try {
    return await start(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    return start(0); // taken by something else: any free port (the release is re-signed for it)
  }
}

/** RE2 source matching exactly `text`. */
function literalRegExp(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, "\\$&");
}

/** The factory flags that point at a test bed registry at `registry` whose files are in `dir`. */
export function testbedFactoryArgs(dir: string, registry: string, identity: KeylessIdentityClaim): string[] {
  return [
    "-image-registry",
    registry,
    "-insecure-image-registry",
    "-container-signature-pubkey",
    join(dir, "cosign.pub"),
    "-container-signature-trusted-root",
    join(dir, "trusted_root.json"),
    "-container-signature-subject-regexp",
    literalRegExp(identity.subject),
    "-container-signature-issuer",
    identity.issuer,
    "-http-port",
    testbedListen,
    "-metrics-listen-addr",
    testbedMetricsListen,
    "-external-url",
    `http://${testbedListen}/`,
  ];
}

/**
 * The factory flags `startTestbed` would give, worked out without publishing, starting or writing anything
 * (for --check-config): the registry's last port, or port 0 when none was recorded yet (one is chosen at
 * start). Verification files the first start has not written yet are left out, and named in `missing`.
 */
export async function plannedTestbedArgs(
  dir: string,
): Promise<{ registry: string; factoryArgs: string[]; missing: string[] }> {
  const registry = `127.0.0.1:${await lastPort(dir)}`;
  const args = testbedFactoryArgs(dir, registry, testbedKeylessIdentity);
  const missing: string[] = [];
  for (const flag of ["-container-signature-pubkey", "-container-signature-trusted-root"]) {
    const at = args.indexOf(flag);
    const file = args[at + 1] as string;
    if (existsSync(file)) continue;
    missing.push(file);
    args.splice(at, 2);
  }
  return { registry, factoryArgs: args, missing };
}

export async function startTestbed(options: StartTestbedOptions): Promise<TestbedRegistry> {
  await mkdir(options.dir, { recursive: true });
  const server = await startOnLastPort(options.dir, options.logger.child({}, { level: "warn" }));
  try {
    const port = Number(server.address.slice(server.address.lastIndexOf(":") + 1));
    await writeFile(join(options.dir, portFile), `${JSON.stringify({ port })}\n`);
    const summary = await publishTestbedRelease({
      registry: server.address,
      repositoryFor: (name) => server.store.repository(name),
      // Both platforms, as `testbed release` publishes them: arm64 schematics work in the demo too.
      arches: testbedArches,
      out: options.dir,
      keysDir: join(options.dir, "keys"),
      log: options.log,
    });
    const factoryArgs = testbedFactoryArgs(options.dir, server.address, summary.identity);
    return { registry: server.address, dir: options.dir, summary, factoryArgs, close: () => server.close() };
  } catch (err) {
    await server.close();
    throw err;
  }
}
