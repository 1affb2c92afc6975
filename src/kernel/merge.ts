// Kconfig fragments applied to a base config as the kernel's `scripts/kconfig/merge_config.sh -m` does, to the
// byte: for each fragment in order, every symbol it sets is removed from what was merged so far (sed
// `/CONFIG_X[ =]/d`, but only when `grep -w CONFIG_X` finds it there), then a newline and the whole fragment are
// appended. Later settings win; the kernel's config reader takes the last of repeated lines. Every value that
// changes is reported with the file and line it came from and the one that replaced it.

import { type ConfigFile, type ConfigSetting, configLines } from "./config-file.ts";

export interface MergedLine {
  text: string;
  /** Where the line came from; "" for the newline merge_config.sh adds between files. */
  file: string;
  line: number;
  /** False only for a last line without its newline. */
  terminated: boolean;
}

export interface Override {
  symbol: string;
  from: ConfigSetting;
  to: ConfigSetting;
}

export interface MergeResult {
  /** The merged file, as `merge_config.sh -m` writes it. */
  text: string;
  lines: MergedLine[];
  /** Values replaced by a later file (or a later line of the same fragment), in merge order. */
  overrides: Override[];
  /** Settings a fragment repeats with the value already in force. */
  redundant: ConfigSetting[];
  /** The setting in force for each symbol (the last line that sets it), by symbol. */
  effective: Map<string, ConfigSetting>;
}

const valueLine = /^CONFIG_([a-zA-Z0-9_]*)=/;
const unsetLine = /^# CONFIG_([a-zA-Z0-9_]*) is not set$/;

function settingOf(line: MergedLine): ConfigSetting | undefined {
  const set = valueLine.exec(line.text);
  if (set) {
    const symbol = set[1] ?? "";
    return {
      symbol,
      value: line.text.slice(set[0].length),
      unset: false,
      file: line.file,
      line: line.line,
      text: line.text,
    };
  }
  const unset = unsetLine.exec(line.text);
  if (unset)
    return { symbol: unset[1] ?? "", value: "n", unset: true, file: line.file, line: line.line, text: line.text };
  return undefined;
}

function linesOf(file: ConfigFile): MergedLine[] {
  const lines = configLines(file.text).map((text, index) => ({
    text,
    file: file.name,
    line: index + 1,
    terminated: true,
  }));
  const last = lines[lines.length - 1];
  if (last !== undefined && !file.text.endsWith("\n")) last.terminated = false;
  return lines;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function mergeConfigs(base: ConfigFile, fragments: readonly ConfigFile[]): MergeResult {
  let merged = linesOf(base);
  const overrides: Override[] = [];
  const redundant: ConfigSetting[] = [];
  for (const fragment of fragments) {
    const lastInFragment = new Map<string, ConfigSetting>();
    for (const setting of fragment.settings) lastInFragment.set(setting.symbol, setting);
    for (const [symbol, wanted] of lastInFragment) {
      const name = `CONFIG_${symbol}`;
      // `grep -q -w CONFIG_X`: the name as a whole word anywhere, comments included.
      const word = new RegExp(`(?<![A-Za-z0-9_])${escapeRegExp(name)}(?![A-Za-z0-9_])`);
      if (!merged.some((line) => word.test(line.text))) continue;
      let previous: ConfigSetting | undefined;
      for (const line of merged) {
        const setting = settingOf(line);
        if (setting?.symbol === symbol) previous = setting;
      }
      if (previous !== undefined) {
        if (previous.text !== wanted.text) overrides.push({ symbol, from: previous, to: wanted });
        else redundant.push(wanted);
      }
      // sed "/CONFIG_X[ =]/d": any line holding the name followed by a space or `=`.
      merged = merged.filter((line) => !line.text.includes(`${name} `) && !line.text.includes(`${name}=`));
    }
    // `echo >> merged`: ends an unterminated last line, else adds an empty one.
    const last = merged[merged.length - 1];
    if (last !== undefined && !last.terminated) last.terminated = true;
    else merged.push({ text: "", file: "", line: 0, terminated: true });
    merged.push(...linesOf(fragment));
  }
  // The config reader takes the last of repeated settings ("override: reassigning to symbol").
  const effective = new Map<string, ConfigSetting>();
  for (const line of merged) {
    const setting = settingOf(line);
    if (setting === undefined) continue;
    const before = effective.get(setting.symbol);
    if (before !== undefined && before.text !== setting.text)
      overrides.push({ symbol: setting.symbol, from: before, to: setting });
    effective.set(setting.symbol, setting);
  }
  const text = merged.map((line) => (line.terminated ? `${line.text}\n` : line.text)).join("");
  return { text, lines: merged, overrides, redundant, effective };
}
