// The benchmarks' machine-readable results and the report `npm run bench` writes from them (bench/all.ts).
// Every bench given `--json FILE` writes one BenchResult there; a figure is the median of its rounds with the
// min and max, beside the baseline measured in the same run, and the ratio is the median (min, max) of the
// per-round ratios (rounds alternate ours, baseline, ours, baseline…).
import { dirname } from "node:path";
import { writeFileAtomic } from "../src/util/fs.ts";

/** Median, min and max of a sample. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many values. */
  n: number;
}

export interface ResultRow {
  /** What is measured, e.g. "cold build, ISO + raw.zst". */
  figure: string;
  /** Unit of `ours` and `baseline`: "s", "ms", "MiB/s", "MB". */
  unit: string;
  ours: Spread;
  baseline?: Spread;
  /** ours/baseline per round: median (min, max). */
  ratio?: Spread;
  /** The goal as text, e.g. "≤ 1.05× floor"; empty for an informational figure. */
  goal: string;
  /** Whether the goal holds (by the median); undefined when the figure has no goal. */
  held?: boolean;
}

export interface BenchResult {
  /** Short name: registry, imager-cold, … */
  bench: string;
  title: string;
  /** What "baseline" is in this bench's table. */
  baseline: string;
  rounds: number;
  rows: ResultRow[];
  notes: string[];
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function spread(values: number[]): Spread {
  return {
    median: median(values),
    min: values.length ? Math.min(...values) : Number.NaN,
    max: values.length ? Math.max(...values) : Number.NaN,
    n: values.length,
  };
}

/** Per-round ratios ours[i]/baseline[i] as a spread (rounds paired by index). */
export function ratioSpread(ours: number[], baseline: number[]): Spread {
  return spread(ours.map((o, i) => o / (baseline[i] ?? Number.NaN)));
}

/** Writes `result` to `file` (temp file then rename) when the bench was given --json. */
export async function writeResult(file: string | undefined, result: BenchResult): Promise<void> {
  if (file === undefined) return;
  await writeFileAtomic(dirname(file), file, `${JSON.stringify(result, null, 2)}\n`);
}

// ---- the report ----

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  loadAverage: number[];
  /** Tool name → its version line (or "not installed"). */
  tools: Record<string, string>;
}

/** One bench as all.ts ran it: its result, or why there is none. */
export interface BenchRun {
  bench: string;
  command: string;
  seconds: number;
  result?: BenchResult;
  /** Set when the bench failed: exit status and the tail of its stderr. */
  failure?: string;
  /** The 1-minute load average just before the bench started (after `sync`). */
  loadBefore?: number;
  /** The share of CPU time the hypervisor gave to other guests while the bench ran (/proc/stat steal). */
  stealShare?: number;
}

export interface Report {
  date: Date;
  mode: "quick" | "full";
  command: string;
  totalSeconds: number;
  machine: Machine;
  runs: BenchRun[];
}

/** A number with about three significant digits. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function cell(s: Spread | undefined, unit: string): string {
  if (s === undefined) return "—";
  const u = unit === "×" ? "×" : ` ${unit}`;
  if (s.n <= 1 || s.min === s.max) return `${formatNumber(s.median)}${u}`;
  return `${formatNumber(s.median)}${u} (${formatNumber(s.min)}–${formatNumber(s.max)})`;
}

const mdEscape = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");

function heldText(held: boolean | undefined): string {
  if (held === undefined) return "—";
  return held ? "yes" : "**no**";
}

function duration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return m > 0 ? `${m} min ${s} s` : `${s} s`;
}

/** The whole bench/results.md. */
export function renderReport(report: Report): string {
  const lines: string[] = [];
  const { machine } = report;
  lines.push("# Benchmark results", "");
  lines.push(
    `Written by \`${report.command}\` on ${report.date.toISOString().replace(/\.\d+Z$/, "Z")} ` +
      `in **${report.mode}** mode, in ${duration(report.totalSeconds)}. ` +
      (report.mode === "quick"
        ? "Quick mode: smaller inputs and shorter rounds, a smoke run — its figures are not the goals' evidence."
        : "Full mode: the default rounds and inputs of every bench."),
    "",
    "Each figure is the median of its rounds with (min–max); the baseline is measured in the same run, rounds " +
      "alternating ours, baseline, ours, baseline…; a ratio is the median (min–max) of the per-round ratios. " +
      "“Held” judges the median against the goal.",
    "",
  );
  lines.push("## Machine", "");
  lines.push(`- CPU: ${machine.cores} cores, ${machine.cpuModel}`);
  lines.push(`- memory: ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB`);
  lines.push(
    `- load average at the start: ${machine.loadAverage.map((l) => l.toFixed(2)).join(", ")} (the machine may be shared)`,
  );
  lines.push("- tools:");
  for (const [tool, version] of Object.entries(machine.tools)) lines.push(`  - ${tool}: ${mdEscape(version)}`);
  lines.push("");

  lines.push("## Goals", "", "| bench | figure | ours | ours/baseline | goal | held |", "|---|---|---:|---:|---|---|");
  for (const run of report.runs) {
    if (run.result === undefined) {
      lines.push(`| ${run.bench} | (failed, see below) | — | — | — | **no** |`);
      continue;
    }
    for (const row of run.result.rows) {
      if (row.goal === "") continue;
      lines.push(
        `| ${run.bench} | ${mdEscape(row.figure)} | ${cell(row.ours, row.unit)} | ${cell(row.ratio, "×")} | ` +
          `${mdEscape(row.goal)} | ${heldText(row.held)} |`,
      );
    }
  }
  lines.push("");

  for (const run of report.runs) {
    lines.push(`## ${run.bench}${run.result ? `: ${mdEscape(run.result.title)}` : ""}`, "");
    const quiet =
      run.loadBefore === undefined
        ? ""
        : ` Load average before: ${run.loadBefore.toFixed(2)}; CPU time stolen by the host during it: ${((run.stealShare ?? 0) * 100).toFixed(1)} %.`;
    lines.push(`\`${run.command}\` — ${duration(run.seconds)}.${quiet}`, "");
    if (run.failure !== undefined || run.result === undefined) {
      lines.push("**Failed:**", "", "```", (run.failure ?? "no result written").trim(), "```", "");
      continue;
    }
    const r = run.result;
    lines.push(`Baseline: ${mdEscape(r.baseline)}. Rounds: ${r.rounds}.`, "");
    lines.push("| figure | ours | baseline | ours/baseline | goal | held |", "|---|---:|---:|---:|---|---|");
    for (const row of r.rows) {
      lines.push(
        `| ${mdEscape(row.figure)} | ${cell(row.ours, row.unit)} | ${cell(row.baseline, row.unit)} | ` +
          `${cell(row.ratio, "×")} | ${mdEscape(row.goal) || "—"} | ${heldText(row.held)} |`,
      );
    }
    lines.push("");
    for (const note of r.notes) lines.push(`- ${note}`);
    if (r.notes.length > 0) lines.push("");
  }
  return `${lines.join("\n").trimEnd()}\n`;
}
