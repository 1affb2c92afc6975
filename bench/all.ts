// `npm run bench`: every benchmark, one after the other, each in its own process (one that fails is
// reported in the results, the others still run), then bench/results.md: each figure beside its baseline
// from the same run, the goals and whether they hold, the machine and the date. Each bench writes its
// figures with --json (bench/results.ts); this script only orders them and writes the report.
//
//   npm run bench [-- --quick] [--only registry,factory] [--out bench/results.md]
//
// Default: the benches' default rounds on smaller inputs than their stand-alone defaults (testbed-bulky of
// 64 MiB instead of 300) so the whole run fits in about 25 minutes on a 2-core machine. --quick: the fewest
// rounds and the smallest inputs, a smoke run of a few minutes whose figures are marked as such.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { runTool } from "../src/tools/run.ts";
import { writeFileAtomic } from "../src/util/fs.ts";
import { type BenchResult, type BenchRun, type Machine, renderReport } from "./results.ts";

const projectRoot = resolve(import.meta.dirname, "..");

interface Bench {
  name: string;
  script: string;
  full: string[];
  quick: string[];
}

const benches: Bench[] = [
  { name: "registry", script: "bench/registry/run.ts", full: ["--rounds", "7"], quick: ["--rounds", "3"] },
  {
    name: "imager-cold",
    script: "bench/imager/run.ts",
    full: ["--bulky-mib", "64", "--rounds", "3"],
    quick: ["--bulky-mib", "8", "--rounds", "1"],
  },
  {
    name: "imager-warm",
    script: "bench/imager/warm.ts",
    full: ["--bulky-mib", "64", "--rounds", "3", "--assets", "metal-amd64.iso,metal-amd64.raw.zst"],
    quick: ["--bulky-mib", "8", "--rounds", "3", "--assets", "metal-amd64.iso"],
  },
  {
    name: "serving",
    script: "bench/serving/run.ts",
    full: ["--rounds", "3", "--clients", "1,8,32"],
    quick: ["--rounds", "3", "--clients", "1,8"],
  },
  {
    name: "factory",
    script: "bench/factory/run.ts",
    full: ["--rounds", "5", "--seconds", "10"],
    quick: ["--rounds", "3", "--seconds", "3"],
  },
];

/** A bench running past this is stopped and reported as failed. */
const benchTimeoutMs = 45 * 60 * 1000;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string", default: join(projectRoot, "bench", "results.md") },
  },
});
const only = values.only?.split(",").filter((n) => n !== "");
for (const name of only ?? [])
  if (!benches.some((b) => b.name === name))
    throw new Error(`--only: ${name} is not one of ${benches.map((b) => b.name).join(", ")}`);
const selected = benches.filter((b) => only === undefined || only.includes(b.name));

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The first line a tool prints about its version (stdout, else stderr), or why there is none. */
async function toolVersion(command: string, debianPackage: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await runTool({ command, debianPackage }, args, {
      timeoutMs: 10_000,
      okExitCodes: [0, 1],
    });
    const text = stdout.toString("utf8").trim() || stderr.trim();
    return text.split("\n")[0]?.trim() || "(no version output)";
  } catch (err) {
    return `not available (${(err as Error).message.split("\n")[0]})`;
  }
}

async function machine(): Promise<Machine> {
  const tools: Record<string, string> = { node: process.version };
  const probes: [string, string, string, string[]][] = [
    ["zstd", "zstd", "zstd", ["--version"]],
    ["xz", "xz", "xz-utils", ["--version"]],
    ["xorriso", "xorriso", "xorriso", ["-version"]],
    ["grub", "grub-mkrescue", "grub-common", ["--version"]],
    ["mksquashfs", "mksquashfs", "squashfs-tools", ["-version"]],
    ["docker-registry", "docker-registry", "docker-registry", ["--version"]],
    ["nginx", "nginx", "nginx", ["-v"]],
    ["curl", "curl", "curl", ["--version"]],
  ];
  for (const [name, command, debianPackage, args] of probes)
    tools[name] = await toolVersion(command, debianPackage, args);
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    memoryBytes: totalmem(),
    loadAverage: loadavg(),
    tools,
  };
}

