// Registry benchmark: serves one 512 MiB blob from the embedded registry and from CNCF distribution over
// loopback, fetched by curl (a client neither side wrote), and compares throughput and manifest GET latency.
// The embedded registry runs in its own process, like distribution, so neither shares the driver's CPU time.
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { startDistribution } from "../../test/harness/distribution.ts";
import { freePort } from "../../test/harness/ports.ts";
import { startServerProcess, waitForHttp } from "../../test/harness/process.ts";
import { percentile, printTable } from "../report.ts";
import { type BenchResult, ratioSpread, spread, writeResult } from "../results.ts";
import { pushBlob, pushManifest } from "./upload.ts";

const execFileAsync = promisify(execFile);

const BLOB_SIZE = 512 * 1024 * 1024;
const { values } = parseArgs({
  options: { rounds: { type: "string", default: "7" }, json: { type: "string" } },
});
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 3) throw new Error("--rounds must be an integer ≥ 3");
const MANIFEST_REQUESTS = 500;
/** Issue 18: the embedded registry at least as fast as distribution. */
const GOAL_RATIO = 1.0;
/** The whole run must stay well under three minutes; past this it aborts rather than hang CI. */
const DEADLINE_MS = 170_000;
const REPOSITORY = "bench/blob";
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

const projectRoot = resolve(import.meta.dirname, "..", "..");
const cacheDir = join(projectRoot, ".cache", "bench");

interface Target {
  name: "embedded" | "distribution";
  url: string;
  stop(): Promise<void>;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/** The random benchmark blob, made once and kept under .cache/bench (git-ignored), with its digest. */
async function benchBlob(): Promise<{ path: string; digest: string }> {
  const path = join(cacheDir, "blob-512MiB.bin");
  const digestFile = `${path}.sha256`;
  const existing = await stat(path).catch(() => undefined);
  if (existing?.size === BLOB_SIZE) {
    const digest = (await readFile(digestFile, "utf8").catch(() => "")).trim();
    if (/^sha256:[0-9a-f]{64}$/.test(digest)) return { path, digest };
    const computed = await sha256OfFile(path);
    await writeFile(digestFile, computed);
    return { path, digest: computed };
  }
  log(`writing ${BLOB_SIZE / 1024 / 1024} MiB of random data to ${path}`);
  await mkdir(cacheDir, { recursive: true });
  const partial = `${path}.partial`;
  const out = createWriteStream(partial);
  const hash = createHash("sha256");
  const chunkSize = 4 * 1024 * 1024;
  for (let written = 0; written < BLOB_SIZE; written += chunkSize) {
    const chunk = randomBytes(chunkSize);
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  const digest = `sha256:${hash.digest("hex")}`;
  await rename(partial, path);
  await writeFile(digestFile, digest);
  return { path, digest };
}

async function startEmbedded(): Promise<Target> {
  const root = await mkdtemp(join(tmpdir(), "bench-embedded-"));
  const host = `127.0.0.1:${await freePort()}`;
  const server = startServerProcess(process.execPath, [
    join(projectRoot, "src", "cli", "main.ts"),
    "registry",
    "--listen",
    host,
    "--root",
    root,
    // Distribution runs at level warn without access logs; the same here, so neither pays for logging.
    "--log-level",
    "warn",
  ]);
  const url = `http://${host}`;
  const stop = async () => {
    await server.kill();
    await rm(root, { recursive: true, force: true });
  };
  try {
    // Generous: on a loaded shared machine node takes a while to load the CLI.
    await waitForHttp(server, `${url}/v2/`, [200, 401], "boot-assets registry", 90_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name: "embedded", url, stop };
}

async function startDistributionTarget(): Promise<Target> {
  const registry = await startDistribution();
  return { name: "distribution", url: registry.url, stop: () => registry.stop() };
}

/** Pushes the big blob and a one-layer manifest referencing it, so both registries hold the same image. */
async function seed(target: Target, blob: { path: string; digest: string }): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers" } }));
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  const started = performance.now();
  await pushBlob(target.url, REPOSITORY, blob.digest, BLOB_SIZE, { path: blob.path });
  const seconds = (performance.now() - started) / 1000;
  log(
    `pushed the blob to ${target.name} in ${seconds.toFixed(1)} s (${(BLOB_SIZE / 2 ** 20 / seconds).toFixed(0)} MiB/s)`,
  );
  await pushBlob(target.url, REPOSITORY, configDigest, config.length, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: blob.digest, size: BLOB_SIZE }],
    }),
  );
  await pushManifest(target.url, REPOSITORY, "latest", MANIFEST_TYPE, manifest);
}

/** One blob download by curl to /dev/null; returns bytes per second as curl measured it. */
async function curlDownload(target: Target, digest: string): Promise<number> {
  const url = `${target.url}/v2/${REPOSITORY}/blobs/${digest}`;
  const { stdout } = await execFileAsync("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code} %{size_download} %{speed_download}",
    url,
  ]);
  const [code, size, speed] = stdout.trim().split(" ");
  if (code !== "200" || Number(size) !== BLOB_SIZE) {
    throw new Error(`${target.name}: GET blob answered ${code} with ${size} bytes, expected 200 with ${BLOB_SIZE}`);
  }
  return Number(speed);
}

