// `boot-assets factory [flags…]` → FactoryConfig. The command line is read with Go's flag rules; then the
// sources are applied in order — defaults, `env=IF_`, and the command line from left to right (each
// `--config` source and each legacy flag where it stands; later wins) — and the result validated.

import { validateSettings } from "./config.ts";
import { factoryFlags, factoryUsage } from "./flags.ts";
import { GoFlagError, parseGoBool, parseGoFlags } from "./go-flags.ts";
import type { FactoryConfig } from "./model.ts";
import { ConfigError, Problems } from "./problems.ts";
import {
  type ConfigEntry,
  defaultEnvPrefix,
  parseConfigSpecs,
  readEnvironmentSource,
  readFileSource,
} from "./sources.ts";
import { SettingValues } from "./values.ts";

export type FactoryCommandLine =
  | { help: true; usage: string }
  | { help: false; config: FactoryConfig; checkOnly: boolean; testbed: boolean };

export interface FactoryCommandLineOptions {
  /** Directory relative paths are resolved against; default process.cwd(). */
  cwd?: string;
}

function positionalProblem(
  positional: readonly string[],
  lastFlag: string | undefined,
  afterTerminator: boolean,
): string {
  const first = JSON.stringify(positional[0]);
  if (afterTerminator) return `unexpected argument ${first} after "--": the factory takes no positional arguments`;
  const lastIsBool = lastFlag !== undefined && factoryFlags.get(lastFlag.replace(/^-+/, ""))?.kind === "bool";
  if (lastIsBool && parseGoBool(positional[0] as string) !== undefined)
    return `unexpected argument ${first}: a boolean flag takes its value after "=", e.g. ${lastFlag}=${positional[0]} (Go flag rules; everything after ${first} was not read)`;
  return `unexpected argument ${first}: the factory takes no positional arguments (everything from ${first} on was not read)`;
}

export async function readFactoryCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  options: FactoryCommandLineOptions = {},
): Promise<FactoryCommandLine> {
  const cwd = options.cwd ?? process.cwd();
  let parsed: ReturnType<typeof parseGoFlags>;
  try {
    parsed = parseGoFlags(argv, [...factoryFlags.values()]);
  } catch (err) {
    if (err instanceof GoFlagError) throw new ConfigError([err.message]);
    throw err;
  }
  if (parsed.help) return { help: true, usage: factoryUsage() };
  if (parsed.positional.length > 0) {
    const consumed = argv.length - parsed.positional.length;
    const afterTerminator = consumed > 0 && argv[consumed - 1] === "--";
    throw new ConfigError([positionalProblem(parsed.positional, parsed.flags.at(-1)?.spelling, afterTerminator)]);
  }

  const values = new SettingValues();
  const problems = new Problems(); // values that do not fit their setting
  const sourceProblems = new Problems(); // sources that could not be read at all
  const apply = (entries: ConfigEntry[]) => {
    for (const entry of entries) values.applyConfigEntry(entry, problems);
  };
  apply(readEnvironmentSource(defaultEnvPrefix, env));

  let checkOnly = false;
  let testbed = false;
  for (const occurrence of parsed.flags) {
    const flag = factoryFlags.get(occurrence.name);
    if (flag === undefined) throw new Error(`flag ${occurrence.name} parsed but not in the table`); // a bug
    const { target } = flag;
    switch (target.kind) {
      case "check-config":
        checkOnly = occurrence.value === "true";
        break;
      case "testbed":
        testbed = occurrence.value === "true";
        break;
      case "setting":
        values.setFromFlag(target.setting, occurrence.spelling, occurrence.value, problems);
        break;
      case "repository":
        values.setRepositoryFromFlag(target.group, occurrence.spelling, occurrence.value);
        break;
      case "config": {
        let specs: ReturnType<typeof parseConfigSpecs>;
        try {
          specs = parseConfigSpecs(occurrence.value);
        } catch (err) {
          sourceProblems.add(`${occurrence.spelling}: ${(err as Error).message}`);
          break;
        }
        for (const spec of specs) {
          if (spec.kind === "env") {
            apply(readEnvironmentSource(spec.prefix, env));
            continue;
          }
          try {
            apply(await readFileSource(spec, cwd));
          } catch (err) {
            sourceProblems.add(`${occurrence.spelling} ${spec.file}: ${(err as Error).message}`);
          }
        }
        break;
      }
    }
  }
  // A source that could not be read stops here: validating without its settings would only add noise.
  if (!sourceProblems.empty) throw new ConfigError([...sourceProblems.lines, ...problems.lines]);
  return { help: false, config: await validateSettings(values, { cwd, problems }), checkOnly, testbed };
}

/** Parses and validates the factory's command line (flags, `--config` sources, `IF_` environment). */
export async function parseFactoryCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  options: FactoryCommandLineOptions = {},
): Promise<FactoryConfig> {
  const result = await readFactoryCommandLine(argv, env, options);
  if (result.help) throw new ConfigError(["-help: usage was asked for, not a configuration"]);
  return result.config;
}

export type { FactoryConfig } from "./model.ts";
export { ConfigError, isConfigError } from "./problems.ts";
