// The benchmark report's writer (bench/results.ts): given rows, the markdown says each figure beside its
// baseline with min–max, the ratio, the goal and whether it held, names a failed bench with its error, and
// lists the goals together. No timing is measured here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Report, ratioSpread, renderReport, spread } from "../../bench/results.ts";

const report: Report = {
  date: new Date("2026-12-06T05:00:00.000Z"),
  mode: "quick",
  command: "npm run bench -- --quick",
  totalSeconds: 125,
  machine: {
    cores: 2,
    cpuModel: "Test CPU @ 2.0GHz",
    memoryBytes: 24 * 2 ** 30,
    loadAverage: [1, 2, 3],
    tools: { node: "v24.0.0", nginx: "nginx version: nginx/1.22.1" },
  },
  runs: [
    {
      bench: "registry",
      command: "node bench/registry/run.ts --rounds 3",
      seconds: 65,
      loadBefore: 0.125,
      stealShare: 0.0123,
      result: {
        bench: "registry",
        title: "embedded vs distribution",
        baseline: "CNCF distribution",
        rounds: 3,
        rows: [
          {
            figure: "blob GET throughput",
            unit: "MiB/s",
            ours: spread([1000, 1100, 900]),
            baseline: spread([950, 1000, 1050]),
            ratio: ratioSpread([1000, 1100, 900], [950, 1000, 1050]),
            goal: "≥ 1.0× distribution",
            held: true,
          },
          { figure: "manifest p99 | one run", unit: "ms", ours: spread([0.5]), goal: "" },
        ],
        notes: ["a note"],
      },
    },
    { bench: "serving", command: "node bench/serving/run.ts", seconds: 3, failure: "exit code 1\nnginx missing" },
  ],
};

describe("the benchmark report", () => {
  const markdown = renderReport(report);

  it("states the mode, date, duration and machine", () => {
    assert.match(markdown, /on 2026-12-06T05:00:00Z in \*\*quick\*\* mode, in 2 min 5 s/);
    assert.match(markdown, /- CPU: 2 cores, Test CPU @ 2\.0GHz/);
    assert.match(markdown, /- memory: 24\.0 GiB/);
    assert.match(markdown, / {2}- nginx: nginx version: nginx\/1\.22\.1/);
  });

  it("puts each figure beside its baseline, with min–max and the median of the per-round ratios", () => {
    // ours median 1000 (900–1100); distribution 1000 (950–1050); ratios 1000/950, 1100/1000, 900/1050.
    assert.ok(
      markdown.includes(
        "| blob GET throughput | 1000 MiB/s (900–1100) | 1000 MiB/s (950–1050) | 1.05× (0.857–1.10) | ≥ 1.0× distribution | yes |",
      ),
      markdown,
    );
    assert.ok(markdown.includes("| manifest p99 \\| one run | 0.500 ms | — | — | — | — |"), markdown);
  });

  it("says how quiet the machine was around each bench", () => {
    assert.ok(
      markdown.includes(
        "`node bench/registry/run.ts --rounds 3` — 1 min 5 s. Load average before: 0.13; CPU time stolen by the host during it: 1.2 %.",
      ),
      markdown,
    );
  });

  it("lists the goals together, a failed bench as not held, and the failure's output", () => {
    assert.ok(
      markdown.includes(
        "| registry | blob GET throughput | 1000 MiB/s (900–1100) | 1.05× (0.857–1.10) | ≥ 1.0× distribution | yes |",
      ),
    );
    assert.ok(markdown.includes("| serving | (failed, see below) | — | — | — | **no** |"));
    assert.match(
      markdown,
      /## serving\n\n`node bench\/serving\/run\.ts` — 3 s\.\n\n\*\*Failed:\*\*\n\n```\nexit code 1\nnginx missing\n```/,
    );
  });

  it("computes the median of an even sample as the mean of the middle two", () => {
    assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  });
});
