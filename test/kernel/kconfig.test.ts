// The Kconfig check on small trees written here, each run through the kernel's own `conf --olddefconfig`
// (built from Debian's linux-source-6.1, test/kernel/fixture.ts) as the oracle: a value the check calls
// dropped must be one conf changes, and the reasons must name the rule (Documentation/kbuild/kconfig-language.rst).

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { parseConfigFile } from "../../src/kernel/config-file.ts";
import { checkKernelConfig, mergeKernelConfig } from "../../src/toolkit/kernel-config.ts";
import { runTool, type Tool } from "../../src/tools/run.ts";
import { type KernelFixture, kernelFixture } from "./fixture.ts";

let dir: string;
let fixture: KernelFixture;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kconfig-test-"));
  fixture = await kernelFixture((line) => process.stderr.write(`fixture: ${line}\n`));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function tree(files: Record<string, string>): Promise<string> {
  const top = join(dir, `tree${counter++}`);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(top, path)), { recursive: true });
    await writeFile(join(top, path), text);
  }
  return top;
}

/** The real Kconfig: `conf --olddefconfig` on `config`, returning symbol → value as written (n when absent). */
async function realOlddefconfig(top: string, config: string): Promise<Map<string, string>> {
  const path = join(top, ".config");
  await writeFile(path, config);
  const conf: Tool = { command: fixture.conf, debianPackage: "make" };
  await runTool(conf, ["--olddefconfig", "Kconfig"], {
    cwd: top,
    env: { srctree: ".", KCONFIG_CONFIG: ".config", SRCARCH: "x86", ARCH: "x86" },
  });
  const out = parseConfigFile(".config", await readFile(path, "utf8"));
  return new Map(out.settings.map((s) => [s.symbol, s.unset ? "n" : s.value]));
}

/** Checks `fragment` over an empty base with the project's check and with the real conf; both must agree. */
async function checkBoth(files: Record<string, string>, fragment: string) {
  const top = await tree(files);
  await writeFile(join(top, "base.config"), "");
  await writeFile(join(top, "frag.config"), fragment);
  const report = await checkKernelConfig({
    base: join(top, "base.config"),
    fragments: [join(top, "frag.config")],
    kconfigSrc: top,
  });
  const real = await realOlddefconfig(top, fragment);
  const requested = parseConfigFile("frag", fragment).settings;
  const droppedByConf = requested
    .filter((s) => (real.get(s.symbol) ?? "n") !== (s.unset ? "n" : s.value))
    .map((s) => s.symbol)
    .sort();
  const droppedByCheck = report.droppedRequested.map((d) => d.setting.symbol).sort();
  assert.deepEqual(droppedByCheck, droppedByConf, "the check and the kernel's conf disagree on what is dropped");
  const reasons = new Map(report.droppedRequested.map((d) => [d.setting.symbol, `${d.result}: ${d.reason}`]));
  return { report, reasons, real };
}

