// `boot-assets kernel-config merge|check`: reads the base config and the fragments (bounded), merges them as
// merge_config.sh does, and with a kernel source tree (`--kconfig-src`) finds the values olddefconfig would
// drop. Fragments' near-miss lines and dropped values are errors; the base config's are reported as notes.
// `merge` writes its output atomically and only when there is no error.

import { open, realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { type AppError, badRequest, tooLarge } from "../errors.ts";
import { type ConfigFile, type ConfigProblem, maxConfigBytes, parseConfigFile } from "../kernel/config-file.ts";
import { checkAgainstKconfig, type DroppedSetting, type KconfigCheck } from "../kernel/kconfig-check.ts";
import { parseKconfigTree } from "../kernel/kconfig-parse.ts";
import { type MergeResult, mergeConfigs } from "../kernel/merge.ts";
import { isNotFoundError, writeFileAtomic } from "../util/fs.ts";

export interface KernelConfigRequest {
  base: string;
  fragments: readonly string[];
  /** A kernel source tree (its Kconfig files): enables the dependency check. */
  kconfigSrc?: string;
  /** The kernel's source architecture (arch/<srcarch>/Kconfig); default x86. */
  srcarch?: string;
  signal?: AbortSignal;
}

export interface KernelConfigReport {
  merge: MergeResult;
  /** Near-miss lines: errors in fragments, notes in the base. */
  problems: { error: boolean; problem: ConfigProblem }[];
  kconfig?: KconfigCheck & { files: number; symbols: number };
  /** Dropped values a fragment asked for: errors. */
  droppedRequested: DroppedSetting[];
  /** Dropped values of the base config: notes (a base for another kernel version has many). */
  droppedBase: DroppedSetting[];
  errorCount: number;
}

const maxFragments = 256;
const maxKconfigFileBytes = 1024 * 1024;
const maxKconfigTotalBytes = 64 * 1024 * 1024;

async function readBounded(path: string, limit: number, what: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if (isNotFoundError(err)) throw badRequest(`${what} ${path} does not exist`);
    throw err;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw badRequest(`${what} ${path} is not a regular file`);
    if (info.size > limit) throw tooLarge(`${what} ${path} is larger than ${limit} bytes`);
    const buffer = Buffer.alloc(info.size);
    const { bytesRead } = await handle.read(buffer, 0, info.size, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

async function readConfig(path: string, what: string): Promise<ConfigFile> {
  return parseConfigFile(path, await readBounded(path, maxConfigBytes, what));
}

/** Loads Kconfig files by their path relative to `top`, refusing any that resolves outside it. */
function treeLoader(top: string, signal: AbortSignal | undefined): (path: string) => Promise<string> {
  let total = 0;
  return async (path: string) => {
    signal?.throwIfAborted();
    if (isAbsolute(path)) throw badRequest(`Kconfig "source ${path}": an absolute path`);
    const full = resolve(top, path);
    let real: string;
    try {
      real = await realpath(full);
    } catch (err) {
      if (isNotFoundError(err)) throw badRequest(`Kconfig file ${path} is not in ${top}`);
      throw err;
    }
    const rel = relative(top, real);
    if (rel.startsWith("..") || isAbsolute(rel)) throw badRequest(`Kconfig file ${path} resolves outside ${top}`);
    const text = await readBounded(real, maxKconfigFileBytes, "Kconfig file");
    total += text.length;
    if (total > maxKconfigTotalBytes)
      throw tooLarge(`the Kconfig files of ${top} exceed ${maxKconfigTotalBytes} bytes`);
    return text;
  };
}

export async function checkKernelConfig(request: KernelConfigRequest): Promise<KernelConfigReport> {
  if (request.fragments.length > maxFragments) throw badRequest(`more than ${maxFragments} fragments`);
  const base = await readConfig(request.base, "base config");
  const fragments: ConfigFile[] = [];
  for (const path of request.fragments) fragments.push(await readConfig(path, "fragment"));
  const merge = mergeConfigs(base, fragments);
  const problems = [
    ...base.problems.map((problem) => ({ error: false, problem })),
    ...fragments.flatMap((f) => f.problems.map((problem) => ({ error: true, problem }))),
  ];
  const report: KernelConfigReport = { merge, problems, droppedRequested: [], droppedBase: [], errorCount: 0 };
  if (request.kconfigSrc !== undefined) {
    const top = await realpath(request.kconfigSrc).catch((err: unknown) => {
      if (isNotFoundError(err)) throw badRequest(`--kconfig-src ${request.kconfigSrc} does not exist`);
      throw err;
    });
    if (!(await stat(top)).isDirectory()) throw badRequest(`--kconfig-src ${request.kconfigSrc} is not a directory`);
    const srcarch = request.srcarch ?? "x86";
    if (!/^[a-z0-9_]+$/.test(srcarch)) throw badRequest(`--srcarch "${srcarch}": not an architecture directory name`);
    const env = new Map([
      ["SRCARCH", srcarch],
      ["ARCH", srcarch],
    ]);
    const tree = await parseKconfigTree("Kconfig", treeLoader(top, request.signal), env);
    const settings = merge.lines.flatMap((line) => {
      const s = merge.effective.get(settingSymbol(line.text) ?? "");
      return s !== undefined && s.file === line.file && s.line === line.line ? [s] : [];
    });
    const check = checkAgainstKconfig(tree, settings);
    report.kconfig = {
      ...check,
      files: tree.files,
      symbols: [...tree.symbols.values()].filter((s) => s.definitions.length > 0).length,
    };
    const fragmentNames = new Set(request.fragments);
    for (const dropped of check.dropped)
      (fragmentNames.has(dropped.setting.file) ? report.droppedRequested : report.droppedBase).push(dropped);
  }
  report.errorCount = problems.filter((p) => p.error).length + report.droppedRequested.length;
  return report;
}

function settingSymbol(text: string): string | undefined {
  return /^CONFIG_([a-zA-Z0-9_]*)=/.exec(text)?.[1] ?? /^# CONFIG_([a-zA-Z0-9_]*) is not set$/.exec(text)?.[1];
}

/** Checks, then writes the merged config to `output` (atomically) when there is no error. */
export async function mergeKernelConfig(
  request: KernelConfigRequest & { output: string },
): Promise<KernelConfigReport & { written: boolean }> {
  const report = await checkKernelConfig(request);
  if (report.errorCount > 0) return { ...report, written: false };
  const output = resolve(request.output);
  await writeFileAtomic(dirname(output), output, report.merge.text);
  return { ...report, written: true };
}

/** The error a report with errors ends the command with. */
export function reportError(report: KernelConfigReport, suffix = ""): AppError | undefined {
  if (report.errorCount === 0) return undefined;
  return badRequest(
    `${report.errorCount} problem${report.errorCount === 1 ? "" : "s"} in the fragments: ` +
      `${report.droppedRequested.length} value${report.droppedRequested.length === 1 ? "" : "s"} olddefconfig would drop, ` +
      `${report.problems.filter((p) => p.error).length} line${report.problems.filter((p) => p.error).length === 1 ? "" : "s"} merge_config.sh would ignore${suffix}`,
  );
}
