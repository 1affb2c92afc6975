// A command-line parser with Go's `flag` package rules, because the factory's legacy command lines (and the
// seed deployment) were written for it:
//   - a flag is `-name` or `--name` (one or two dashes mean the same), its value `-name=value` or
//     `-name value`; a non-boolean flag takes the next argument as its value whatever it looks like;
//   - a boolean flag is `-name` (true) or `-name=VALUE` with strconv.ParseBool's spellings; it never takes
//     the next argument, so `-name false` leaves "false" as a positional argument;
//   - parsing stops at the first non-flag argument ("-" alone counts as one) or after `--`;
//   - an undefined flag, a missing value or a malformed flag is an error naming it.
// Unlike Go, the occurrences are returned in order (not stored into variables), so the caller decides what
// repeating a flag means and applies command-line flags and configuration sources in the order given.

export type GoFlagKind = "bool" | "value";

export interface GoFlagDefinition {
  name: string;
  kind: GoFlagKind;
}

export interface GoFlagOccurrence {
  name: string;
  /** As the operator wrote it, e.g. "--data-dir" or "-http-port": error messages use this spelling. */
  spelling: string;
  /** The value; for a boolean flag "true"/"false" already checked by parseGoBool. */
  value: string;
}

export interface GoFlagParseResult {
  flags: GoFlagOccurrence[];
  /** Arguments after parsing stopped (the first non-flag argument, or everything after `--`). */
  positional: string[];
  /** `-h`, `-help` or `--help` was given (and neither is a defined flag). */
  help: boolean;
}

export class GoFlagError extends Error {}

const trueSpellings = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const falseSpellings = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/** strconv.ParseBool: exactly these spellings, nothing else (no "yes", no "on", no surrounding spaces). */
export function parseGoBool(text: string): boolean | undefined {
  if (trueSpellings.has(text)) return true;
  if (falseSpellings.has(text)) return false;
  return undefined;
}

function shown(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

export function parseGoFlags(args: readonly string[], definitions: readonly GoFlagDefinition[]): GoFlagParseResult {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const result: GoFlagParseResult = { flags: [], positional: [], help: false };
  let index = 0;
  while (index < args.length) {
    const arg = args[index] as string;
    if (arg.length < 2 || !arg.startsWith("-")) break; // "x" or "-": the first positional argument
    index++;
    let dashes = 1;
    if (arg[1] === "-") {
      dashes = 2;
      if (arg.length === 2) {
        result.positional = args.slice(index);
        return result; // "--" ends the flags
      }
    }
    const body = arg.slice(dashes);
    if (body === "" || body.startsWith("-") || body.startsWith("="))
      throw new GoFlagError(`bad flag syntax: ${shown(arg)}`);
    const equals = body.indexOf("=");
    const name = equals === -1 ? body : body.slice(0, equals);
    const inlineValue = equals === -1 ? undefined : body.slice(equals + 1);
    const spelling = `${"-".repeat(dashes)}${name}`;

    const definition = byName.get(name);
    if (definition === undefined) {
      if (name === "help" || name === "h") {
        result.help = true;
        continue;
      }
      throw new GoFlagError(`flag provided but not defined: ${spelling}`);
    }

    if (definition.kind === "bool") {
      let value = true;
      if (inlineValue !== undefined) {
        const parsed = parseGoBool(inlineValue);
        if (parsed === undefined)
          throw new GoFlagError(
            `invalid boolean value ${shown(inlineValue)} for flag ${spelling}: use ${spelling}, ${spelling}=true or ${spelling}=false`,
          );
        value = parsed;
      }
      result.flags.push({ name, spelling, value: String(value) });
      continue;
    }

    let value = inlineValue;
    if (value === undefined) {
      if (index >= args.length) throw new GoFlagError(`flag needs an argument: ${spelling}`);
      value = args[index] as string;
      index++;
    }
    result.flags.push({ name, spelling, value });
  }
  result.positional = args.slice(index);
  return result;
}
