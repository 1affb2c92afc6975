// Imager benchmark: cold builds of metal-amd64.iso and metal-amd64.raw.zst (Talos v1.10.3: hybrid ISO,
// dual-boot disk) for a schematic with ten extensions — the four test bed ones, testbed-bulky with ~300 MB of
// incompressible data, and five small fillers (publishTestbedRelease's benchExtensions) — against
// baseline.sh, which runs only the unavoidable external tools on the same inputs, in --rounds alternating
// rounds (ours then baseline, then baseline then ours, …). Prints both times, the ratio (median, min and max
// of the rounds' ratios; goal ≤ 1.05×, issue 18) and the peak RSS of our build process (goal < 300 MB; each
// build runs in a child process reporting process.resourceUsage().maxRSS; /usr/bin/time -v gives the largest
// process of the tree, external tools included, shown for information and as the baseline's figure).
//
//   npm run bench:imager [-- --bulky-mib 300] [--rounds 3] [--json FILE] [--keep]
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cmdlineFor } from "../../src/imager/builders.ts";
import { openStore } from "../../src/registry/store.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { fixtureRegistry, localInputs } from "../../test/imager/fixture.ts";
import { compatibleExtensions, profileFor, testSchematic } from "../../test/imager/helpers.ts";
import { type BenchResult, ratioSpread, spread, writeResult } from "../results.ts";

const version = "v1.10.3";
const assets = ["metal-amd64.iso", "metal-amd64.raw.zst"] as const;
const goalRatio = 1.05;
const goalRssBytes = 300 * 1000 * 1000;
const fillers = 5;
const here = import.meta.dirname;
const node = process.execPath;