describe("kernel-config check with a Kconfig tree (against the kernel's conf)", () => {
  test("an unmet `depends on` drops the value; the error names the symbol and the unmet expression", async () => {
    const { reasons, report } = await checkBoth(
      {
        Kconfig: [
          "config MEMORY_HOTPLUG",
          '\tbool "hotplug"',
          "\tdepends on SPARSEMEM",
          "config SPARSEMEM",
          '\tbool "sparse"',
          "config MEMORY_HOTREMOVE",
          '\tbool "hot remove"',
          "\tdepends on MEMORY_HOTPLUG && MIGRATION",
          "config MIGRATION",
          "\tdef_bool y",
          "",
        ].join("\n"),
      },
      "CONFIG_MEMORY_HOTPLUG=y\nCONFIG_MEMORY_HOTREMOVE=y\n",
    );
    assert.equal(reasons.get("MEMORY_HOTPLUG"), "n: unmet dependency: depends on SPARSEMEM [=n]");
    assert.equal(reasons.get("MEMORY_HOTREMOVE"), "n: unmet dependency: depends on MEMORY_HOTPLUG [=n]");
    assert.equal(report.errorCount, 2);
  });

  test("a tristate under an m dependency is capped at m; select forces a value up", async () => {
    const { reasons } = await checkBoth(
      {
        Kconfig: [
          "config MODULES",
          '\tbool "modules"',
          "\tmodules",
          "config DRM",
          '\ttristate "drm"',
          "config DRM_SIMPLEDRM",
          '\ttristate "simpledrm"',
          "\tdepends on DRM",
          "config DLM",
          '\ttristate "dlm"',
          "\tselect IP_SCTP",
          "config IP_SCTP",
          '\ttristate "sctp"',
          "",
        ].join("\n"),
      },
      "CONFIG_MODULES=y\nCONFIG_DRM=m\nCONFIG_DRM_SIMPLEDRM=y\nCONFIG_DLM=m\n# CONFIG_IP_SCTP is not set\n",
    );
    assert.equal(reasons.get("DRM_SIMPLEDRM"), "m: unmet dependency: depends on DRM [=m]");
    assert.equal(reasons.get("IP_SCTP"), "m: selected by DLM [=m]");
  });

  test("a symbol without a prompt keeps its default; an unknown symbol is dropped; unknown `not set` is harmless", async () => {
    const { reasons, report } = await checkBoth(
      {
        Kconfig: [
          "config DEVICE_MIGRATION",
          "\tdef_bool MIGRATION && ZONE_DEVICE",
          "config MIGRATION",
          '\tbool "m"',
          "config ZONE_DEVICE",
          '\tbool "z"',
          "",
        ].join("\n"),
      },
      "CONFIG_DEVICE_MIGRATION=y\nCONFIG_ZONE_DEVICE=y\nCONFIG_NETKIT=y\n# CONFIG_GONE is not set\n",
    );
    assert.match(
      reasons.get("DEVICE_MIGRATION") ?? "",
      /^n: it has no prompt: only its defaults .*default MIGRATION \[=n\] && ZONE_DEVICE \[=y\]/,
    );
    assert.match(reasons.get("NETKIT") ?? "", /defines no such symbol/);
    assert.deepEqual(
      report.kconfig?.unknownUnset.map((s) => s.symbol),
      ["GONE"],
    );
  });

  test("choice: the last member set to y wins; if/endif, menu dependencies and `visible if` apply", async () => {
    const { reasons } = await checkBoth(
      {
        Kconfig: [
          "choice",
          '\tprompt "hash"',
          "\tdefault SHA256",
          "config SHA256",
          '\tbool "sha256"',
          "config SHA512",
          '\tbool "sha512"',
          "endchoice",
          "config NET",
          '\tbool "net"',
          "if NET",
          'menu "vendors"',
          "\tdepends on PCI",
          "config NET_VENDOR_INTEL",
          '\tbool "intel"',
          "endmenu",
          "endif",
          "config PCI",
          '\tbool "pci"',
          'menu "hidden"',
          "\tvisible if PCI",
          "config HIDDEN_OPT",
          '\tbool "hidden"',
          "endmenu",
          "",
        ].join("\n"),
      },
      "CONFIG_SHA256=y\nCONFIG_SHA512=y\nCONFIG_NET=y\nCONFIG_NET_VENDOR_INTEL=y\nCONFIG_HIDDEN_OPT=y\n",
    );
    assert.equal(reasons.get("SHA256"), 'n: choice "hash" picks CONFIG_SHA512');
    assert.equal(reasons.get("NET_VENDOR_INTEL"), "n: unmet dependency: depends on PCI [=n]");
    assert.equal(reasons.get("HIDDEN_OPT"), "n: its prompt is hidden: visible only if PCI [=n]");
  });

  test('`source "arch/$(SRCARCH)/Kconfig"`, macros with arguments, int ranges and strings', async () => {
    const { reasons } = await checkBoth(
      {
        Kconfig: [
          "greeting = hello-$(1)",
          "arch := $(SRCARCH)",
          'source "arch/$(arch)/Kconfig"',
          "config NAME",
          '\tstring "name"',
          '\tdefault "$(greeting,world)"',
          "config NR_CPUS",
          '\tint "cpus"',
          "\trange 2 64",
          "\tdefault 8",
          "config HOSTNAME",
          '\tstring "host"',
          "\tdepends on X86_64",
          "",
        ].join("\n"),
        "arch/x86/Kconfig": 'config X86_64\n\tbool "64-bit"\n',
      },
      'CONFIG_NR_CPUS=128\nCONFIG_NAME="hello-world"\nCONFIG_HOSTNAME="node"\n',
    );
    assert.equal(reasons.get("NR_CPUS"), "64: outside its range 2..64");
    assert.equal(reasons.get("HOSTNAME"), "(not written): unmet dependency: depends on X86_64 [=n]");
    assert.equal(reasons.has("NAME"), false);
  });

  test("$(shell,…) is never run; the symbols it decides keep the config's value and are reported as unchecked", async () => {
    const marker = join(dir, "shell-ran");
    const top = await tree({
      Kconfig: `config CC_HAS_X\n\tdef_bool $(shell,touch ${marker}; echo y)\nconfig FEATURE\n\tbool "f"\n\tdepends on CC_HAS_X\n`,
    });
    await writeFile(join(top, "base.config"), "CONFIG_CC_HAS_X=y\n");
    await writeFile(join(top, "frag.config"), "CONFIG_FEATURE=y\n");
    const report = await checkKernelConfig({
      base: join(top, "base.config"),
      fragments: [join(top, "frag.config")],
      kconfigSrc: top,
    });
    assert.equal(existsSync(marker), false);
    assert.deepEqual(
      report.kconfig?.unchecked.map((s) => s.symbol),
      ["CC_HAS_X"],
    );
    assert.equal(report.errorCount, 0);
  });
});

