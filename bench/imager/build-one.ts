// One cold imager build in its own process, so its peak RSS is the build's alone: reads a job file
// ({profile, inputs, outPath}) and prints one JSON line with the build time and process.resourceUsage().maxRSS.
import { readFile } from "node:fs/promises";
import { build } from "../../src/imager/builders.ts";
import type { ImagerInputs } from "../../src/imager/inputs.ts";
import type { BuildProfile } from "../../src/imager/profile.ts";

const jobFile = process.argv[2];
if (jobFile === undefined) throw new Error("usage: build-one.ts <job.json>");
const job = JSON.parse(await readFile(jobFile, "utf8")) as {
  profile: BuildProfile;
  inputs: ImagerInputs;
  outPath: string;
};
const result = await build(job.profile, job.inputs, job.outPath, {
  log: (line) => process.stderr.write(`  ${line}\n`),
});
process.stdout.write(`${JSON.stringify({ ...result, maxRssKiB: process.resourceUsage().maxRSS })}\n`);
