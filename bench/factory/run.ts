// Factory benchmark (issue 18): two figures of the factory process, each against a bare fastify
// (bench/factory/hello.ts, its own process) measured in the same run, rounds alternating ours, baseline.
//   start to ready: spawn `boot-assets factory` on a data directory it has already started on once (test bed
//     registry in its own process, as bench/serving does) until GET /readyz answers 200 — the Talos version
//     list loaded from the registry; polled every 5 ms. Baseline: spawn hello.ts until its /readyz answers.
//     Goal ≤ 2 s. (`npm start` = `factory --testbed` also re-publishes the test bed release in-process before
//     serving; that is the demo's cost, not the factory's, and is not measured here.)
//   schematic POST: bench/factory/post-client.ts, an open-loop client in its own process, sends 200
//     requests/s (half new schematics, half repeated ones) for --seconds; latency from each request's due
//     time to the end of its answer; p50/p99/max per round. Baseline: the same client against hello.ts's
//     fixed-JSON route. Goal: p99 < 5 ms.
//
//   node bench/factory/run.ts [--rounds 5] [--seconds 10] [--rate 200] [--json FILE]
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { freePort } from "../../test/harness/ports.ts";
import { type ServerProcess, startServerProcess } from "../../test/harness/process.ts";
import { percentile, printTable } from "../report.ts";
import { type BenchResult, formatNumber, type ResultRow, ratioSpread, spread, writeResult } from "../results.ts";
import { runForOutput, startFactory, startTestbedRegistry } from "../serving/servers.ts";
import type { PostClientResult } from "./post-client.ts";

const version = "v1.10.3";
const goalStartSeconds = 2;
const goalP99Ms = 5;
const pollMs = 5;
const startTimeoutMs = 120_000;
const projectRoot = resolve(import.meta.dirname, "..", "..");
const cli = join(projectRoot, "src", "cli", "main.ts");
const stateDir = join(projectRoot, ".cache", "bench", "factory");

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "10" },
    rate: { type: "string", default: "200" },
    json: { type: "string" },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const rate = Number(values.rate);
if (!Number.isInteger(rounds) || rounds < 3) throw new Error("--rounds must be an integer ≥ 3");
if (!(seconds > 0) || !(rate > 0)) throw new Error("--seconds and --rate must be positive");
const warmupSeconds = 1;

const log = (line: string) => process.stderr.write(`${line}\n`);

function status(url: string): Promise<number> {
  return new Promise((done) => {
    const req = request(url, { timeout: 2000 }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(0));
    req.end();
  });
}

/** Spawns `args`, polls `url` until 200, returns the seconds from spawn to that answer, and stops the process. */
async function timeToReady(args: string[], url: string, what: string): Promise<number> {
  const started = performance.now();
  const server: ServerProcess = startServerProcess(process.execPath, args);
  try {
    for (;;) {
      const exited = server.exited();
      if (exited !== undefined) throw new Error(`${what} exited (${exited}) before ready:\n${server.output()}`);
      if ((await status(url)) === 200) return (performance.now() - started) / 1000;
      if (performance.now() - started > startTimeoutMs)
        throw new Error(`${what} not ready within ${startTimeoutMs / 1000} s:\n${server.output()}`);
      await sleep(pollMs);
    }
  } finally {
    await server.kill();
  }
}

async function factoryArgs(dataDir: string, testbedArgs: string[]): Promise<{ args: string[]; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    cli,
    "factory",
    "--data-dir",
    dataDir,
    ...testbedArgs,
    "-http-port",
    `127.0.0.1:${port}`,
    "-metrics-listen-addr",
    `127.0.0.1:${await freePort()}`,
    "-external-url",
    `${url}/`,
    "-log-level",
    "warn",
  ];
  return { args, url };
}

async function helloArgs(): Promise<{ args: string[]; url: string }> {
  const host = `127.0.0.1:${await freePort()}`;
  return { args: [join(import.meta.dirname, "hello.ts"), host], url: `http://${host}` };
}

async function postRound(url: string, tag: string): Promise<PostClientResult> {
  const output = await runForOutput(process.execPath, [
    join(import.meta.dirname, "post-client.ts"),
    `${url}/schematics`,
    String(rate),
    String(seconds),
    String(warmupSeconds),
    tag,
  ]);
  return JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as PostClientResult;
}

