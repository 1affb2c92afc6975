// The factory service under test: the test bed release published once per test file into an embedded
// registry server on a loopback port (the layers are cached, so this takes seconds), and the seed deployment
// command quoted in README.md pointed at it, started in process with `startFactory`.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { type RunningFactory, startFactory } from "../../src/factory/run.ts";
import { type RegistryServer, startRegistryServer } from "../../src/registry/server.ts";
import type { TestbedArch } from "../../src/testbed/debian.ts";
import { publishTestbedRelease, type ReleaseSummary } from "../../src/testbed/release.ts";
import { type KeyFiles, makeKeyFiles } from "./config-fixtures.ts";

export interface PublishedTestbed {
  /** 127.0.0.1:<port>: the test bed images, and room for the seed's cache/schematics/installer repositories. */
  registry: string;
  /** cosign.pub, trusted_root.json, identity.json */
  outDir: string;
  summary: ReleaseSummary;
  server: RegistryServer;
  stop(): Promise<void>;
}

/** `arches`: the release's architectures (default linux/amd64 only, the release's own default). */
export async function publishTestbed(options: { arches?: readonly TestbedArch[] } = {}): Promise<PublishedTestbed> {
  const dir = await mkdtemp(join(tmpdir(), "factory-testbed-"));
  const server = await startRegistryServer({ root: join(dir, "registry"), listen: "127.0.0.1:0", logger: false });
  try {
    const outDir = join(dir, "out");
    const summary = await publishTestbedRelease({
      registry: server.address,
      repositoryFor: (name) => server.store.repository(name),
      out: outDir,
      ...(options.arches === undefined ? {} : { arches: options.arches }),
    });
    return {
      registry: server.address,
      outDir,
      summary,
      server,
      async stop() {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await server.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The seed's identity regexps as the program receives them once a shell has quoted them. */
export const seedIssuerRegExp = "(https://token\\.actions\\.githubusercontent\\.com)|(https://accounts\\.google.com)";
export const seedSubjectRegExp =
  "(https://github.com/jfroy/talos-boot-assets/\\.github/workflows/assets\\.yaml@refs/heads/release-.+)|(.+@siderolabs\\.com)";

/**
 * The seed deployment command, flag for flag, with its paths, addresses and domain changed: the registry
 * (`localhost:5000` there) is the test bed's, listening on loopback port 0; plus `-insecure-image-registry`
 * and the test bed's key, since the test bed is not signed by the seed's identities.
 */
export function seedArgv(
  testbed: Pick<PublishedTestbed, "registry" | "outDir">,
  keys: KeyFiles,
  dataDir: string,
): string[] {
  const registry = testbed.registry;
  return [
    "-cache-repository",
    `${registry}/cache`,
    "-cache-signing-key-path",
    keys.cacheKey,
    "-container-signature-issuer-regexp",
    seedIssuerRegExp,
    "-container-signature-subject-regexp",
    seedSubjectRegExp,
    "-external-url",
    "https://factory.example.test/",
    "-http-port",
    "127.0.0.1:0",
    "-image-registry",
    registry,
    "-installer-external-repository",
    "factory.example.test/installer",
    "-installer-internal-repository",
    `${registry}/installer`,
    "-min-talos-version",
    "1.8.2",
    "-schematic-service-repository",
    `${registry}/schematics`,
    "-secureboot",
    "-secureboot-pcr-key-path",
    keys.pcrKey,
    "-secureboot-signing-cert-path",
    keys.ukiCert,
    "-secureboot-signing-key-path",
    keys.ukiKey,
    "-talos-versions-recheck-interval",
    "1h",
    // changed/added for the test: the test bed registry is plain HTTP and signed by the test bed key
    "-insecure-image-registry",
    "-container-signature-pubkey",
    join(testbed.outDir, "cosign.pub"),
    "-metrics-listen-addr",
    "127.0.0.1:0",
    "--data-dir",
    dataDir,
  ];
}

export interface FactoryUnderTest {
  factory: RunningFactory;
  /** Every JSON log line the factory wrote. */
  logs: Array<Record<string, unknown>>;
  keys: KeyFiles;
  dataDir: string;
  stop(): Promise<void>;
}

/** A pino logger whose lines are parsed into `lines` (nothing printed). */
export function capturingLogger(lines: Array<Record<string, unknown>>) {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line));
      callback();
    },
  });
  return pino({ level: "info" }, sink);
}

/** Starts the factory in process from the command line `argvFor` makes, with fresh keys and data directory. */
export async function startFactoryUnderTest(
  argvFor: (keys: KeyFiles, dataDir: string) => string[],
): Promise<FactoryUnderTest> {
  const keys = await makeKeyFiles();
  const dataDir = join(keys.dir, "data");
  const logs: Array<Record<string, unknown>> = [];
  const config = await parseFactoryCommandLine(argvFor(keys, dataDir), {});
  const factory = await startFactory(config, {
    logger: capturingLogger(logs),
    print: () => {},
    processMetrics: false,
  });
  return {
    factory,
    logs,
    keys,
    dataDir,
    async stop() {
      await factory.close();
      await keys.cleanup();
    },
  };
}

/** Starts the factory from the seed command line (argv as given, then `extra`). */
export function startSeedFactory(testbed: PublishedTestbed, extra: string[] = []): Promise<FactoryUnderTest> {
  return startFactoryUnderTest((keys, dataDir) => [...seedArgv(testbed, keys, dataDir), ...extra]);
}

export interface SeedBed {
  testbed: PublishedTestbed;
  running: FactoryUnderTest;
  /** The factory's URL without the trailing slash. */
  base: string;
  /** The ID of the schematic startSeedBed was given; "" when none was. */
  id: string;
  /** Stops the factory, then the test bed. */
  stop(): Promise<void>;
}

/**
 * The test bed published and the seed factory started on it (`extra` flags after the seed's), once `ready` (a
 * path, default /readyz) answers 200; with `schematic` (YAML), that schematic created. What started is stopped
 * again when a step fails.
 */
export async function startSeedBed(
  options: { ready?: string; schematic?: string; extra?: string[] } = {},
): Promise<SeedBed> {
  const testbed = await publishTestbed();
  let running: FactoryUnderTest | undefined;
  try {
    running = await startSeedFactory(testbed, options.extra);
    const base = running.factory.url.replace(/\/$/, "");
    await waitFor200(`${base}${options.ready ?? "/readyz"}`);
    const id = options.schematic === undefined ? "" : await createSchematic(base, options.schematic);
    const factory = running;
    return {
      testbed,
      running,
      base,
      id,
      async stop() {
        await factory.stop();
        await testbed.stop();
      },
    };
  } catch (err) {
    await running?.stop();
    await testbed.stop();
    throw err;
  }
}

/** Polls `url` until it answers 200 (the version list loads in the background). */
export async function waitFor200(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const res = await fetch(url);
    last = `${res.status} ${await res.text()}`;
    if (res.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/** The sum of a metric over its label sets, or over those whose label block contains `labels`. */
export function metricSum(text: string, name: string, labels = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const labelled = line.startsWith(`${name}{`) && line.includes(labels);
    if (labelled || (labels === "" && line.startsWith(`${name} `)))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** POSTs a schematic (YAML) to the factory at `base`; its ID once the factory answered 201. */
export async function createSchematic(base: string, yaml: string): Promise<string> {
  const res = await fetch(`${base.replace(/\/$/, "")}/schematics`, {
    method: "POST",
    headers: { "Content-Type": "application/yaml" },
    body: yaml,
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { id: string }).id;
}
