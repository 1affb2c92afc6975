// `boot-assets kernel-config merge|check` as a user runs them: the report on stdout, the exit code, and the
// output file written only when nothing is wrong.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kconfig-cli-test-"));
  await mkdir(join(dir, "src"));
  await writeFile(
    join(dir, "src/Kconfig"),
    'config MEMORY_HOTPLUG\n\tbool "hotplug"\nconfig MEMORY_HOTREMOVE\n\tbool "hotremove"\n\tdepends on MEMORY_HOTPLUG\n',
  );
  await writeFile(join(dir, "base.config"), "CONFIG_MEMORY_HOTPLUG=y\n# CONFIG_MEMORY_HOTREMOVE is not set\n");
  await writeFile(join(dir, "off.config"), "# no hotplug\n# CONFIG_MEMORY_HOTPLUG is not set\n");
  await writeFile(join(dir, "on.config"), "# hot remove\nCONFIG_MEMORY_HOTREMOVE=y\n");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("merge writes the merged config and lists each override with file and line", async () => {
  const out = join(dir, "merged.config");
  const result = await runCli(
    ["kernel-config", "merge", join(dir, "base.config"), join(dir, "on.config"), "-o", out],
    isolatedEnv(dir),
  );
  assert.equal(result.code, 0, result.stderr);
  const stdout = result.stdout.toString("utf8");
  assert.match(
    stdout,
    new RegExp(`CONFIG_MEMORY_HOTREMOVE: is not set \\(${dir}/base.config:2\\) → y \\(${dir}/on.config:2\\)`),
  );
  assert.equal(await readFile(out, "utf8"), "CONFIG_MEMORY_HOTPLUG=y\n\n# hot remove\nCONFIG_MEMORY_HOTREMOVE=y\n");
});

test("check with --kconfig-src: a value dropped by an unmet dependency fails with the symbol, file:line and expression", async () => {
  const result = await runCli(
    [
      "kernel-config",
      "check",
      join(dir, "base.config"),
      join(dir, "off.config"),
      join(dir, "on.config"),
      "--kconfig-src",
      join(dir, "src"),
    ],
    isolatedEnv(dir),
  );
  assert.equal(result.code, 2);
  assert.match(
    result.stdout.toString("utf8"),
    new RegExp(
      `${dir}/on.config:2: error: CONFIG_MEMORY_HOTREMOVE=y would become n: unmet dependency: depends on MEMORY_HOTPLUG \\[=n\\]`,
    ),
  );
  assert.match(result.stderr, /1 value olddefconfig would drop/);
});

test("merge refuses to write when the check fails; without --kconfig-src only the syntax is checked", async () => {
  const out = join(dir, "never.config");
  const failed = await runCli(
    [
      "kernel-config",
      "merge",
      join(dir, "base.config"),
      join(dir, "off.config"),
      join(dir, "on.config"),
      "-o",
      out,
      "--kconfig-src",
      join(dir, "src"),
    ],
    isolatedEnv(dir),
  );
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /not written/);
  assert.equal(existsSync(out), false);
  await writeFile(join(dir, "typo.config"), "CONFIG_MEMORY_HOTPLUG = y\n");
  const typo = await runCli(
    ["kernel-config", "check", join(dir, "base.config"), join(dir, "typo.config")],
    isolatedEnv(dir),
  );
  assert.equal(typo.code, 2);
  assert.match(
    typo.stdout.toString("utf8"),
    /typo\.config:1: error: "CONFIG_MEMORY_HOTPLUG = y" is not a setting merge_config\.sh recognizes/,
  );
});