const { values } = parseArgs({
  options: {
    "bulky-mib": { type: "string", default: "300" },
    rounds: { type: "string", default: "3" },
    json: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds must be a positive integer");
const bulkyBytes = Number(values["bulky-mib"]) * 1024 * 1024;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Timed {
  seconds: number;
  stdout: string;
  /** /usr/bin/time -v: the largest resident set of any process in the tree (KiB). */
  treeMaxRssKiB: number;
}

/** Runs a command under /usr/bin/time -v, timing it by the wall clock. */
async function timed(command: string, args: string[]): Promise<Timed> {
  const started = performance.now();
  const child = spawn("/usr/bin/time", ["-v", command, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    // Progress lines go through; /usr/bin/time's report (tab-indented) is only parsed.
    for (const line of d.toString().split("\n")) if (line.startsWith("  ")) log(line);
    stderr += d.toString();
    if (stderr.length > 1024 * 1024) stderr = stderr.slice(-512 * 1024);
  });
  const code = await new Promise<number | null>((done) => child.on("close", done));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed (${code}):\n${stderr.slice(-4000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  return { seconds, stdout, treeMaxRssKiB: Number(rss?.[1] ?? 0) };
}

const scratch = await mkdtemp(join(tmpdir(), "bench-imager-"));
try {
  log(
    `publishing the test bed release ${version} with testbed-bulky (${values["bulky-mib"]} MiB) and ${fillers} fillers`,
  );
  const store = await openStore(join(scratch, "store"));
  const summary = await publishTestbedRelease({
    registry: fixtureRegistry,
    repositoryFor: (name) => store.repository(name),
    versions: [version],
    benchExtensions: { bulkyBytes, fillers },
  });
  const names = [
    ...compatibleExtensions,
    "testbed-bulky",
    ...Array.from({ length: fillers }, (_, i) => `testbed-filler-${String(i + 1).padStart(2, "0")}`),
  ];
  const fixture = { scratch, store, summary, packages: await fetchTestbedPackages(), close: async () => {} };
  const inputs = await localInputs(fixture, version, names);
  const prepared = { version, inputs };
  const schematic = testSchematic(names);
  log(`schematic: ${names.length} extensions`);

  type Ours = { asset: string; seconds: number; size: number; maxRssKiB: number; treeMaxRssKiB: number };
  const outDir = join(scratch, "ours");
  await mkdir(outDir);
  const { imagerDigest: _i, installerDigest: _d, installerBase: _b, ...buildInputs } = inputs;
  const buildOurs = async (): Promise<Ours[]> => {
    const ours: Ours[] = [];
    for (const asset of assets) {
      const profile = profileFor(prepared, schematic, asset);
      const job = join(scratch, `job-${asset}.json`);
      await writeFile(job, JSON.stringify({ profile, inputs: buildInputs, outPath: join(outDir, asset) }));
      log(`our build: ${asset}`);
      const run = await timed(node, [join(here, "build-one.ts"), job]);
      const result = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as { size: number; maxRssKiB: number };
      ours.push({
        asset,
        seconds: run.seconds,
        size: result.size,
        maxRssKiB: result.maxRssKiB,
        treeMaxRssKiB: run.treeMaxRssKiB,
      });
      await rm(join(outDir, asset));
    }
    return ours;
  };

  const baseDir = join(scratch, "baseline");
  const cmdlineFile = join(scratch, "cmdline");
  await writeFile(cmdlineFile, cmdlineFor(profileFor(prepared, schematic, "metal-amd64.iso"), "iso"));
  const buildBaseline = async () => {
    await rm(baseDir, { recursive: true, force: true });
    await mkdir(baseDir);
    log("baseline: baseline.sh");
    const run = await timed("bash", [
      resolve(here, "baseline.sh"),
      baseDir,
      inputs.imagerDir,
      cmdlineFile,
      ...inputs.extensions.map((e) => e.dir),
    ]);
    const sizes = await Promise.all(assets.map(async (a) => (await stat(join(baseDir, a))).size));
    return { ...run, sizes };
  };

  const oursRounds: Ours[][] = [];
  const baseRounds: Awaited<ReturnType<typeof buildBaseline>>[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const who of round % 2 === 0 ? ["ours", "base"] : ["base", "ours"]) {
      if (who === "ours") oursRounds.push(await buildOurs());
      else baseRounds.push(await buildBaseline());
    }
    const o = oursRounds.at(-1) ?? [];
    log(
      `round ${round + 1}: ours ${o.reduce((a, x) => a + x.seconds, 0).toFixed(1)} s, baseline ${baseRounds.at(-1)?.seconds.toFixed(1)} s`,
    );
  }

  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const oursTotals = oursRounds.map((r) => r.reduce((sum, o) => sum + o.seconds, 0));
  const baseTotals = baseRounds.map((b) => b.seconds);
  const ratios = ratioSpread(oursTotals, baseTotals);
  const ratio = ratios.median;
  const peaks = oursRounds.map((r) => Math.max(...r.map((o) => o.maxRssKiB)) * 1024);
  const peakRss = Math.max(...peaks);
  const baseline = { seconds: spread(baseTotals).median, sizes: baseRounds[0]?.sizes ?? [] };
  console.log(
    `imager benchmark: Talos ${version}, ${names.length} extensions (testbed-bulky ${values["bulky-mib"]} MiB incompressible), ${rounds} alternating rounds`,
  );
  for (const [i, asset] of assets.entries()) {
    const seconds = spread(oursRounds.map((r) => r[i]?.seconds ?? Number.NaN));
    const o = oursRounds[0]?.[i];
    console.log(
      `  ours      ${asset.padEnd(20)} ${seconds.median.toFixed(1).padStart(6)} s (${seconds.min.toFixed(1)}–${seconds.max.toFixed(1)})  ${mb(o?.size ?? 0).padStart(10)}  build process peak RSS ${mb(Math.max(...oursRounds.map((r) => r[i]?.maxRssKiB ?? 0)) * 1024)} (largest tool ${mb((o?.treeMaxRssKiB ?? 0) * 1024)})`,
    );
  }
  console.log(
    `  baseline  both assets          ${baseline.seconds.toFixed(1).padStart(6)} s  ${assets.map((a, i) => `${a} ${mb(baseline.sizes[i] as number)}`).join(", ")}`,
  );
  console.log(
    `  total: ours ${spread(oursTotals).median.toFixed(1)} s, baseline ${baseline.seconds.toFixed(1)} s, ratio ${ratio.toFixed(2)}× (${ratios.min.toFixed(2)}–${ratios.max.toFixed(2)}; goal ≤ ${goalRatio}×) ${ratio <= goalRatio ? "OK" : "MISSED"}`,
  );
  console.log(
    `  peak RSS of our build: ${mb(peakRss)} (goal < ${mb(goalRssBytes)}) ${peakRss < goalRssBytes ? "OK" : "MISSED"}`,
  );
  const result: BenchResult = {
    bench: "imager-cold",
    title: `cold build of metal-amd64.iso + metal-amd64.raw.zst, Talos ${version}, ${names.length} extensions (testbed-bulky ${values["bulky-mib"]} MiB)`,
    baseline:
      "bench/imager/baseline.sh: only the external tools (mksquashfs, xz, zstd, grub-mkrescue/xorriso, …) on the same inputs",
    rounds,
    rows: [
      {
        figure: "cold build, ISO + raw.zst",
        unit: "s",
        ours: spread(oursTotals),
        baseline: spread(baseTotals),
        ratio: ratios,
        goal: `≤ ${goalRatio}× floor`,
        held: ratio <= goalRatio,
      },
      ...assets.map((asset, i) => ({
        figure: `cold build, ${asset} alone`,
        unit: "s",
        ours: spread(oursRounds.map((r) => r[i]?.seconds ?? Number.NaN)),
        goal: "",
      })),
      {
        figure: "peak RSS of the build process (largest of the assets)",
        unit: "MB",
        ours: spread(peaks.map((p) => p / 1e6)),
        baseline: spread(baseRounds.map((b) => (b.treeMaxRssKiB * 1024) / 1e6)),
        goal: "< 300 MB",
        held: peakRss < goalRssBytes,
      },
    ],
    notes: [
      "Peak RSS: ours is process.resourceUsage().maxRSS of the node process building one asset (bench/imager/build-one.ts); " +
        "the baseline column is the largest single process of baseline.sh's tree (/usr/bin/time -v), for scale.",
    ],
  };
  await writeResult(values.json, result);
} finally {
  if (values.keep) log(`kept ${scratch}`);
  else await rm(scratch, { recursive: true, force: true });
}