const stoppers: (() => Promise<void>)[] = [];
const scratch = await mkdtemp(join(tmpdir(), "bench-factory-"));
stoppers.push(() => rm(scratch, { recursive: true, force: true }));
try {
  log(`publishing the test bed release ${version} under ${join(stateDir, "testbed")}`);
  const testbed = await startTestbedRegistry(join(stateDir, "testbed"), version, 1024 * 1024);
  stoppers.push(testbed.stop);
  const dataDir = join(scratch, "data");

  // The data directory's first start (untimed): keys, stores and caches are created now; later starts find them.
  const first = await factoryArgs(dataDir, testbed.factoryArgs);
  log(`first start (untimed): ${(await timeToReady(first.args, `${first.url}/readyz`, "factory")).toFixed(2)} s`);
  const hello = await helloArgs();
  await timeToReady(hello.args, `${hello.url}/readyz`, "hello"); // node's compile cache, page cache

  const startOurs: number[] = [];
  const startBase: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ["ours", "base"] : ["base", "ours"];
    for (const who of order) {
      if (who === "ours") {
        const f = await factoryArgs(dataDir, testbed.factoryArgs);
        startOurs.push(await timeToReady(f.args, `${f.url}/readyz`, "factory"));
      } else {
        const h = await helloArgs();
        startBase.push(await timeToReady(h.args, `${h.url}/readyz`, "hello"));
      }
    }
    log(`start round ${round + 1}: factory ${startOurs.at(-1)?.toFixed(2)} s, hello ${startBase.at(-1)?.toFixed(2)} s`);
  }

  const factory = await startFactory(dataDir, testbed.factoryArgs);
  stoppers.push(factory.stop);
  const helloTarget = await helloArgs();
  const helloServer = startServerProcess(process.execPath, helloTarget.args);
  const helloUrl = helloTarget.url;
  stoppers.push(() => helloServer.kill());
  for (let i = 0; i < 400 && (await status(`${helloUrl}/readyz`)) !== 200; i++) await sleep(pollMs);

  const post = { ours: [] as PostClientResult[], base: [] as PostClientResult[] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["ours", "base"] as const) : (["base", "ours"] as const);
    for (const who of order) {
      const result = await postRound(who === "ours" ? factory.url : helloUrl, `r${round}${who}`);
      post[who].push(result);
    }
    const o = post.ours.at(-1) as PostClientResult;
    const b = post.base.at(-1) as PostClientResult;
    log(
      `POST round ${round + 1}: factory p99 ${percentile(o.latenciesMs, 99).toFixed(2)} ms (${o.errors} errors, ${o.late} late), ` +
        `hello p99 ${percentile(b.latenciesMs, 99).toFixed(2)} ms (${b.errors} errors, ${b.late} late)`,
    );
  }

  const per = (results: PostClientResult[], p: number) => results.map((r) => percentile(r.latenciesMs, p));
  const maxOf = (results: PostClientResult[]) => results.map((r) => Math.max(...r.latenciesMs));
  const startRatio = ratioSpread(startOurs, startBase);
  const p99Ours = per(post.ours, 99);
  const rows: ResultRow[] = [
    {
      figure: "start to ready (warm data dir)",
      unit: "s",
      ours: spread(startOurs),
      baseline: spread(startBase),
      ratio: startRatio,
      goal: `≤ ${goalStartSeconds} s`,
      held: spread(startOurs).median <= goalStartSeconds,
    },
    {
      figure: `POST /schematics p99 at ${rate}/s`,
      unit: "ms",
      ours: spread(p99Ours),
      baseline: spread(per(post.base, 99)),
      ratio: ratioSpread(p99Ours, per(post.base, 99)),
      goal: `< ${goalP99Ms} ms`,
      held: spread(p99Ours).median < goalP99Ms,
    },
    {
      figure: `POST /schematics p50 at ${rate}/s`,
      unit: "ms",
      ours: spread(per(post.ours, 50)),
      baseline: spread(per(post.base, 50)),
      ratio: ratioSpread(per(post.ours, 50), per(post.base, 50)),
      goal: "",
    },
    {
      figure: `POST /schematics max at ${rate}/s`,
      unit: "ms",
      ours: spread(maxOf(post.ours)),
      baseline: spread(maxOf(post.base)),
      ratio: ratioSpread(maxOf(post.ours), maxOf(post.base)),
      goal: "",
    },
  ];
  const sum = (results: PostClientResult[], key: "sent" | "errors" | "late") => results.reduce((a, r) => a + r[key], 0);
  const firstError = [...post.ours, ...post.base].find((r) => r.firstError)?.firstError;
  const notes = [
    `POST: ${seconds} s per round at ${rate} requests/s after ${warmupSeconds} s of uncounted warm-up; ` +
      `factory ${sum(post.ours, "sent")} requests, ${sum(post.ours, "errors")} errors, ${sum(post.ours, "late")} sent > 2 ms late; ` +
      `hello ${sum(post.base, "sent")} requests, ${sum(post.base, "errors")} errors, ${sum(post.base, "late")} late` +
      (firstError ? ` (first error: ${firstError})` : ""),
    "start: the factory runs against the test bed registry (its own process, Talos v1.10.3); " +
      "`npm start` (`factory --testbed`) re-publishes the test bed in-process first and is not what is timed here.",
  ];
  const result: BenchResult = {
    bench: "factory",
    title: "factory start to ready, schematic POST latency",
    baseline: "bare fastify (bench/factory/hello.ts) in its own process: /readyz 'ok', POST /schematics a fixed JSON",
    rounds,
    rows,
    notes,
  };
  const table = [["figure", "factory", "hello", "ratio", "goal", "held"]];
  for (const row of rows)
    table.push([
      row.figure,
      `${formatNumber(row.ours.median)} ${row.unit} (${formatNumber(row.ours.min)}–${formatNumber(row.ours.max)})`,
      `${formatNumber(row.baseline?.median ?? Number.NaN)} ${row.unit}`,
      `${formatNumber(row.ratio?.median ?? Number.NaN)}×`,
      row.goal,
      row.held === undefined ? "" : row.held ? "yes" : "NO",
    ]);
  console.log(`\nfactory benchmark, ${rounds} alternating rounds; median (min–max)\n`);
  printTable(table);
  for (const note of notes) console.log(`\n${note}`);
  await writeResult(values.json, result);
} finally {
  for (const stop of stoppers.splice(0).reverse()) await stop().catch((err: Error) => log(err.message));
}
