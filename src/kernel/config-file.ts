// Kernel `.config` files and Kconfig fragments: the lines `scripts/kconfig/merge_config.sh` treats as settings.
// Its two sed expressions define them: `^CONFIG_[a-zA-Z0-9_]*=.*` (a value) and
// `^# CONFIG_[a-zA-Z0-9_]* is not set$` (an explicit "no"); every other line is carried along untouched.
// Lines that look like a setting but match neither (`CONFIG_X = y`, `#CONFIG_X is not set`, a comment after
// "is not set") are kept as problems: merge_config.sh would silently ignore them.

import { tooLarge } from "../errors.ts";

/** A config file is a few hundred KiB (Debian's amd64 one: ~270 KiB, ~11,000 lines). */
export const maxConfigBytes = 4 * 1024 * 1024;
export const maxConfigLines = 200_000;

export interface ConfigSetting {
  /** Without the prefix: "XEN" for CONFIG_XEN. */
  symbol: string;
  /** The text after `=`, or "n" for `# CONFIG_X is not set`. */
  value: string;
  /** True for the `# CONFIG_X is not set` form. */
  unset: boolean;
  /** 1-based line in `file`. */
  line: number;
  file: string;
  /** The line as written. */
  text: string;
}

export interface ConfigProblem {
  file: string;
  line: number;
  message: string;
}

export interface ConfigFile {
  /** As given on the command line: used in every report. */
  name: string;
  text: string;
  settings: ConfigSetting[];
  problems: ConfigProblem[];
}

const prefix = "CONFIG_";
const valueLine = /^CONFIG_([a-zA-Z0-9_]*)=(.*)$/;
const unsetLine = /^# CONFIG_([a-zA-Z0-9_]*) is not set$/;
// Near misses: a setting with spaces around `=`, indented, or a "not set" spelled differently.
const nearSetting = /^(?:\s*CONFIG_[A-Za-z0-9_]+\s*=|\s+CONFIG_|#\s*CONFIG_[A-Za-z0-9_]+\s+is\s+not\s+set\s*$)/;
const wellFormedValue = /^(?:[ynm]|-?\d+|0[xX][0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$/;

/** Splits a file's text into lines as sed and grep see them (a final newline ends the last line). */
export function configLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function parseConfigFile(name: string, text: string): ConfigFile {
  if (Buffer.byteLength(text) > maxConfigBytes)
    throw tooLarge(`${name}: larger than ${maxConfigBytes} bytes; a kernel config is a few hundred KiB`);
  const lines = configLines(text);
  if (lines.length > maxConfigLines) throw tooLarge(`${name}: more than ${maxConfigLines} lines`);
  const settings: ConfigSetting[] = [];
  const problems: ConfigProblem[] = [];
  lines.forEach((raw, index) => {
    const line = index + 1;
    const set = valueLine.exec(raw);
    if (set) {
      const [, symbol = "", value = ""] = set;
      if (symbol === "") problems.push({ file: name, line, message: "CONFIG_ with no symbol name" });
      else if (!wellFormedValue.test(value))
        problems.push({
          file: name,
          line,
          message: `CONFIG_${symbol}=${value}: not y, m, n, a number or a "quoted string" (no comment may follow the value)`,
        });
      settings.push({ symbol, value, unset: false, line, file: name, text: raw });
      return;
    }
    const unset = unsetLine.exec(raw);
    if (unset) {
      settings.push({ symbol: unset[1] ?? "", value: "n", unset: true, line, file: name, text: raw });
      return;
    }
    if (/^# CONFIG_[A-Za-z0-9_]+ is not set./.test(raw))
      problems.push({
        file: name,
        line,
        message: `"${raw}": text after "is not set" makes merge_config.sh ignore the line; put the comment on a line of its own`,
      });
    else if (nearSetting.test(raw))
      problems.push({
        file: name,
        line,
        message: `"${raw}" is not a setting merge_config.sh recognizes; it is ignored`,
      });
  });
  return { name, text, settings, problems };
}

/** `CONFIG_X=v` or `# CONFIG_X is not set`, as the value is shown in reports. */
export function describeValue(setting: Pick<ConfigSetting, "value" | "unset">): string {
  return setting.unset ? "is not set" : setting.value;
}

export function settingName(symbol: string): string {
  return `${prefix}${symbol}`;
}
