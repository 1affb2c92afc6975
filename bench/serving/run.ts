// Serving benchmark: a cached metal-amd64.iso of at least 500 MB downloaded by 1, 8 and 32 concurrent
// clients from the factory (GET /image/<schematic>/<version>/metal-amd64.iso, src/factory/http/asset-download.ts)
// and from nginx (Debian's package, sendfile on) serving the same bytes, in alternating rounds (ours, nginx,
// ours, nginx, …). Per concurrency it prints the throughput ratio ours/nginx (median, min, max of the rounds'
// ratios; goal ≥ 0.9×), the p99 time to first byte of both, and the factory process's peak RSS sampled from
// /proc/<pid>/status during its rounds (goal < 300 MB, flat as concurrency grows).
//
// The ISO is one the factory really builds and serves: the test bed release (src/testbed) for Talos v1.10.3
// with the bench-only extension `testbed-bulky` (publishTestbedRelease's benchExtensions, also used by
// bench/imager) carrying 170 MiB of incompressible bytes, and a schematic asking for that extension. The
// extension goes into the initramfs, which a v1.10 hybrid ISO carries three times (GRUB's initramfs.xz, and
// the UKI both in the ISO 9660 tree and on the appended EFI partition), so the ISO is ~570 MB. Nothing is padded after the build: the factory builds
// the ISO once (a few minutes on 2 cores; kept under .cache/bench/serving/ for the next run), and nginx
// serves a copy of exactly the bytes the factory sent (checked against the factory's ETag, the sha256).
//
// Every server runs in its own process: the factory as `npm start` runs it (`node src/cli/main.ts factory`,
// warnings-only logging), the test bed registry as `boot-assets registry`, nginx with a throw-away prefix,
// and the clients (bench/serving/clients.ts, node:http, bodies read and discarded) in a fresh process per
// round. Throughput is all bytes over the round's wall time.
//
//   npm run bench:serving [-- --rounds 3 --clients 1,8,32] [--json FILE]

import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { percentile, printTable } from "../report.ts";
import { type BenchResult, type ResultRow, ratioSpread, spread as spreadOf, writeResult } from "../results.ts";
import type { ClientsResult } from "./clients.ts";
import {
  type RunningServer,
  residentBytes,
  runForOutput,
  startFactory,
  startNginx,
  startTestbedRegistry,
} from "./servers.ts";

const version = "v1.10.3";
const asset = "metal-amd64.iso";
const bulkyBytes = 170 * 1024 * 1024;
const minIsoBytes = 500 * 1000 * 1000;
const defaultConcurrencies = "1,8,32";
/** Enough bytes per round that start-up costs do not dominate: a few GB at every concurrency. */
const downloadsPerClient = (concurrency: number) => Math.max(1, Math.ceil(4 / concurrency));
const goalRatio = 0.9;
const goalRssBytes = 300 * 1000 * 1000;
/** "Flat": the largest peak RSS at any concurrency within this of the smallest. */
const flatRssBytes = 50 * 1000 * 1000;
const rssSampleMs = 25;
/** A cold run builds the ISO first; past this the run aborts rather than hang. */
const deadlineMs = 20 * 60 * 1000;

const projectRoot = resolve(import.meta.dirname, "..", "..");
const stateDir = join(projectRoot, ".cache", "bench", "serving");

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    clients: { type: "string", default: defaultConcurrencies },
    json: { type: "string" },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 3) throw new Error("--rounds must be an integer ≥ 3");
