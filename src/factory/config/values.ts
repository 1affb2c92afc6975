// The settings being assembled: each leaf's current value and where it came from. Sources are applied in
// order, later ones overriding earlier ones: defaults, then `env=IF_`, then the command line from left to
// right, where each `--config` source and each legacy flag takes effect at its position. Repeatable flags
// (`-extra-extensions-catalog`) add to the list instead of replacing it.

import { parseGoDurationMilliseconds } from "./go-duration.ts";
import { parseGoBool } from "./go-flags.ts";
import { describeOrigin, type Origin, type Problems } from "./problems.ts";
import {
  allSettings,
  type RepositoryGroupSpec,
  repositoryGroups,
  type SettingSpec,
  type SettingValue,
  splitRepositoryReference,
} from "./settings.ts";
import type { ConfigEntry } from "./sources.ts";

export interface SettingEntry {
  value: SettingValue;
  origin: Origin;
  /** Order of assignment, so a combined value (a repository's parts) names the part set last. */
  sequence: number;
}

const maxListLength = 1000;

function describeValue(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

type Parsed = SettingValue | { problem: string };

function isProblem(parsed: Parsed): parsed is { problem: string } {
  return typeof parsed === "object" && !Array.isArray(parsed);
}

/** Reads a command-line string as the setting's type; returns the problem text when it does not fit. */
function fromText(spec: SettingSpec, text: string): Parsed {
  switch (spec.type) {
    case "string":
      return text;
    case "bool": {
      const parsed = text === "" ? false : parseGoBool(text);
      return parsed ?? { problem: `invalid boolean ${describeValue(text)} (true, false, 1, 0, t, f)` };
    }
    case "int":
      if (!/^[+-]?\d{1,15}$/.test(text)) return { problem: `invalid integer ${describeValue(text)}` };
      return Number(text);
    case "duration":
      try {
        return parseGoDurationMilliseconds(text);
      } catch (err) {
        return { problem: `${(err as Error).message} (Go syntax, e.g. 15m, 1h30m, 300ms)` };
      }
    case "list":
      return text === "" ? [] : [text];
  }
}

/** Reads a configuration value (YAML/JSON types, or env strings) as the setting's type, weakly like upstream. */
function fromConfig(spec: SettingSpec, value: unknown): Parsed {
  if (typeof value === "string") return fromText(spec, value);
  switch (spec.type) {
    case "string":
      // Not converted as upstream does: YAML reads `minTalosVersion: 1.10` as the number 1.1, and a silently
      // different version (or port, or name) is worse than asking for quotes.
      if (typeof value === "number" || typeof value === "boolean")
        return { problem: `expected a string, got the ${typeof value} ${describeValue(value)}: quote it` };
      return { problem: `expected a string, got ${describeValue(value)}` };
    case "bool":
      if (typeof value === "boolean") return value;
      return { problem: `expected a boolean, got ${describeValue(value)}` };
    case "int":
      if (typeof value === "number" && Number.isSafeInteger(value)) return value;
      return { problem: `expected an integer, got ${describeValue(value)}` };
    case "duration":
      return { problem: `expected a duration string such as "15m", got ${describeValue(value)}` };
    case "list": {
      if (!Array.isArray(value)) return { problem: `expected a list of strings, got ${describeValue(value)}` };
      if (value.length > maxListLength) return { problem: `more than ${maxListLength} entries` };
      const items: string[] = [];
      for (const item of value) {
        if (typeof item === "string" || typeof item === "number") items.push(String(item));
        else return { problem: `expected a list of strings, got the entry ${describeValue(item)}` };
      }
      return items;
    }
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class SettingValues {
  private readonly entries = new Map<string, SettingEntry>();
  private readonly leaves = new Map<string, SettingSpec>();
  private readonly groups = new Map<string, RepositoryGroupSpec>();
  /** Lowercased keys that have settings under them ("http", "cache.oci", …). */
  private readonly sections = new Set<string>();
  private sequence = 0;

  constructor() {
    for (const spec of allSettings()) {
      this.leaves.set(spec.key.toLowerCase(), spec);
      this.entries.set(spec.key, { value: spec.default, origin: { kind: "default" }, sequence: 0 });
      const parts = spec.key.split(".");
      for (let i = 1; i < parts.length; i++) this.sections.add(parts.slice(0, i).join(".").toLowerCase());
    }
    for (const group of repositoryGroups) this.groups.set(group.key.toLowerCase(), group);
  }

  get(key: string): SettingEntry {
    const entry = this.entries.get(key);
    if (entry === undefined) throw new Error(`no setting ${key}`); // a bug: keys come from the table
    return entry;
  }

  value<T extends SettingValue>(key: string): T {
    return this.get(key).value as T;
  }

  /** How problems name this setting now: the flag or key (and source) that set it last. */
  nameOf(key: string): string {
    const { origin } = this.get(key);
    const flag = this.leaves.get(key.toLowerCase())?.flag;
    // A default is named by its legacy flag when it has one: that is what the operator would type to change it.
    if (origin.kind === "default" && flag !== undefined) return `-${flag}`;
    return describeOrigin(origin, key);
  }

  /** The name of whichever of these settings was set last (for a value combined from several). */
  nameOfLatest(keys: readonly string[]): string {
    let latest = keys[0] as string;
    for (const key of keys) if (this.get(key).sequence > this.get(latest).sequence) latest = key;
    return this.nameOf(latest);
  }

  /** Every leaf that has a value different from its default and belongs to a feature not built yet. */
  unsupportedInUse(): Array<{ key: string; feature: string }> {
    const found: Array<{ key: string; feature: string }> = [];
    for (const spec of this.leaves.values()) {
      if (spec.unsupported === undefined) continue;
      const { value } = this.get(spec.key);
      if (JSON.stringify(value) !== JSON.stringify(spec.default))
        found.push({ key: spec.key, feature: spec.unsupported });
    }
    return found;
  }

  private set(key: string, value: SettingValue, origin: Origin): void {
    this.entries.set(key, { value, origin, sequence: ++this.sequence });
  }

  setFromFlag(spec: SettingSpec, spelling: string, text: string, problems: Problems): void {
    const parsed = fromText(spec, text);
    if (isProblem(parsed)) {
      problems.add(`${spelling}: ${parsed.problem}`);
      return;
    }
    const origin: Origin = { kind: "flag", spelling };
    if (spec.type === "list") {
      // Repeatable: each occurrence adds to the list (a source that set it before included).
      const current = this.value<readonly string[]>(spec.key);
      this.set(spec.key, [...current, ...(parsed as string[])], origin);
      return;
    }
    this.set(spec.key, parsed, origin);
  }

  /** `-cache-repository REF`: the three parts at once; an empty REF clears them (the embedded default). */
  setRepositoryFromFlag(group: RepositoryGroupSpec, spelling: string, text: string): void {
    const parts = text === "" ? { registry: "", namespace: "", repository: "" } : splitRepositoryReference(text);
    const origin: Origin = { kind: "flag", spelling };
    for (const part of ["registry", "namespace", "repository"] as const)
      this.set(`${group.key}.${part}`, parts[part], origin);
  }

  applyConfigEntry(entry: ConfigEntry, problems: Problems): void {
    this.applyConfigValue(entry.segments, entry.value, entry, problems);
  }

  private applyConfigValue(segments: string[], value: unknown, entry: ConfigEntry, problems: Problems): void {
    const lower = segments.join(".").toLowerCase();
    const origin = entry.originOf(segments);
    const leaf = segments.length > 0 ? this.leaves.get(lower) : undefined;
    if (leaf !== undefined) {
      if (value === null) return; // "key:" with nothing: as upstream, leaves the value alone
      const parsed = fromConfig(leaf, value);
      if (isProblem(parsed)) {
        problems.add(`${describeOrigin(origin, leaf.key)}: ${parsed.problem}`);
        return;
      }
      this.set(leaf.key, parsed, origin);
      return;
    }
    const group = this.groups.get(lower);
    if (group !== undefined && typeof value === "string") {
      if (value === "") return; // upstream's UnmarshalText ignores an empty reference
      const parts = splitRepositoryReference(value);
      for (const part of ["registry", "namespace", "repository"] as const)
        this.set(`${group.key}.${part}`, parts[part], origin);
      return;
    }
    const isSection = segments.length === 0 || this.sections.has(lower);
    if (isSection && value === null) return;
    if (isSection && isMapping(value)) {
      for (const [key, child] of Object.entries(value))
        this.applyConfigValue([...segments, key], child, entry, problems);
      return;
    }
    if (isSection) {
      problems.add(`${describeOrigin(origin, lower)}: expected a mapping of keys, got ${describeValue(value)}`);
      return;
    }
    problems.add(`${describeOrigin(origin, lower)}: unknown configuration key ${JSON.stringify(segments.join("."))}`);
  }
}
