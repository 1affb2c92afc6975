// Warm-build benchmark (issue 18): the first download of a new schematic whose extensions were all seen
// before, against the cold build of the same profile, in the same run. Talos v1.10.3, the ten-extension set
// of bench/imager/run.ts (the four test bed extensions, testbed-bulky, five fillers) plus a sixth filler:
//   seed        one build of the initramfs and of each measured asset for all eleven, with the intermediate
//               cache (untimed): the ISO's GRUB part (iso/grub-parts.ts) and the disk blocks' frames
//               (disk/frames.ts) are there as after any earlier ISO or disk image;
//   one changed the ten with filler 05 replaced by filler 06;
//   cmdline     the ten, with one more kernel argument.
// Each scenario and asset is built cold (no intermediate cache) and warm (a hard-linked copy of the seeded
// cache, so no warm build sees what an earlier round put there), in ≥ 3 rounds
// whose order alternates (cold first, then warm first); printed: median, min and max of each, and the ratio
// warm/cold (median, min and max of the rounds' ratios; goals: ISO ≤ 10 %, raw.zst ≤ 20 % of cold).
// initramfs-amd64.xz is timed too: the share of a
// warm build that is the extended initramfs (its appended cpio compressed as upstream does).
//
//   npm run bench:warm [-- --bulky-mib 300] [--rounds 3] [--assets metal-amd64.iso,metal-amd64.raw.zst] [--json FILE] [--keep] [--trace]
import { link, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { build } from "../../src/imager/builders.ts";
import { IntermediateCache } from "../../src/imager/intermediate-cache.ts";
import { openStore } from "../../src/registry/store.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { fixtureRegistry, localInputs } from "../../test/imager/fixture.ts";
import { compatibleExtensions, profileFor, testSchematic } from "../../test/imager/helpers.ts";
import { printTable } from "../report.ts";
import { type BenchResult, median, type ResultRow, ratioSpread, spread, writeResult } from "../results.ts";

const version = "v1.10.3";
const allAssets = ["initramfs-amd64.xz", "metal-amd64.iso", "metal-amd64.raw.zst"];
const goals: Record<string, number> = { "metal-amd64.iso": 0.1, "metal-amd64.raw.zst": 0.2 };
const fillers = 6;

const { values } = parseArgs({
  options: {
    "bulky-mib": { type: "string", default: "300" },
    rounds: { type: "string", default: "3" },
    keep: { type: "boolean", default: false },
    /** Print each build's progress lines with the seconds since its start (where a build's time goes). */
    trace: { type: "boolean", default: false },
    json: { type: "string" },
    /** Comma-separated subset of the assets (default all three). */
    assets: { type: "string", default: allAssets.join(",") },
  },
});
const assets = (values.assets as string).split(",").filter((a) => a !== "");
for (const asset of assets)
  if (!allAssets.includes(asset)) throw new Error(`--assets: not one of ${allAssets.join(", ")}`);
const bulkyBytes = Number(values["bulky-mib"]) * 1024 * 1024;
const rounds = Math.max(3, Number(values.rounds));

const log = (line: string) => process.stderr.write(`${line}\n`);
const filler = (n: number) => `testbed-filler-${String(n).padStart(2, "0")}`;

const scratch = await mkdtemp(join(tmpdir(), "bench-warm-"));
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
  const fixture = { scratch, store, summary, packages: await fetchTestbedPackages(), close: async () => {} };
  const ten = [...compatibleExtensions, "testbed-bulky", ...[1, 2, 3, 4, 5].map(filler)];
  const all = [...ten, filler(6)];
  const changed = [...ten.filter((n) => n !== filler(5)), filler(6)];
  const prepare = async (names: string[]) => ({ version, inputs: await localInputs(fixture, version, names) });

  const cache = new IntermediateCache(join(scratch, "intermediate"));
  const outDir = join(scratch, "out");
  await mkdir(outDir);
  const totals = { hits: 0, misses: 0 };
  let copies = 0;
  /** A new cache holding exactly the seed's entries (hard links). */
  const seededCopy = async () => {
    const dir = join(scratch, `intermediate-${++copies}`);
    for (const kind of await readdir(cache.dir)) {
      if (kind === "tmp") continue;
      await mkdir(join(dir, kind), { recursive: true });
      for (const name of await readdir(join(cache.dir, kind)))
        await link(join(cache.dir, kind, name), join(dir, kind, name));
    }
    return new IntermediateCache(dir);
  };
  const timedBuild = async (
    prepared: Awaited<ReturnType<typeof prepare>>,
    schematic: ReturnType<typeof testSchematic>,
    asset: string,
    warm: boolean,
  ) => {
    const profile = profileFor(prepared, schematic, asset);
    const out = join(outDir, asset);
    const copy = warm ? await seededCopy() : undefined;
    const started = performance.now();
    const trace = values.trace
      ? { log: (line: string) => log(`  ${((performance.now() - started) / 1000).toFixed(2)} s ${line}`) }
      : {};
    await build(profile, prepared.inputs, out, {
      ...trace,
      ...(copy !== undefined ? { intermediateCache: copy } : {}),
    });
    const seconds = (performance.now() - started) / 1000;
    await rm(out, { force: true });
    if (copy !== undefined) {
      totals.hits += copy.stats.hits;
      totals.misses += copy.stats.misses;
      await rm(copy.dir, { recursive: true, force: true });
    }
    return seconds;
  };

  // A factory that served these assets before: every measured asset built once for all eleven (so the
  // ISO's GRUB part and the disk's frames are there too, as after any earlier ISO or disk image).
  log("seed: the initramfs and each measured asset of all eleven extensions, into the intermediate cache");
  const seedPrepared = await prepare(all);
  for (const asset of new Set(["initramfs-amd64.xz", ...assets]))
    await build(profileFor(seedPrepared, testSchematic(all), asset), seedPrepared.inputs, join(outDir, asset), {
      intermediateCache: cache,
    }).then(() => rm(join(outDir, asset), { force: true }));

  const scenarios = [
    { name: "one changed", prepared: await prepare(changed), schematic: testSchematic(changed) },
    {
      name: "cmdline",
      prepared: await prepare(ten),
      schematic: testSchematic(ten, { extraKernelArgs: ["bench.warm=yes"] }),
    },
  ];
  const times = new Map<string, { cold: number[]; warm: number[] }>();
  for (let round = 0; round < rounds; round++)
    for (const scenario of scenarios)
      for (const asset of assets) {
        const row = `${scenario.name}: ${asset}`;
        const entry = times.get(row) ?? { cold: [], warm: [] };
        times.set(row, entry);
        for (const warm of round % 2 === 0 ? [false, true] : [true, false]) {
          const seconds = await timedBuild(scenario.prepared, scenario.schematic, asset, warm);
          (warm ? entry.warm : entry.cold).push(seconds);
          log(`round ${round + 1} ${row} ${warm ? "warm" : "cold"} ${seconds.toFixed(1)} s`);
        }
      }

  const cell = (xs: number[]) =>
    `${median(xs).toFixed(1)} s (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
  console.log(
    `warm-build benchmark: Talos ${version}, 10 extensions (testbed-bulky ${values["bulky-mib"]} MiB), ${rounds} alternating rounds; median (min–max)`,
  );
  const rows = [["scenario: asset", "cold", "warm", "warm/cold", "goal"]];
  const resultRows: ResultRow[] = [];
  for (const [row, { cold, warm }] of times) {
    // Round i built both (order alternating): the ratio is the median of the rounds' warm/cold.
    const ratios = ratioSpread(warm, cold);
    const ratio = ratios.median;
    const asset = row.split(": ")[1] as string;
    const goal = goals[asset];
    rows.push([
      row,
      cell(cold),
      cell(warm),
      `${(ratio * 100).toFixed(0)} % (${(ratios.min * 100).toFixed(0)}–${(ratios.max * 100).toFixed(0)})`,
      goal === undefined ? "" : `≤ ${goal * 100} % ${ratio <= goal ? "OK" : "MISSED"}`,
    ]);
    resultRows.push({
      figure: `${row} (warm/cold)`,
      unit: "s",
      ours: spread(warm),
      baseline: spread(cold),
      ratio: ratios,
      goal: goal === undefined ? "" : `≤ ${goal.toFixed(2)}× cold`,
      ...(goal === undefined ? {} : { held: ratio <= goal }),
    });
  }
  printTable(rows);
  console.log(
    `intermediate cache: seed ${cache.stats.misses} entries made; warm builds ${totals.hits} hits, ${totals.misses} misses`,
  );
  const result: BenchResult = {
    bench: "imager-warm",
    title: `warm first download of a new schematic, Talos ${version}, 10 extensions (testbed-bulky ${values["bulky-mib"]} MiB)`,
    baseline: "the cold build of the same profile (no intermediate cache), same run",
    rounds,
    rows: resultRows,
    notes: [
      "ours = warm: a copy of the intermediate cache seeded by one build of all eleven extensions; " +
        "“one changed”: filler 05 replaced by filler 06; “cmdline”: one more kernel argument.",
      `intermediate cache: seed ${cache.stats.misses} entries made; warm builds ${totals.hits} hits, ${totals.misses} misses`,
    ],
  };
  await writeResult(values.json, result);
} finally {
  if (values.keep) log(`kept ${scratch}`);
  else await rm(scratch, { recursive: true, force: true });
}