describe("kernel-config check: toolchain-decided symbols", () => {
  test("a symbol selected by a toolchain-decided one keeps the selection (arm64's GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS)", async () => {
    const { report } = await checkBoth(
      {
        Kconfig: [
          "config GCC_SUPPORTS_X",
          "\tdef_bool y",
          "\tdepends on $(shell,echo y)",
          "\tselect HAVE_X",
          "config HAVE_X",
          "\tbool",
          "config USE_X",
          '\tbool "use x"',
          "\tdepends on HAVE_X",
          "",
        ].join("\n"),
      },
      "CONFIG_GCC_SUPPORTS_X=y\nCONFIG_HAVE_X=y\nCONFIG_USE_X=y\n",
    );
    assert.deepEqual(
      report.kconfig?.unchecked.map((s) => s.symbol),
      ["GCC_SUPPORTS_X"],
    );
    assert.equal(report.errorCount, 0);
  });
});

describe("kernel-config check: bounded, confined input", () => {
  test("a source path outside the tree and a source loop are refused", async () => {
    const outsideTree = await tree({ Kconfig: 'source "../outside/Kconfig"\n', "../outside/Kconfig": "" });
    await writeFile(join(outsideTree, "base.config"), "");
    await assert.rejects(
      checkKernelConfig({ base: join(outsideTree, "base.config"), fragments: [], kconfigSrc: outsideTree }),
      (err) => isAppError(err, "BadRequest") && /outside/.test(err.message),
    );
    const loop = await tree({ Kconfig: 'source "Kconfig"\n' });
    await writeFile(join(loop, "base.config"), "");
    await assert.rejects(
      checkKernelConfig({ base: join(loop, "base.config"), fragments: [], kconfigSrc: loop }),
      (err) => isAppError(err, "TooLarge") && /nests deeper than 32/.test(err.message),
    );
  });

  test("merge writes nothing when the check fails", async () => {
    const top = await tree({ Kconfig: 'config A\n\tbool "a"\n\tdepends on B\nconfig B\n\tbool "b"\n' });
    await writeFile(join(top, "base.config"), "# CONFIG_B is not set\n");
    await writeFile(join(top, "frag.config"), "CONFIG_A=y\n");
    const output = join(top, "out.config");
    const report = await mergeKernelConfig({
      base: join(top, "base.config"),
      fragments: [join(top, "frag.config")],
      kconfigSrc: top,
      output,
    });
    assert.equal(report.written, false);
    assert.equal(existsSync(output), false);
  });
});
