// `npm run test:reliability`: every test in test/reliability/ in full mode (RELIABILITY_FULL=1: longer loads,
// higher rates, the slow faults), one file at a time so loads do not share the two cores, then report.ts
// merges their rows into test/reliability/results.md. Earlier rows are cleared first.

import { spawnSync } from "node:child_process";
import { globSync, rmSync } from "node:fs";

rmSync("test-artifacts/reliability", { recursive: true, force: true });
const env = { ...process.env, RELIABILITY_FULL: "1" };
const tests = globSync("test/reliability/*.test.ts").sort();
const run = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...tests], { stdio: "inherit", env });
const report = spawnSync(process.execPath, ["test/reliability/report.ts", "--mode", "full"], { stdio: "inherit", env });
process.exit(run.status !== 0 ? (run.status ?? 1) : (report.status ?? 1));