const concurrencies = values.clients.split(",").map(Number);
if (!concurrencies.every((c) => Number.isInteger(c) && c >= 1 && c <= 256))
  throw new Error("--clients must be a comma-separated list of client counts (1–256)");

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function postSchematic(url: string, yaml: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const req = request(`${url}/schematics`, { method: "POST" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => {
        const id = res.statusCode === 201 || res.statusCode === 200 ? (JSON.parse(body) as { id?: string }).id : "";
        if (id) resolvePromise(id);
        else reject(new Error(`POST /schematics answered ${res.statusCode}: ${body}`));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(yaml);
  });
}

/** Downloads the asset once (the factory builds it if it is not cached) to `out`, checking it against its ETag. */
function fetchAsset(url: string, out: string): Promise<{ size: number; etag: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { timeout: deadlineMs }, (res) => {
      const etag = String(res.headers.etag ?? "").replaceAll('"', "");
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url} answered ${res.statusCode}`));
        return;
      }
      const hash = createHash("sha256");
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      pipeline(res, createWriteStream(out)).then(() => {
        const digest = hash.digest("hex");
        if (digest !== etag) reject(new Error(`${url}: body hashes to ${digest}, ETag says ${etag}`));
        else resolvePromise({ size, etag });
      }, reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** The resident set of nginx: its master and workers together. */
async function nginxResident(pid: number): Promise<number> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  const pids = [pid, ...children.split(/\s+/).filter(Boolean).map(Number)];
  const sizes = await Promise.all(pids.map(residentBytes));
  return sizes.reduce((a, b) => a + b, 0);
}

interface Round {
  bytesPerSecond: number;
  ttfbMs: number[];
  peakRss: number;
}

/** One round: a fresh clients process against `server`, its memory sampled until the clients are done. */
async function round(server: RunningServer, path: string, concurrency: number, size: number, nginx: boolean) {
  const sample = () => (nginx ? nginxResident(server.pid) : residentBytes(server.pid));
  let peakRss = await sample();
  let running = true;
  const sampler = (async () => {
    while (running) {
      peakRss = Math.max(peakRss, await sample());
      await new Promise((r) => setTimeout(r, rssSampleMs));
    }
  })();
  try {
    const output = await runForOutput(process.execPath, [
      join(import.meta.dirname, "clients.ts"),
      `${server.url}${path}`,
      String(concurrency),
      String(downloadsPerClient(concurrency)),
      String(size),
    ]);
    const result = JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as ClientsResult;
    return { bytesPerSecond: result.bytes / result.seconds, ttfbMs: result.ttfbMs, peakRss } satisfies Round;
  } finally {
    running = false;
    await sampler;
  }
}

/** Stops what the run started, last first (also when the deadline passes). */
const stoppers: (() => Promise<void>)[] = [];

async function stopAll(): Promise<void> {
  for (const stop of stoppers.splice(0).reverse()) await stop().catch((err: Error) => log(err.message));
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), "bench-serving-"));
  await chmod(scratch, 0o755); // nginx's workers (nobody) must reach the file below it
  stoppers.push(() => rm(scratch, { recursive: true, force: true }));
  try {
    log(`publishing the test bed release ${version} with testbed-bulky (${bulkyBytes / 2 ** 20} MiB)`);
    const testbed = await startTestbedRegistry(join(stateDir, "testbed"), version, bulkyBytes);
    stoppers.push(testbed.stop);
    const factory = await startFactory(join(stateDir, "data"), testbed.factoryArgs);
    stoppers.push(factory.stop);
    const idleRss = await residentBytes(factory.pid);

    const schematic = await postSchematic(
      factory.url,
      "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/testbed-bulky\n",
    );
    const path = `/image/${schematic}/${version}/${asset}`;
    const nginxRoot = join(scratch, "www");
    const copy = join(nginxRoot, path);
    await mkdir(dirname(copy), { recursive: true });
    log(`GET ${path} (built now unless cached in ${join(stateDir, "data")})`);
    const fetchStarted = performance.now();
    const { size } = await fetchAsset(`${factory.url}${path}`, copy);
    log(`  ${(size / 1e6).toFixed(1)} MB in ${((performance.now() - fetchStarted) / 1000).toFixed(1)} s`);
    if (size < minIsoBytes) throw new Error(`the ISO is ${size} bytes, less than the ${minIsoBytes} this bench needs`);
    const nginx = await startNginx(join(scratch, "nginx"), nginxRoot);
    stoppers.push(nginx.stop);

    // Warm-up: both files in the page cache, both servers past their first request.
    await round(factory, path, 1, size, false);
    await round(nginx, path, 1, size, true);

    const results = new Map<number, { ours: Round[]; nginx: Round[] }>();
    for (const concurrency of concurrencies) {
      const entry = { ours: [] as Round[], nginx: [] as Round[] };
      results.set(concurrency, entry);
      for (let i = 0; i < rounds; i++) {
        const ours = await round(factory, path, concurrency, size, false);
        entry.ours.push(ours);
        const theirs = await round(nginx, path, concurrency, size, true);
        entry.nginx.push(theirs);
        log(
          `c=${concurrency} round ${i + 1}: ours ${(ours.bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s ` +
            `(peak RSS ${(ours.peakRss / 1e6).toFixed(0)} MB), nginx ${(theirs.bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s`,
        );
      }
    }

    const mib = (v: number) => (v / 2 ** 20).toFixed(0);
    const mb = (v: number) => (v / 1e6).toFixed(0);
    console.log(
      `\n${asset} ${(size / 1e6).toFixed(1)} MB (Talos ${version} + testbed-bulky), ${rounds} alternating rounds per ` +
        `concurrency, downloads per client: ${concurrencies.map((c) => `c=${c}: ${downloadsPerClient(c)}`).join(", ")}; ` +
        `factory idle RSS ${mb(idleRss)} MB\n`,
    );
    const rows = [
      [
        "clients",
        "ours MiB/s",
        "nginx MiB/s",
        "ratio median",
        "ratio min",
        "ratio max",
        "ours p99 TTFB ms",
        "nginx p99 TTFB ms",
        "factory peak RSS MB (median / max)",
        "nginx RSS MB",
      ],
    ];
    const verdicts: string[] = [];
    const peaks: number[] = [];
    const resultRows: ResultRow[] = [];
    const rssRows: ResultRow[] = [];
    for (const [concurrency, entry] of results) {
      const oursSpeeds = entry.ours.map((r) => r.bytesPerSecond / 2 ** 20);
      const nginxSpeeds = entry.nginx.map((r) => r.bytesPerSecond / 2 ** 20);
      const ratioStats = ratioSpread(oursSpeeds, nginxSpeeds);
      resultRows.push({
        figure: `throughput, ${concurrency} client${concurrency === 1 ? "" : "s"}`,
        unit: "MiB/s",
        ours: spreadOf(oursSpeeds),
        baseline: spreadOf(nginxSpeeds),
        ratio: ratioStats,
        goal: `≥ ${goalRatio}× nginx`,
        held: ratioStats.median >= goalRatio,
      });
      const ttfb = (rs: Round[]) => rs.map((r) => percentile(r.ttfbMs, 99));
      resultRows.push({
        figure: `p99 time to first byte, ${concurrency} client${concurrency === 1 ? "" : "s"}`,
        unit: "ms",
        ours: spreadOf(ttfb(entry.ours)),
        baseline: spreadOf(ttfb(entry.nginx)),
        ratio: ratioSpread(ttfb(entry.ours), ttfb(entry.nginx)),
        goal: "",
      });
      const oursPeaks = entry.ours.map((r) => r.peakRss / 1e6);
      rssRows.push({
        figure: `peak RSS, ${concurrency} client${concurrency === 1 ? "" : "s"}`,
        unit: "MB",
        ours: spreadOf(oursPeaks),
        baseline: spreadOf(entry.nginx.map((r) => r.peakRss / 1e6)),
        goal: `< ${mb(goalRssBytes)} MB`,
        held: Math.max(...oursPeaks) * 1e6 < goalRssBytes,
      });
      const ratios = entry.ours.map((o, i) => o.bytesPerSecond / (entry.nginx[i]?.bytesPerSecond ?? Number.NaN));
      const oursRss = entry.ours.map((r) => r.peakRss);
      peaks.push(Math.max(...oursRss));
      const ratio = percentile(ratios, 50);
      rows.push([
        String(concurrency),
        mib(
          percentile(
            entry.ours.map((r) => r.bytesPerSecond),
            50,
          ),
        ),
        mib(
          percentile(
            entry.nginx.map((r) => r.bytesPerSecond),
            50,
          ),
        ),
        `${ratio.toFixed(2)}×`,
        `${Math.min(...ratios).toFixed(2)}×`,
        `${Math.max(...ratios).toFixed(2)}×`,
        percentile(
          entry.ours.flatMap((r) => r.ttfbMs),
          99,
        ).toFixed(1),
        percentile(
          entry.nginx.flatMap((r) => r.ttfbMs),
          99,
        ).toFixed(1),
        `${mb(percentile(oursRss, 50))} / ${mb(Math.max(...oursRss))}`,
        mb(Math.max(...entry.nginx.map((r) => r.peakRss))),
      ]);
      verdicts.push(
        `c=${concurrency}: ratio ${ratio.toFixed(2)}× ${ratio >= goalRatio ? "meets" : "BELOW"} the ${goalRatio}× goal`,
      );
    }
    printTable(rows);
    console.log();
    for (const line of verdicts) console.log(line);
    const peak = Math.max(...peaks);
    const spread = peak - Math.min(...peaks);
    console.log(
      `factory peak RSS ${mb(peak)} MB: ${peak < goalRssBytes ? "meets" : "ABOVE"} the < ${mb(goalRssBytes)} MB goal; ` +
        `spread across concurrencies ${mb(spread)} MB: ${spread <= flatRssBytes ? "flat" : "NOT flat"} ` +
        `(≤ ${mb(flatRssBytes)} MB)`,
    );
    const result: BenchResult = {
      bench: "serving",
      title: `${asset} (${(size / 1e6).toFixed(0)} MB, cached) downloaded from the factory vs nginx`,
      baseline: "nginx (Debian's package, sendfile on) serving the same bytes, its own process",
      rounds,
      rows: [...resultRows, ...rssRows],
      notes: [
        `downloads per client: ${concurrencies.map((c) => `${c} clients: ${downloadsPerClient(c)}`).join(", ")}; ` +
          `factory idle RSS ${mb(idleRss)} MB; RSS of nginx is its master and workers together`,
        `factory peak RSS spread across client counts ${mb(spread)} MB (goal: flat, ≤ ${mb(flatRssBytes)} MB): ${spread <= flatRssBytes ? "flat" : "not flat"}`,
      ],
    };
    await writeResult(values.json, result);
  } finally {
    await stopAll();
  }
}

const deadline = setTimeout(() => {
  log(`benchmark exceeded ${deadlineMs / 60_000} minutes; aborting`);
  void stopAll().finally(() => process.exit(1));
}, deadlineMs);
try {
  await main();
} finally {
  clearTimeout(deadline);
}
