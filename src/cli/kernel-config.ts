// `boot-assets kernel-config merge BASE FRAGMENT… -o OUT` and `kernel-config check BASE FRAGMENT…`: Kconfig
// fragments applied as the kernel's merge_config.sh does, every override reported with its file and line, and
// with `--kconfig-src DIR` the values `make olddefconfig` would drop (an error when a fragment asked for them).

import type { Command } from "commander";
import { describeValue, settingName } from "../kernel/config-file.ts";
import {
  checkKernelConfig,
  type KernelConfigReport,
  type KernelConfigRequest,
  mergeKernelConfig,
  reportError,
} from "../toolkit/kernel-config.ts";

interface KernelConfigCliOptions {
  kconfigSrc?: string;
  srcarch?: string;
  verbose?: boolean;
  output?: string;
}

function where(file: string, line: number): string {
  return `${file}:${line}`;
}

export function formatKernelConfigReport(report: KernelConfigReport, verbose: boolean): string[] {
  const out: string[] = [];
  const { merge } = report;
  out.push(`${merge.overrides.length} override(s), ${merge.redundant.length} redundant setting(s)`);
  for (const o of merge.overrides)
    out.push(
      `  ${settingName(o.symbol)}: ${describeValue(o.from)} (${where(o.from.file, o.from.line)}) → ${describeValue(o.to)} (${where(o.to.file, o.to.line)})`,
    );
  for (const { error, problem } of report.problems)
    out.push(`${where(problem.file, problem.line)}: ${error ? "error" : "note"}: ${problem.message}`);
  const kconfig = report.kconfig;
  if (kconfig !== undefined) {
    out.push(
      `Kconfig: ${kconfig.files} files, ${kconfig.symbols} symbols; ${kconfig.checked} settings checked, ` +
        `${kconfig.unchecked.length} decided by the toolchain ($(shell,…)) not checked, ` +
        `${kconfig.unknownUnset.length} "is not set" for symbols this tree lacks (harmless)`,
    );
    for (const d of report.droppedRequested)
      out.push(
        `${where(d.setting.file, d.setting.line)}: error: ${d.setting.text} would become ${d.result}: ${d.reason}`,
      );
    out.push(
      `${report.droppedBase.length} value(s) of the base config change too${verbose ? ":" : " (--verbose lists them)"}`,
    );
    if (verbose)
      for (const d of report.droppedBase)
        out.push(`${where(d.setting.file, d.setting.line)}: note: ${d.setting.text} becomes ${d.result}: ${d.reason}`);
  }
  return out;
}

function requestFrom(base: string, fragments: string[], options: KernelConfigCliOptions): KernelConfigRequest {
  return {
    base,
    fragments,
    ...(options.kconfigSrc === undefined ? {} : { kconfigSrc: options.kconfigSrc }),
    ...(options.srcarch === undefined ? {} : { srcarch: options.srcarch }),
  };
}

export function registerKernelConfigCommands(program: Command): void {
  const group = program
    .command("kernel-config")
    .description(
      "Apply and check Kconfig fragments (the kernel's merge_config.sh, with olddefconfig's dependency rules)",
    );
  const common = (command: Command, fragmentsRequired: boolean) =>
    command
      .argument("<base>", "the base .config (e.g. the vendor's)")
      .argument(
        fragmentsRequired ? "<fragments...>" : "[fragments...]",
        "Kconfig fragments, applied in order (later wins)",
      )
      .option("--kconfig-src <dir>", "a kernel source tree: check the values olddefconfig would drop")
      .option("--srcarch <arch>", "the tree's architecture directory (arch/<srcarch>/Kconfig)", "x86")
      .option("--verbose", "also list the base config's values that change");
  common(group.command("merge").description("Merge fragments into BASE and write the result"), true)
    .requiredOption("-o, --output <file>", "where to write the merged config (atomically; nothing on error)")
    .action(async (base: string, fragments: string[], options: KernelConfigCliOptions) => {
      const report = await mergeKernelConfig({
        ...requestFrom(base, fragments, options),
        output: options.output as string,
      });
      for (const line of formatKernelConfigReport(report, options.verbose === true)) process.stdout.write(`${line}\n`);
      const error = reportError(report, `; ${options.output} not written`);
      if (error !== undefined) throw error;
      process.stdout.write(`wrote ${options.output}\n`);
    });
  common(
    group.command("check").description("Report overrides, ignored lines and (with --kconfig-src) dropped values"),
    false,
  ).action(async (base: string, fragments: string[], options: KernelConfigCliOptions) => {
    const report = await checkKernelConfig(requestFrom(base, fragments, options));
    for (const line of formatKernelConfigReport(report, options.verbose === true)) process.stdout.write(`${line}\n`);
    const error = reportError(report);
    if (error !== undefined) throw error;
  });
}
