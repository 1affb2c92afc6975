// Commands that take Go-style flags and borrow some of the factory's (`build`, `mirror`): one table of the
// command's own flags plus the borrowed ones (each setting the factory setting it sets there), its usage text
// in Go's flag.PrintDefaults layout, and the parse with Go flag errors reported as configuration problems.

import { factoryFlags } from "../factory/config/flags.ts";
import {
  type GoFlagDefinition,
  GoFlagError,
  type GoFlagParseResult,
  parseGoFlags,
} from "../factory/config/go-flags.ts";
import { ConfigError } from "../factory/config/problems.ts";
import type { SettingSpec } from "../factory/config/settings.ts";

export interface CommandFlag extends GoFlagDefinition {
  help: string;
  /** The factory setting it sets, for the borrowed ones. */
  setting?: SettingSpec;
}

/** The command's own flags and the factory's `borrowed` ones (with `help` replacing the factory's wording). */
export function flagTable(
  own: readonly CommandFlag[],
  borrowed: readonly string[],
  help: Readonly<Record<string, string>> = {},
): ReadonlyMap<string, CommandFlag> {
  const table = new Map<string, CommandFlag>(own.map((f) => [f.name, f]));
  for (const name of borrowed) {
    const flag = factoryFlags.get(name);
    if (flag === undefined || flag.target.kind !== "setting") throw new Error(`factory flag -${name} is missing`); // a bug
    table.set(name, { name, kind: flag.kind, help: help[name] ?? flag.help, setting: flag.target.setting });
  }
  return table;
}

/** `header` lines, then every flag sorted by name with its help and the setting's default, as Go prints them. */
export function flagUsage(header: readonly string[], flags: ReadonlyMap<string, CommandFlag>): string {
  const lines = [...header];
  for (const flag of [...flags.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const fallback = flag.setting?.default;
    const shown =
      flag.setting !== undefined && typeof fallback === "string" && fallback !== "" ? ` (default "${fallback}")` : "";
    lines.push(`  -${flag.name}${flag.kind === "bool" ? "" : " value"}`, `    \t${flag.help}${shown}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Go flag parsing over the table; a malformed command line is a ConfigError (exit code 2). */
export function parseCommandFlags(args: readonly string[], flags: ReadonlyMap<string, CommandFlag>): GoFlagParseResult {
  try {
    return parseGoFlags(args, [...flags.values()]);
  } catch (err) {
    if (err instanceof GoFlagError) throw new ConfigError([err.message]);
    throw err;
  }
}
