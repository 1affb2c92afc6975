// What the reliability tests share: the rows each test file records (test-artifacts/reliability/<stem>.json,
// merged into results.md by report.ts), the mode (quick in CI; RELIABILITY_FULL=1 under
// `npm run test:reliability` scales durations up), the factory as its own process (so it can be killed -9
// and its RSS and descriptors read from /proc) and the test bed release published into a real CNCF
// distribution registry that can be stopped and started again on the same port.

import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { publishTestbedRelease, type ReleaseSummary } from "../../src/testbed/release.ts";
import { type KeyFiles, makeKeyFiles } from "../factory/config-fixtures.ts";
import { seedArgv } from "../factory/service-harness.ts";
import { startDistribution } from "../harness/distribution.ts";
import { freePort } from "../harness/ports.ts";
import { type ServerProcess, startServerProcess } from "../harness/process.ts";
import type { RunningRegistry } from "../harness/types.ts";

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mainScript = join(projectRoot, "src", "cli", "main.ts");

/** `npm run test:reliability` sets RELIABILITY_FULL=1: longer loads, higher rates, the slow faults. */
export const fullMode = process.env.RELIABILITY_FULL === "1";

export interface ResultRow {
  area: "load" | "faults" | "input";
  check: string;
  /** How many times the check was tried (requests sent, faults injected, inputs generated). */
  tried: number;
  failures: number;
  detail: string;
}

/** The rows of one test file, rewritten to test-artifacts/reliability/<stem>.json after every added row. */
export class ResultRows {
  private readonly rows: ResultRow[] = [];
  private readonly file: string;
  constructor(testFileUrl: string) {
    const stem = basename(fileURLToPath(testFileUrl)).replace(/\.test\.ts$/, "");
    this.file = join(projectRoot, "test-artifacts", "reliability", `${stem}.json`);
  }
  /** Records a row and rewrites the file. */
  async add(row: ResultRow): Promise<void> {
    this.push(row);
    await this.save();
  }
  /** Records a row; `save` writes them (for rows gathered where nothing can be awaited). */
  push(row: ResultRow): void {
    this.rows.push(row);
  }
  async save(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    await writeFile(this.file, `${JSON.stringify(this.rows, null, 2)}\n`);
  }
}

/** A factory started as `node src/cli/main.ts factory …` in its own process. */
export interface FactoryProcess {
  pid: number;
  /** Without the trailing slash. */
  base: string;
  metricsUrl: string | undefined;
  server: ServerProcess;
  /** SIGTERM (graceful), SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL, at once; resolves once the process is gone. */
  kill9(): Promise<void>;
}

/** `env`: added to this process's environment (e.g. TMPDIR, to see what a build leaves there). */
export async function startFactoryProcess(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<FactoryProcess> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const server = startServerProcess(process.execPath, [mainScript, "factory", ...argv], {
    ...process.env,
    ...options.env,
  });
  const deadline = Date.now() + timeoutMs;
  let base: string | undefined;
  let metricsUrl: string | undefined;
  const wantsMetrics = argv.some((arg, i) => argv[i - 1] === "-metrics-listen-addr" && arg !== "");
  while (Date.now() < deadline) {
    const out = server.output();
    base = /factory serving on (http:\/\/\S+)/.exec(out)?.[1]?.replace(/\/$/, "");
    metricsUrl = /metrics on (http:\/\/\S+)/.exec(out)?.[1];
    if (base !== undefined && (!wantsMetrics || metricsUrl !== undefined)) break;
    if (server.exited() !== undefined) throw new Error(`factory exited (${server.exited()}):\n${out.slice(-3000)}`);
    await sleep(50);
  }
  if (base === undefined) {
    await server.kill();
    throw new Error(`factory did not start within ${timeoutMs} ms:\n${server.output().slice(-3000)}`);
  }
  const pid = server.child.pid as number;
  const gone = new Promise<void>((resolve) => {
    if (server.exited() !== undefined) resolve();
    else server.child.once("exit", () => resolve());
  });
  return {
    pid,
    base,
    metricsUrl,
    server,
    stop: () => server.kill(),
    async kill9() {
      if (server.exited() === undefined) server.child.kill("SIGKILL");
      await gone;
    },
  };
}

/** Resident set size of a process in bytes (VmRSS). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  return Number(kib) * 1024;
}

/** The targets of a process's open file descriptors, grouped: "socket", "pipe", "anon_inode", or a path. */
export async function openDescriptors(pid: number): Promise<string[]> {
  const targets: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      targets.push(await readlink(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return targets;
}

/** Counts of descriptor kinds: sockets, pipes, anon inodes, files. */
export function descriptorKinds(targets: string[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const target of targets) {
    const kind = /^(socket|pipe|anon_inode):/.exec(target)?.[1] ?? "file";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** The test bed release in a distribution registry that `restart()` can bring back on the same port. */
export interface SourceRegistry {
  registry: string;
  outDir: string;
  summary: ReleaseSummary;
  current: RunningRegistry;
  /** Stops the registry process (its storage stays). */
  halt(): Promise<void>;
  /** Starts it again on the same port with the same storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Only `versions` (default v1.10.3: one version publishes in a fraction of the whole release's time). */
export async function publishTestbedToDistribution(versions: readonly string[] = ["v1.10.3"]): Promise<SourceRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "reliability-source-"));
  const port = await freePort();
  const persist = { dir: join(dir, "registry"), port };
  await mkdir(persist.dir, { recursive: true });
  let current = await startDistribution({ persist });
  try {
    const outDir = join(dir, "out");
    const summary = await publishTestbedRelease({
      registry: current.host,
      client: new RegistryClient({ insecure: [current.host], certsDirs: [] }),
      out: outDir,
      versions,
    });
    const source: SourceRegistry = {
      registry: current.host,
      outDir,
      summary,
      current,
      async halt() {
        await current.stop();
      },
      async restart() {
        current = await startDistribution({ persist });
        source.current = current;
      },
      async stop() {
        await current.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
    return source;
  } catch (err) {
    await current.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Fresh keys and a data directory, and the seed command line on `source` (metrics on a loopback port). */
export async function seedProcessArgv(
  source: { registry: string; outDir: string },
  dataDir?: string,
): Promise<{ keys: KeyFiles; dataDir: string; argv: string[] }> {
  const keys = await makeKeyFiles();
  const data = dataDir ?? join(keys.dir, "data");
  return { keys, dataDir: data, argv: seedArgv(source, keys, data) };
}

/** Polls `url` until it answers 200. */
export async function until200(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      last = `${res.status} ${(await res.text()).slice(0, 300)}`;
      if (res.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/** Every path under `dir` (files and directories, relative), or [] if it does not exist. */
export async function listTree(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).sort();
  } catch {
    return [];
  }
}

/** Leftovers of interrupted writes under a data directory: `*.part` temp files, `.tmp-*` and `tmp/<pid>-*` scratch. */
export function tempLeftovers(paths: string[]): string[] {
  return paths.filter((path) => /\.part$|(^|\/)\.tmp-|(^|\/)tmp\/\d+-[^/]+$/.test(path));
}
