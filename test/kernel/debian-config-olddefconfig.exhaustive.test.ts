// The check's prediction for every setting of a real merged config, compared with the kernel's own
// `make olddefconfig` (Debian 12's linux-source-6.1, built here): each value the check calls dropped is one
// olddefconfig changes, and each value it keeps, olddefconfig keeps. Toolchain-decided symbols ($(shell,…))
// are left out: they depend on this machine's gcc/ld/pahole, not on the config.

import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfigFile } from "../../src/kernel/config-file.ts";
import { checkKernelConfig } from "../../src/toolkit/kernel-config.ts";
import { runTool } from "../../src/tools/run.ts";
import { type KernelFixture, kernelFixture, makeTool } from "./fixture.ts";

const projectRoot = join(import.meta.dirname, "..", "..");

let dir: string;
let fixture: KernelFixture;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kconfig-olddefconfig-test-"));
  fixture = await kernelFixture((line) => process.stderr.write(`fixture: ${line}\n`));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("every setting of Debian's config + the project's fragments: the check agrees with make olddefconfig", async () => {
  await writeFile(join(dir, "base.config"), await readFile(fixture.config, "utf8"));
  const fragments = ["custom.config", "nvidia.config"].map((n) => join(projectRoot, "kernel", n));
  const report = await checkKernelConfig({ base: join(dir, "base.config"), fragments, kconfigSrc: fixture.tree });
  const build = join(dir, "build");
  await mkdir(build);
  await writeFile(join(build, ".config"), report.merge.text);
  await runTool(makeTool, ["-s", "-C", fixture.tree, `O=${build}`, "ARCH=x86", "olddefconfig"], {
    timeoutMs: 10 * 60 * 1000,
  });
  const out = parseConfigFile("olddefconfig", await readFile(join(build, ".config"), "utf8"));
  const written = new Map(out.settings.map((s) => [s.symbol, s.unset ? "n" : s.value]));
  const unchecked = new Set(report.kconfig?.unchecked.map((s) => s.symbol));
  const predicted = new Set([...report.droppedRequested, ...report.droppedBase].map((d) => d.setting.symbol));
  const disagreements: string[] = [];
  let changed = 0;
  for (const [symbol, setting] of report.merge.effective) {
    if (unchecked.has(symbol)) continue;
    const wanted = setting.unset ? "n" : setting.value;
    const got = written.get(symbol) ?? (/^[ynm]$/.test(wanted) ? "n" : "(not written)");
    if (got !== wanted) changed++;
    if ((got !== wanted) !== predicted.has(symbol))
      disagreements.push(
        `${setting.text}: olddefconfig writes ${got}, the check ${predicted.has(symbol) ? "says dropped" : "says kept"}`,
      );
  }
  process.stderr.write(
    `${report.merge.effective.size} settings, ${unchecked.size} toolchain-decided; olddefconfig changes ${changed}, ` +
      `the check predicts ${predicted.size}; ${disagreements.length} disagreements\n`,
  );
  assert.deepEqual(disagreements, []);
  assert.equal(changed, predicted.size);
});
