// The `--config` sources (upstream's current configuration form): `env=PREFIX` (environment variables),
// `FILE` or `file=FILE` (.yaml/.yml/.json/.env by extension); one flag value may list several, comma
// separated, and the flag repeats. Upstream always applies `env=IF_` first.
//
// Environment variables (and the keys of a .env file) become keys as upstream transforms them: the prefix is
// stripped, "_" becomes ".", and matching is case-insensitive, so IF_CONTAINERSIGNATURE_SUBJECTREGEXP sets
// containerSignature.subjectRegExp. A value starting with "[" or "{" is read as JSON when it parses
// (IF_HTTP_ALLOWEDORIGINS=["a","b"]). In a .env file the `IF_` prefix is optional.
//
// Beyond upstream (which ignores what it does not know): a key or variable that names no setting is an
// error naming it and its source, and `env=` with an empty prefix (every variable) is refused.

import { readFile, stat } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { DotenvSyntaxError, parseDotenv } from "./dotenv.ts";
import type { Origin } from "./problems.ts";

export const defaultEnvPrefix = "IF_";
const maxConfigFileBytes = 1024 * 1024;
const maxYamlAliases = 64;

export type ConfigSourceSpec =
  | { kind: "env"; prefix: string; text: string }
  | { kind: "file"; file: string; format: "yaml" | "json" | "env"; text: string };

/** One value read from a source: a (possibly nested) value at a key path, and how to name any sub-key. */
export interface ConfigEntry {
  /** Key path segments as the source spelled them (matched case-insensitively). */
  segments: string[];
  value: unknown;
  originOf: (segments: readonly string[]) => Origin;
}

/** Parses one `--config` value (comma-separated items); throws Error with the problem. */
export function parseConfigSpecs(value: string): ConfigSourceSpec[] {
  if (value.trim() === "") throw new Error("configs value must not be empty");
  return value.split(",").map((item): ConfigSourceSpec => {
    const equals = item.indexOf("=");
    const provider = equals === -1 ? "file" : item.slice(0, equals);
    const argument = equals === -1 ? item : item.slice(equals + 1);
    if (provider === "env") {
      if (argument === "")
        throw new Error(
          `${JSON.stringify(item)}: env= needs a prefix (e.g. env=IF_); every variable is not a configuration`,
        );
      return { kind: "env", prefix: argument, text: item };
    }
    if (provider !== "file")
      throw new Error(
        `${JSON.stringify(item)}: unsupported config provider ${JSON.stringify(provider)} (env=PREFIX, file=FILE or FILE)`,
      );
    if (argument === "") throw new Error(`${JSON.stringify(item)}: file name is empty`);
    const ext = extname(argument).toLowerCase();
    const format =
      ext === ".yaml" || ext === ".yml" ? "yaml" : ext === ".json" ? "json" : ext === ".env" ? "env" : undefined;
    if (format === undefined)
      throw new Error(`${argument}: unsupported config format ${JSON.stringify(ext)} (.yaml, .yml, .json or .env)`);
    return { kind: "file", file: argument, format, text: item };
  });
}

/** The key path an environment variable (or .env key) stands for, upstream's transform: "_" → ".". */
export function keySegmentsOfVariable(name: string, prefix: string): string[] {
  return name.slice(prefix.length).toLowerCase().split(/[_.]/);
}

/** Upstream's env values: "[…]" and "{…}" are JSON when they parse, anything else the string itself. */
export function envValue(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return text;
    }
  }
  return text;
}

export function readEnvironmentSource(prefix: string, env: NodeJS.ProcessEnv): ConfigEntry[] {
  const entries: ConfigEntry[] = [];
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith(prefix) || name === prefix || value === undefined) continue;
    const origin: Origin = { kind: "environment", variable: name };
    entries.push({ segments: keySegmentsOfVariable(name, prefix), value: envValue(value), originOf: () => origin });
  }
  return entries;
}

/** Reads a file source; throws Error with a one-line problem (the caller names the file). */
export async function readFileSource(
  spec: Extract<ConfigSourceSpec, { kind: "file" }>,
  cwd: string,
): Promise<ConfigEntry[]> {
  const path = resolve(cwd, spec.file);
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error("not a regular file");
    size = info.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot read it (${code ?? (err as Error).message})`);
  }
  if (size > maxConfigFileBytes) throw new Error(`larger than ${maxConfigFileBytes} bytes`);
  const text = await readFile(path, "utf8");
  const file = spec.file;

  if (spec.format === "env") {
    let lines: ReturnType<typeof parseDotenv>;
    try {
      lines = parseDotenv(text);
    } catch (err) {
      if (err instanceof DotenvSyntaxError) throw new Error(err.message);
      throw err;
    }
    return lines.map(({ key, value }) => {
      const prefix = key.toUpperCase().startsWith(defaultEnvPrefix) ? defaultEnvPrefix : "";
      const origin: Origin = { kind: "file", key, file };
      return { segments: keySegmentsOfVariable(key, prefix), value: envValue(value), originOf: () => origin };
    });
  }

  let tree: unknown;
  if (spec.format === "json") {
    try {
      tree = JSON.parse(text);
    } catch (err) {
      throw new Error(`not valid JSON (${(err as Error).message})`);
    }
  } else {
    tree = parseYamlConfig(text);
  }
  if (tree === null || tree === undefined) return []; // an empty file configures nothing
  if (typeof tree !== "object" || Array.isArray(tree)) throw new Error("the top level must be a mapping of keys");
  return [{ segments: [], value: tree, originOf: (segments) => ({ kind: "file", key: segments.join("."), file }) }];
}

function parseYamlConfig(text: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, merge: false });
  const error = doc.errors[0];
  if (error !== undefined) throw new Error(`not valid YAML (${firstLine(error.message)})`);
  try {
    return doc.toJS({ maxAliasCount: maxYamlAliases });
  } catch (err) {
    throw new Error(`not usable YAML (${firstLine((err as Error).message)})`);
  }
}

function firstLine(message: string): string {
  return (message.split("\n")[0] as string).replace(/:\s*$/, "");
}