/** The machine's CPU ticks so far: all of them, and those the hypervisor gave to other guests (steal). */
async function cpuTicks(): Promise<{ total: number; steal: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  // proc(5): "cpu user nice system idle iowait irq softirq steal guest guest_nice"; guest time is within user.
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

/**
 * Runs one bench in its own process, its output passed through; its result, or why there is none. First the
 * page cache's dirty data is written out (`sync`), so one bench's writeback does not land in the next one's
 * figures; the load average before and the host's steal share during the run go into the report, as a measure
 * of how quiet the machine was.
 */
async function runBench(bench: Bench, args: string[], jsonFile: string): Promise<BenchRun> {
  const command = `node ${bench.script} ${args.join(" ")}`.trim();
  log(`\n=== ${bench.name}: ${command}`);
  await runTool({ command: "sync", debianPackage: "coreutils" }, [], { timeoutMs: 300_000 });
  const loadBefore = loadavg()[0] ?? 0;
  const ticksBefore = await cpuTicks();
  const run = await runBenchProcess(bench, command, args, jsonFile);
  const ticksAfter = await cpuTicks();
  const total = ticksAfter.total - ticksBefore.total;
  return { ...run, loadBefore, stealShare: total > 0 ? (ticksAfter.steal - ticksBefore.steal) / total : 0 };
}

function runBenchProcess(bench: Bench, command: string, args: string[], jsonFile: string): Promise<BenchRun> {
  const started = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(projectRoot, bench.script), ...args, "--json", jsonFile], {
      cwd: projectRoot,
      stdio: ["ignore", "inherit", "pipe"],
    });
    let tail = "";
    child.stderr.on("data", (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString("utf8")).slice(-4000);
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), benchTimeoutMs);
    const finish = async (status: string | undefined) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      const text = await readFile(jsonFile, "utf8").catch(() => undefined);
      if (status === undefined && text !== undefined)
        done({ bench: bench.name, command, seconds, result: JSON.parse(text) as BenchResult });
      else
        done({
          bench: bench.name,
          command,
          seconds,
          failure: `${status ?? "exit code 0 but no result written"}\n${tail.split("\n").slice(-30).join("\n")}`,
        });
    };
    child.on("error", (err) => void finish(`could not start: ${err.message}`));
    child.on(
      "close",
      (code, signal) => void finish(code === 0 ? undefined : signal ? `killed by ${signal}` : `exit code ${code}`),
    );
  });
}

const started = performance.now();
const date = new Date();
const host = await machine();
const scratch = await mkdtemp(join(tmpdir(), "bench-all-"));
const runs: BenchRun[] = [];
try {
  for (const bench of selected) {
    const args = values.quick ? bench.quick : bench.full;
    const run = await runBench(bench, args, join(scratch, `${bench.name}.json`));
    log(`=== ${bench.name}: ${run.failure ? "FAILED" : "done"} in ${run.seconds.toFixed(0)} s`);
    runs.push(run);
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}
const out = resolve(values.out);
const markdown = renderReport({
  date,
  mode: values.quick ? "quick" : "full",
  command: `npm run bench${values.quick ? " -- --quick" : ""}${only ? ` (only ${only.join(",")})` : ""}`,
  totalSeconds: (performance.now() - started) / 1000,
  machine: host,
  runs,
});
await writeFileAtomic(dirname(out), out, markdown);
const failed = runs.filter((r) => r.failure !== undefined).map((r) => r.bench);
console.log(`\nwrote ${relative(process.cwd(), out) || out}${failed.length ? ` (failed: ${failed.join(", ")})` : ""}`);
process.exitCode = failed.length > 0 ? 1 : 0;
