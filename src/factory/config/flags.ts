// The factory's command line: every legacy single-dash flag of upstream (from the settings table), this
// project's additions, and the two flags that are not settings: `--config SOURCE` (repeatable) and
// `--check-config` (validate, print the summary, exit). Parsed with Go's flag rules (go-flags.ts).

import { formatGoDuration } from "./go-duration.ts";
import type { GoFlagDefinition } from "./go-flags.ts";
import { allSettings, type RepositoryGroupSpec, repositoryGroups, type SettingSpec } from "./settings.ts";

export type FlagTarget =
  | { kind: "setting"; setting: SettingSpec }
  | { kind: "repository"; group: RepositoryGroupSpec }
  | { kind: "config" }
  | { kind: "check-config" }
  | { kind: "testbed" };

export interface FactoryFlag extends GoFlagDefinition {
  target: FlagTarget;
  help: string;
}

function buildFlagTable(): Map<string, FactoryFlag> {
  const table = new Map<string, FactoryFlag>();
  const add = (flag: FactoryFlag) => {
    if (table.has(flag.name)) throw new Error(`flag -${flag.name} defined twice`); // a bug in the tables
    table.set(flag.name, flag);
  };
  for (const setting of allSettings()) {
    if (setting.flag === undefined) continue;
    add({
      name: setting.flag,
      kind: setting.type === "bool" ? "bool" : "value",
      target: { kind: "setting", setting },
      help: setting.help,
    });
  }
  for (const group of repositoryGroups) {
    if (group.flag === undefined) continue;
    add({ name: group.flag, kind: "value", target: { kind: "repository", group }, help: group.help });
  }
  add({
    name: "config",
    kind: "value",
    target: { kind: "config" },
    help: "configuration source, repeatable: FILE or file=FILE (.yaml, .yml, .json, .env), env=PREFIX; env=IF_ is always read first",
  });
  add({
    name: "check-config",
    kind: "bool",
    target: { kind: "check-config" },
    help: "validate the configuration, print the start-up summary and exit",
  });
  add({
    name: "testbed",
    kind: "bool",
    target: { kind: "testbed" },
    help: "demo: publish the test bed release to a local registry under <data-dir>/testbed and serve it (loopback, signatures verified)",
  });
  return table;
}

export const factoryFlags: ReadonlyMap<string, FactoryFlag> = buildFlagTable();

function defaultText(flag: FactoryFlag): string {
  if (flag.target.kind !== "setting") return "";
  const { setting } = flag.target;
  const value = setting.default;
  if (setting.type === "bool" || value === "" || (Array.isArray(value) && value.length === 0)) return "";
  if (setting.type === "duration") return ` (default ${formatGoDuration(value as number)})`;
  // Quoted as the program receives it (not Go's %q, which doubles every backslash of a regexp).
  return ` (default "${String(value)}")`;
}

/** Usage text in Go's style, for `boot-assets factory -h`. Flags for features not built yet are listed last. */
export function factoryUsage(): string {
  const lines = ["Usage: boot-assets factory [flags]", ""];
  const flags = [...factoryFlags.values()].sort((a, b) => a.name.localeCompare(b.name));
  const supported = flags.filter((f) => f.target.kind !== "setting" || f.target.setting.unsupported === undefined);
  const unsupported = flags.filter((f) => f.target.kind === "setting" && f.target.setting.unsupported !== undefined);
  for (const flag of supported) {
    lines.push(`  -${flag.name}${flag.kind === "bool" ? "" : " value"}`);
    lines.push(`    \t${flag.help}${defaultText(flag)}`);
  }
  lines.push("", "Accepted for compatibility, refused when set (not supported yet):");
  lines.push(`  ${unsupported.map((f) => `-${f.name}`).join(" ")}`);
  return `${lines.join("\n")}\n`;
}
