// The two servers of the serving benchmark, each in its own process: the factory (`boot-assets factory`, as
// `npm start` runs it, pointed at a test bed registry that is also its own process) and nginx (Debian's
// package, a throw-away prefix under a temp directory, loopback only, sendfile on as a deployment would).

import { spawn } from "node:child_process";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { testbedFactoryArgs } from "../../src/factory/testbed.ts";
import { openStore } from "../../src/registry/store.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { freePort } from "../../test/harness/ports.ts";
import { type ServerProcess, startServerProcess, waitForHttp } from "../../test/harness/process.ts";

const projectRoot = resolve(import.meta.dirname, "..", "..");
const cli = join(projectRoot, "src", "cli", "main.ts");

export interface RunningServer {
  url: string;
  /** The process whose memory is sampled (the factory's node; nginx's master). */
  pid: number;
  stop(): Promise<void>;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function started(server: ServerProcess, url: string, statuses: number[], what: string, timeoutMs?: number) {
  try {
    await waitForHttp(server, url, statuses, what, timeoutMs);
  } catch (err) {
    await server.kill();
    throw err;
  }
}

/** The port the test bed registry had last time (signatures name it), or a free one. */
async function registryPort(dir: string): Promise<number> {
  const file = join(dir, "registry.json");
  const last = await readFile(file, "utf8").then(
    (text) => (JSON.parse(text) as { port?: number }).port,
    () => undefined,
  );
  const port = last ?? (await freePort());
  await writeFile(file, `${JSON.stringify({ port })}\n`);
  return port;
}

/**
 * Publishes the test bed release for `version` with the bench-only `testbed-bulky` extension into the store
 * under `<dir>/registry` (kept between runs: only what changed is pushed again), then serves that store
 * with `boot-assets registry` in its own process. Returns the factory flags that point at it.
 */
export async function startTestbedRegistry(
  dir: string,
  version: string,
  bulkyBytes: number,
): Promise<{ factoryArgs: string[]; stop(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const port = await registryPort(dir);
  const registry = `127.0.0.1:${port}`;
  const root = join(dir, "registry");
  const store = await openStore(root);
  let summary: Awaited<ReturnType<typeof publishTestbedRelease>>;
  try {
    summary = await publishTestbedRelease({
      registry,
      repositoryFor: (name) => store.repository(name),
      versions: [version],
      out: dir,
      keysDir: join(dir, "keys"),
      benchExtensions: { bulkyBytes },
      log: (line) => log(`testbed: ${line}`),
    });
  } finally {
    await store.close();
  }
  const server = startServerProcess(process.execPath, [
    cli,
    "registry",
    "--listen",
    registry,
    "--root",
    root,
    "--log-level",
    "warn",
  ]);
  await started(server, `http://${registry}/v2/`, [200, 401], "test bed registry");
  return { factoryArgs: testbedFactoryArgs(dir, registry, summary.identity), stop: () => server.kill() };
}

/** `boot-assets factory` on a free loopback port, logging warnings only (nginx's access log is off too). */
export async function startFactory(dataDir: string, testbedArgs: string[]): Promise<RunningServer> {
  const port = await freePort();
  const metricsPort = await freePort();
  const server = startServerProcess(process.execPath, [
    cli,
    "factory",
    "--data-dir",
    dataDir,
    ...testbedArgs,
    "-http-port",
    `127.0.0.1:${port}`,
    "-metrics-listen-addr",
    `127.0.0.1:${metricsPort}`,
    "-external-url",
    `http://127.0.0.1:${port}/`,
    "-log-level",
    "warn",
  ]);
  const url = `http://127.0.0.1:${port}`;
  await started(server, `${url}/versions`, [200], "factory", 60_000);
  const pid = server.child.pid;
  if (pid === undefined) throw new Error("the factory process has no pid");
  return { url, pid, stop: () => server.kill() };
}

/**
 * nginx serving `root` (files readable by its workers) on a free loopback port, configured as a plain static
 * file server would be: worker per core, sendfile, tcp_nopush, no access log.
 */
export async function startNginx(prefix: string, root: string): Promise<RunningServer> {
  const port = await freePort();
  await mkdir(join(prefix, "logs"), { recursive: true });
  // Started as root, nginx runs its workers as nobody: they must be able to reach the files.
  for (const dir of [prefix, root]) await chmod(dir, 0o755);
  const config = join(prefix, "nginx.conf");
  await writeFile(
    config,
    [
      "daemon off;",
      "worker_processes auto;",
      `pid ${join(prefix, "nginx.pid")};`,
      `error_log ${join(prefix, "logs", "error.log")} warn;`,
      "events { worker_connections 1024; }",
      "http {",
      "  types { application/octet-stream iso; }",
      "  default_type application/octet-stream;",
      "  sendfile on;",
      "  tcp_nopush on;",
      "  keepalive_timeout 65;",
      "  access_log off;",
      ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
        (name) => `  ${name}_temp_path ${join(prefix, `${name}_temp`)};`,
      ),
      "  server {",
      `    listen 127.0.0.1:${port};`,
      `    root ${root};`,
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const server = startServerProcess("nginx", ["-p", prefix, "-c", config]);
  const url = `http://127.0.0.1:${port}`;
  await started(server, `${url}/`, [403, 404], "nginx");
  const pid = server.child.pid;
  if (pid === undefined) throw new Error("the nginx process has no pid");
  return { url, pid, stop: () => server.kill() };
}

/** The resident set of `pid` in bytes (VmRSS of /proc/<pid>/status), or 0 once it is gone. */
export async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Starts a command and resolves with its stdout once it exits 0. */
export function runForOutput(command: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-8192);
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolvePromise(stdout) : reject(new Error(`${command} exited ${code}: ${stderr}`)),
    );
  });
}