/** Downloads the blob once more through curl and hashes it: a fast answer only counts if it is the right bytes. */
async function verifyServedBlob(target: Target, digest: string): Promise<void> {
  const curl = spawn("curl", ["-s", "--fail", `${target.url}/v2/${REPOSITORY}/blobs/${digest}`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(curl, "close");
  const hash = createHash("sha256");
  for await (const chunk of curl.stdout) hash.update(chunk as Buffer);
  const [code] = await exited;
  const served = `sha256:${hash.digest("hex")}`;
  if (code !== 0 || served !== digest) {
    throw new Error(`${target.name} served a blob hashing to ${served} (curl exit ${code}), expected ${digest}`);
  }
}

/** Sequential manifest GETs over one keep-alive connection; returns each request's latency in ms. */
async function manifestLatencies(target: Target, count: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const url = `${target.url}/v2/${REPOSITORY}/manifests/latest`;
  const get = () =>
    new Promise<void>((resolvePromise, reject) => {
      const req = request(url, { agent, headers: { Accept: MANIFEST_TYPE } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${target.name}: GET manifest answered ${res.statusCode}`));
        res.resume();
        res.on("end", resolvePromise);
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  try {
    for (let i = 0; i < 20; i++) await get(); // warm-up: connection set-up and JIT
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await get();
      latencies.push(performance.now() - started);
    }
    return latencies;
  } finally {
    agent.destroy();
  }
}

async function main(): Promise<number> {
  const deadline = setTimeout(() => {
    log(`benchmark exceeded ${DEADLINE_MS / 1000} s; aborting`);
    process.exit(1);
  }, DEADLINE_MS);
  const blob = await benchBlob();
  const targets: Target[] = [];
  try {
    targets.push(await startEmbedded(), await startDistributionTarget());
    for (const target of targets) await seed(target, blob);

    const speeds = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate who goes first so neither always benefits from a warmer page cache or CPU.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const speed = await curlDownload(target, blob.digest);
        speeds.get(target.name)?.push(speed);
        log(`round ${round + 1}: ${target.name} ${(speed / 2 ** 20).toFixed(0)} MiB/s`);
      }
    }
    for (const target of targets) await verifyServedBlob(target, blob.digest);
    const latencies = new Map<string, number[]>();
    for (const target of targets) latencies.set(target.name, await manifestLatencies(target, MANIFEST_REQUESTS));

    const mib = (bytesPerSecond: number) => (bytesPerSecond / 2 ** 20).toFixed(0);
    const rows = [["registry", "blob median MiB/s", "blob best MiB/s", "manifest p50 ms", "manifest p99 ms"]];
    for (const target of targets) {
      const s = speeds.get(target.name) ?? [];
      const l = latencies.get(target.name) ?? [];
      rows.push([
        target.name,
        mib(percentile(s, 50)),
        mib(Math.max(...s)),
        percentile(l, 50).toFixed(2),
        percentile(l, 99).toFixed(2),
      ]);
    }
    console.log(
      `\n512 MiB blob, ${ROUNDS} rounds each via curl over loopback; ${MANIFEST_REQUESTS} sequential manifest GETs (node:http keep-alive)\n`,
    );
    printTable(rows);
    const ours = speeds.get("embedded") ?? [];
    const theirs = speeds.get("distribution") ?? [];
    // Rounds pair by index: round i fetched from both, the order alternating.
    const ratios = ratioSpread(ours, theirs);
    const ratio = ratios.median;
    const verdict = ratio >= GOAL_RATIO ? "meets" : "BELOW";
    console.log(
      `\nthroughput ratio embedded/distribution (median of the rounds' ratios): ${ratio.toFixed(2)} ` +
        `(${ratios.min.toFixed(2)}–${ratios.max.toFixed(2)}) — ${verdict} the ${GOAL_RATIO.toFixed(1)}× goal`,
    );
    const mibs = (xs: number[]) => xs.map((x) => x / 2 ** 20);
    const oursLatency = latencies.get("embedded") ?? [];
    const theirLatency = latencies.get("distribution") ?? [];
    const single = (x: number) => spread([x]);
    const result: BenchResult = {
      bench: "registry",
      title: "embedded registry vs CNCF distribution, 512 MiB blob GET by curl over loopback",
      baseline: "CNCF distribution (Debian's docker-registry) serving the same blob, its own process",
      rounds: ROUNDS,
      rows: [
        {
          figure: "blob GET throughput",
          unit: "MiB/s",
          ours: spread(mibs(ours)),
          baseline: spread(mibs(theirs)),
          ratio: ratios,
          goal: `≥ ${GOAL_RATIO.toFixed(1)}× distribution`,
          held: ratio >= GOAL_RATIO,
        },
        ...[50, 99].map((p) => {
          const o = percentile(oursLatency, p);
          const t = percentile(theirLatency, p);
          return {
            figure: `manifest GET p${p} (${MANIFEST_REQUESTS} sequential, one run each)`,
            unit: "ms",
            ours: single(o),
            baseline: single(t),
            ratio: single(o / t),
            goal: "",
          };
        }),
      ],
      notes: [],
    };
    await writeResult(values.json, result);
    return 0;
  } finally {
    for (const target of targets) await target.stop();
    clearTimeout(deadline);
  }
}

process.exitCode = await main();
