// The project's test command (`npm test`): static checks, then the test tiers, each timed so CI time stays
// visible. Tiers: `unit` (everything but boots: real registries, real clients, fast) and `boot` (QEMU boots of
// what the project builds; slow, run by CI too). `npm test -- unit` or `-- static boot` runs a subset.
// `exhaustive` (*.exhaustive.test.ts: what a CI-tier test proves for one of each kind, repeated for every
// other variant) runs only when named: `npm test -- exhaustive` (`npm run test:exhaustive`).
// Ends with one "N passed, N failed" line summing the tiers.

import { spawn } from "node:child_process";
import { globSync } from "node:fs";

interface Tier {
  name: string;
  commands: string[][];
  /** Runs when no tier is named (default true). */
  byDefault?: boolean;
}

const allTests = globSync("test/**/*.test.ts").sort();
const bootTests = allTests.filter((file) => file.endsWith(".boot.test.ts"));
const exhaustiveTests = allTests.filter((file) => file.endsWith(".exhaustive.test.ts"));
const unitTests = allTests.filter((file) => !bootTests.includes(file) && !exhaustiveTests.includes(file));

const tiers: Tier[] = [
  {
    name: "static",
    commands: [
      ["tsc", "--noEmit"],
      ["biome", "check", "--error-on-warnings", "."],
    ],
  },
  { name: "unit", commands: [[process.execPath, "--test", "--test-concurrency=2", ...unitTests]] },
  // A TCG guest is one emulated CPU (one host thread): two boot files at a time use both cores, and each boot's
  // timeout leaves room for sharing them.
  { name: "boot", commands: [[process.execPath, "--test", "--test-concurrency=2", ...bootTests]] },
  {
    name: "exhaustive",
    commands: [[process.execPath, "--test", "--test-concurrency=2", ...exhaustiveTests]],
    byDefault: false,
  },
];

interface Outcome {
  ok: boolean;
  passed: number;
  failed: number;
}

/** Runs one command with its output passed through, counting node:test's summary lines. */
function run(argv: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const [command, ...args] = argv as [string, ...string[]];
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    let passed = 0;
    let failed = 0;
    let pending = "";
    child.stdout.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk);
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const match = /^ℹ (pass|fail) (\d+)$/.exec(line.trim());
        if (match?.[1] === "pass") passed += Number(match[2]);
        if (match?.[1] === "fail") failed += Number(match[2]);
      }
    });
    child.on("close", (code) => resolve({ ok: code === 0, passed, failed }));
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !tiers.some((tier) => tier.name === name));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown test tier(s): ${unknown.join(", ")}; tiers are ${tiers.map((t) => t.name).join(", ")}\n`,
  );
  process.exit(2);
}

const timings: string[] = [];
let passed = 0;
let failed = 0;
let ok = true;
for (const tier of tiers) {
  if (wanted.length > 0 ? !wanted.includes(tier.name) : tier.byDefault === false) continue;
  const started = performance.now();
  for (const command of tier.commands) {
    const outcome = await run(command);
    passed += outcome.passed;
    failed += outcome.failed;
    if (!outcome.ok) ok = false;
    if (!ok) break;
  }
  timings.push(`${tier.name} ${((performance.now() - started) / 1000).toFixed(1)} s${ok ? "" : " (failed)"}`);
  if (!ok) break;
}
process.stdout.write(`\ntest tiers: ${timings.join(", ")}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exitCode = ok && failed === 0 ? 0 : 1;
