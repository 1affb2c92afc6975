// Configuration problems are gathered, not thrown one at a time: an operator fixing a long command line sees
// every mistake at once, one line each, naming the flag (or configuration key and source) and the problem.

import { AppError } from "../../errors.ts";

export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super("BadRequest", problems.join("\n"), { code: "CONFIG_INVALID" });
    this.name = "ConfigError";
    this.problems = Object.freeze([...problems]);
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError;
}

/** Where a setting's value came from: decides how problems name it. */
export type Origin =
  | { kind: "default" }
  | { kind: "flag"; spelling: string }
  | { kind: "file"; key: string; file: string }
  | { kind: "environment"; variable: string };

/** How a problem names the setting: "-http-port", "http.externalURL (in f.yaml)", "IF_HTTP_EXTERNALURL (environment)". */
export function describeOrigin(origin: Origin, canonicalKey: string): string {
  switch (origin.kind) {
    case "default":
      return `${canonicalKey} (default)`;
    case "flag":
      return origin.spelling;
    case "file":
      return `${origin.key} (in ${origin.file})`;
    case "environment":
      return `${origin.variable} (environment)`;
  }
}

export class Problems {
  readonly lines: string[] = [];

  add(line: string): void {
    // One line per problem, whatever a nested message contains.
    this.lines.push(line.replace(/\s*\n\s*/g, "; "));
  }

  get empty(): boolean {
    return this.lines.length === 0;
  }

  throwIfAny(): void {
    if (!this.empty) throw new ConfigError(this.lines);
  }
}
