// kernel-config on a real kernel config: Debian 12's linux-image-6.1 /boot/config with the project's
// kernel/custom.config and kernel/nvidia.config. The merge is byte-identical to the kernel's merge_config.sh
// and reports the overrides it reports; the check against the same kernel's Kconfig tree names the values
// olddefconfig would drop (debian-config-olddefconfig.exhaustive.test.ts runs make olddefconfig to confirm
// every one, and every value it keeps).

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfigFile } from "../../src/kernel/config-file.ts";
import { mergeConfigs } from "../../src/kernel/merge.ts";
import { checkKernelConfig } from "../../src/toolkit/kernel-config.ts";
import { type KernelFixture, kernelFixture, runMergeConfigSh } from "./fixture.ts";

const projectRoot = join(import.meta.dirname, "..", "..");

let dir: string;
let fixture: KernelFixture;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kconfig-debian-test-"));
  fixture = await kernelFixture((line) => process.stderr.write(`fixture: ${line}\n`));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("Debian's config + custom.config + nvidia.config: merge_config.sh's bytes and overrides; the values olddefconfig drops", async () => {
  const majorMinor = fixture.sourceVersion.split(".").slice(0, 2).join(".");
  assert.ok(fixture.imageName.startsWith(`linux-image-${majorMinor}.`), "kernel image and source are one version");
  const files: [string, string][] = [
    ["base.config", await readFile(fixture.config, "utf8")],
    ["custom.config", await readFile(join(projectRoot, "kernel/custom.config"), "utf8")],
    ["nvidia.config", await readFile(join(projectRoot, "kernel/nvidia.config"), "utf8")],
  ];
  const real = await runMergeConfigSh(fixture, join(dir, "merge"), files);
  const [base, ...fragments] = files.map(([name, text]) => parseConfigFile(name, text));
  const ours = mergeConfigs(base as ReturnType<typeof parseConfigFile>, fragments);
  assert.equal(ours.text, real.text);
  const crossFile = ours.overrides.filter((o) => o.from.file !== o.to.file);
  assert.deepEqual(
    crossFile.map((o) => `CONFIG_${o.symbol} ${o.to.file}`),
    real.redefined,
  );

  for (const [name, text] of files) await writeFile(join(dir, name), text);
  const report = await checkKernelConfig({
    base: join(dir, "base.config"),
    fragments: [join(dir, "custom.config"), join(dir, "nvidia.config")],
    kconfigSrc: fixture.tree,
  });
  process.stderr.write(
    `${fixture.imageName} (${fixture.sourceVersion}): ${crossFile.length} overrides, ${ours.redundant.length} redundant; ` +
      `Kconfig ${report.kconfig?.files} files, ${report.kconfig?.symbols} symbols, ${report.kconfig?.checked} settings checked, ` +
      `${report.kconfig?.unchecked.length} toolchain-decided; base values changing: ${report.droppedBase.length}\n` +
      report.droppedRequested
        .map(
          (d) =>
            `  ${d.setting.file.split("/").pop()}:${d.setting.line} ${d.setting.text} → ${d.result}: ${d.reason.slice(0, 160)}\n`,
        )
        .join(""),
  );
  // Two symbols newer than 6.1 (NETKIT: 6.7, ACPI_FFH: 6.2), simpledrm capped at m by Debian's DRM=m, and
  // vendors/protocols that modules Debian builds select (each confirmed by make olddefconfig in the
  // exhaustive test).
  assert.deepEqual(report.droppedRequested.map((d) => `${d.setting.text} → ${d.result}`).sort(), [
    "# CONFIG_IP_SCTP is not set → m",
    "# CONFIG_NET_VENDOR_BROADCOM is not set → y",
    "# CONFIG_NET_VENDOR_CHELSIO is not set → y",
    "# CONFIG_NET_VENDOR_CISCO is not set → y",
    "# CONFIG_NET_VENDOR_EMULEX is not set → y",
    "CONFIG_ACPI_FFH=y → (unknown symbol)",
    "CONFIG_DRM_SIMPLEDRM=y → m",
    "CONFIG_NETKIT=y → (unknown symbol)",
  ]);
  const reason = (symbol: string) => report.droppedRequested.find((d) => d.setting.symbol === symbol)?.reason;
  assert.equal(reason("DRM_SIMPLEDRM"), "unmet dependency: depends on DRM [=m]");
  assert.match(reason("IP_SCTP") ?? "", /^selected by DLM \[=m\]/);
  assert.deepEqual(report.problems, []);
  assert.equal(report.errorCount, 8);
});
