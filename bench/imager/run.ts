// Imager benchmark: cold builds of metal-amd64.iso and metal-amd64.raw.zst (Talos v1.10.3: hybrid ISO,
// dual-boot disk) for a schematic with ten extensions — the four test bed ones, testbed-bulky with ~300 MB of
// incompressible data, and five small fillers (publishTestbedRelease's benchExtensions) — against
// baseline.sh, which runs only the unavoidable external tools on the same inputs. Prints both times, the
// ratio (goal ≤ 1.15×) and the peak RSS of our build process (goal < 300 MB; each build runs in a child
// process reporting process.resourceUsage().maxRSS; /usr/bin/time -v gives the largest process of the tree,
// external tools included, shown for information).
//
//   npm run bench:imager [-- --bulky-mib 300] [--keep]
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

const version = "v1.10.3";
const assets = ["metal-amd64.iso", "metal-amd64.raw.zst"] as const;
const goalRatio = 1.15;
const goalRssBytes = 300 * 1000 * 1000;
const fillers = 5;
const here = import.meta.dirname;
const node = process.execPath;

const { values } = parseArgs({
  options: { "bulky-mib": { type: "string", default: "300" }, keep: { type: "boolean", default: false } },
});
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

  const ours: { asset: string; seconds: number; size: number; maxRssKiB: number; treeMaxRssKiB: number }[] = [];
  const outDir = join(scratch, "ours");
  await mkdir(outDir);
  for (const asset of assets) {
    const profile = profileFor(prepared, schematic, asset);
    const job = join(scratch, `job-${asset}.json`);
    const { imagerDigest: _i, installerDigest: _d, installerBase: _b, ...buildInputs } = inputs;
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

  const baseDir = join(scratch, "baseline");
  await mkdir(baseDir);
  const cmdlineFile = join(scratch, "cmdline");
  await writeFile(cmdlineFile, cmdlineFor(profileFor(prepared, schematic, "metal-amd64.iso"), "iso"));
  log("baseline: baseline.sh");
  const baseline = await timed("bash", [
    resolve(here, "baseline.sh"),
    baseDir,
    inputs.imagerDir,
    cmdlineFile,
    ...inputs.extensions.map((e) => e.dir),
  ]);
  const baselineSizes = await Promise.all(assets.map(async (a) => (await stat(join(baseDir, a))).size));

  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const oursTotal = ours.reduce((sum, o) => sum + o.seconds, 0);
  const ratio = oursTotal / baseline.seconds;
  const peakRss = Math.max(...ours.map((o) => o.maxRssKiB)) * 1024;
  console.log(
    `imager benchmark: Talos ${version}, ${names.length} extensions (testbed-bulky ${values["bulky-mib"]} MiB incompressible)`,
  );
  for (const o of ours)
    console.log(
      `  ours      ${o.asset.padEnd(20)} ${o.seconds.toFixed(1).padStart(6)} s  ${mb(o.size).padStart(10)}  build process peak RSS ${mb(o.maxRssKiB * 1024)} (largest tool ${mb(o.treeMaxRssKiB * 1024)})`,
    );
  console.log(
    `  baseline  both assets          ${baseline.seconds.toFixed(1).padStart(6)} s  ${assets.map((a, i) => `${a} ${mb(baselineSizes[i] as number)}`).join(", ")}`,
  );
  console.log(
    `  total: ours ${oursTotal.toFixed(1)} s, baseline ${baseline.seconds.toFixed(1)} s, ratio ${ratio.toFixed(2)}× (goal ≤ ${goalRatio}×) ${ratio <= goalRatio ? "OK" : "MISSED"}`,
  );
  console.log(
    `  peak RSS of our build: ${mb(peakRss)} (goal < ${mb(goalRssBytes)}) ${peakRss < goalRssBytes ? "OK" : "MISSED"}`,
  );
} finally {
  if (values.keep) log(`kept ${scratch}`);
  else await rm(scratch, { recursive: true, force: true });
}
