// kernel-config merge against the kernel's own scripts/kconfig/merge_config.sh (from Debian's linux-source-6.1,
// test/kernel/fixture.ts): the merged file is byte-identical to `merge_config.sh -m`, and every value it
// reports as redefined is reported here too, with the file and line on both sides.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { maxConfigBytes, parseConfigFile } from "../../src/kernel/config-file.ts";
import { mergeConfigs } from "../../src/kernel/merge.ts";
import { type KernelFixture, kernelFixture, runMergeConfigSh } from "./fixture.ts";

let dir: string;
let fixture: KernelFixture;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kconfig-merge-test-"));
  fixture = await kernelFixture((line) => process.stderr.write(`fixture: ${line}\n`));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function realMerge(files: [string, string][]) {
  return await runMergeConfigSh(fixture, join(dir, `case${counter++}`), files);
}

function ourMerge(files: [string, string][]) {
  const [base, ...fragments] = files.map(([name, text]) => parseConfigFile(name, text));
  return mergeConfigs(base as ReturnType<typeof parseConfigFile>, fragments);
}

describe("kernel-config merge = merge_config.sh -m", () => {
  test("later wins, `is not set` replaces a value, overrides name file and line", async () => {
    const files: [string, string][] = [
      ["base.config", '#\n# Base\n#\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_S="x"\n'],
      ["one.config", "# first\n# CONFIG_A is not set\nCONFIG_C=y\nCONFIG_B=m\n"],
      ["two.config", 'CONFIG_A=m\nCONFIG_S="y z"\n'],
    ];
    const ours = ourMerge(files);
    const real = await realMerge(files);
    assert.equal(ours.text, real.text);
    assert.deepEqual(
      ours.overrides.map(
        (o) => `${o.symbol}: ${o.from.file}:${o.from.line} ${o.from.text} → ${o.to.file}:${o.to.line} ${o.to.text}`,
      ),
      [
        "A: base.config:4 CONFIG_A=y → one.config:2 # CONFIG_A is not set",
        "C: base.config:6 # CONFIG_C is not set → one.config:3 CONFIG_C=y",
        "A: one.config:2 # CONFIG_A is not set → two.config:1 CONFIG_A=m",
        'S: base.config:7 CONFIG_S="x" → two.config:2 CONFIG_S="y z"',
      ],
    );
    assert.deepEqual(
      ours.overrides.map((o) => `CONFIG_${o.symbol} ${o.to.file}`),
      real.redefined,
    );
    assert.deepEqual(
      ours.redundant.map((s) => `${s.file}:${s.line}`),
      ["one.config:4"],
    );
    const effective = Object.fromEntries([...ours.effective].map(([k, v]) => [k, v.value]));
    assert.deepEqual(effective, { A: "m", B: "m", C: "y", S: '"y z"' });
  });

  test("edge cases: no final newline, a symbol repeated in one fragment, a symbol only named in a comment", async () => {
    const files: [string, string][] = [
      ["base.config", "CONFIG_A=y\n# CONFIG_B mentioned here\nCONFIG_C=y"],
      ["frag.config", "CONFIG_A=n\nCONFIG_A=m\nCONFIG_B=y\n# keep CONFIG_C=y as is\nCONFIG_D=y"],
      ["last.config", "CONFIG_D=m\n"],
    ];
    const ours = ourMerge(files);
    assert.equal(ours.text, (await realMerge(files)).text);
    assert.equal(ours.effective.get("A")?.value, "m");
    assert.equal(ours.effective.get("D")?.value, "m");
  });

  test("lines merge_config.sh would ignore are problems with file and line", () => {
    const file = parseConfigFile(
      "f.config",
      "CONFIG_A = y\n#CONFIG_B is not set\n# CONFIG_C is not set # why\nCONFIG_D=yes please\n# a remark about CONFIG_E\n",
    );
    assert.deepEqual(
      file.problems.map((p) => p.line),
      [1, 2, 3, 4],
    );
    assert.match(file.problems[2]?.message ?? "", /text after "is not set"/);
  });

  test("a config over the size limit is refused", () => {
    assert.throws(
      () => parseConfigFile("big", "#".repeat(maxConfigBytes + 1)),
      (err) => isAppError(err, "TooLarge"),
    );
  });
});
