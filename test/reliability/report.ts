// Merges every test-artifacts/reliability/*.json (rows written by the reliability tests, harness.ts
// ResultRows; the fuzzing and hostile-input files write the same shape) into test/reliability/results.md:
// one table of what was tried and what failed, with the date, the mode (quick: the CI tier; full:
// `npm run test:reliability`) and the machine it ran on.
// Usage: node test/reliability/report.ts [--mode quick|full]   (default: full if RELIABILITY_FULL=1)

import { readdir, readFile, writeFile } from "node:fs/promises";
import { arch, cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { projectRoot, type ResultRow } from "./harness.ts";

const areas: readonly ResultRow["area"][] = ["load", "faults", "input"];

function isRow(value: unknown): value is ResultRow {
  if (typeof value !== "object" || value === null) return false;
  const row = value as Record<string, unknown>;
  return (
    areas.includes(row.area as ResultRow["area"]) &&
    typeof row.check === "string" &&
    typeof row.tried === "number" &&
    typeof row.failures === "number" &&
    typeof row.detail === "string"
  );
}

/** A table cell: no pipe or line break may end the cell early. */
function cell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

const { values } = parseArgs({ options: { mode: { type: "string" } } });
const mode = values.mode ?? (process.env.RELIABILITY_FULL === "1" ? "full" : "quick");
if (mode !== "quick" && mode !== "full") throw new Error(`--mode is quick or full, not ${mode}`);

const dir = join(projectRoot, "test-artifacts", "reliability");
const files = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith(".json")).sort();
const rows: Array<ResultRow & { file: string }> = [];
const problems: string[] = [];
for (const file of files) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, file), "utf8"));
  } catch (err) {
    problems.push(`${file}: not JSON (${(err as Error).message})`);
    continue;
  }
  if (!Array.isArray(parsed)) {
    problems.push(`${file}: not an array of rows`);
    continue;
  }
  for (const [i, row] of parsed.entries()) {
    if (isRow(row)) rows.push({ ...row, file: file.replace(/\.json$/, "") });
    else problems.push(`${file}: row ${i} lacks area/check/tried/failures/detail`);
  }
}
rows.sort((a, b) => areas.indexOf(a.area) - areas.indexOf(b.area) || a.file.localeCompare(b.file));

const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
const machine = `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()} ${arch()}, Node ${process.version}`;
const failing = rows.filter((row) => row.failures > 0).length;
const lines = [
  "# Reliability suite results",
  "",
  "Written by `test/reliability/report.ts` from the rows the tests in `test/reliability/` record",
  "(`npm run test:reliability` runs them all in full mode, then this report; the CI tier runs the quick mode).",
  "",
  `- Date: ${new Date().toISOString()}`,
  `- Mode: ${mode}`,
  `- Machine: ${machine}`,
  // The machine is shared: the 15-minute figure covers most of a full run (other work on it shows here).
  `- Load average when written (1, 5, 15 min): ${loadavg()
    .map((n) => n.toFixed(1))
    .join(", ")}`,
  `- Rows: ${rows.length}, with failures: ${failing}`,
  "",
  "| Area | Check | Tried / held | Failures | Detail | File |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map(
    (row) =>
      `| ${row.area} | ${cell(row.check)} | ${row.tried} / ${row.tried - row.failures} | ${row.failures} | ${cell(row.detail)} | ${row.file} |`,
  ),
  "",
];
if (problems.length > 0) lines.push("Unreadable result files:", "", ...problems.map((p) => `- ${cell(p)}`), "");
await writeFile(join(projectRoot, "test", "reliability", "results.md"), lines.join("\n"));
process.stdout.write(`results.md: ${rows.length} rows from ${files.length} files, ${failing} with failures\n`);
if (problems.length > 0) process.stderr.write(`${problems.join("\n")}\n`);
