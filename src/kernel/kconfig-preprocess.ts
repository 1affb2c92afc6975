// The Kconfig macro language (Documentation/kbuild/kconfig-macro-language.rst in the kernel tree): `X := v`
// (expanded once), `X = v` (expanded at each use, `$(1)`… its arguments), `X += v`, and `$(name,arg,…)`
// references, which also read environment variables. `$(shell,…)` is never run: its result depends on the
// build machine's compiler and tools, so it expands to a marker word, and every Kconfig symbol whose
// properties mention the marker is "toolchain-dependent": its value is taken from the config as written.

import { badRequest } from "../errors.ts";

/** What `$(shell,…)` and unknown environment variables expand to; never a real symbol name. */
export const unknowableMarker = "__KCONFIG_UNKNOWABLE__";

const maxExpansionDepth = 64;
const maxExpandedLength = 1024 * 1024;

interface Variable {
  recursive: boolean;
  value: string;
}

export interface Position {
  file: string;
  line: number;
}

export class KconfigPreprocessor {
  readonly #variables = new Map<string, Variable>();
  readonly #env: ReadonlyMap<string, string>;

  /** `env`: the environment Kconfig is run with (ARCH, SRCARCH…); any other variable is unknowable. */
  constructor(env: ReadonlyMap<string, string>) {
    this.#env = env;
  }

  /** `NAME := value`, `NAME = value`, `NAME += value`. */
  assign(name: string, flavor: ":=" | "=" | "+=", raw: string, at: Position): void {
    if (flavor === "+=") {
      const existing = this.#variables.get(name);
      if (existing !== undefined) {
        const added = existing.recursive ? raw : this.expand(raw, at);
        existing.value = existing.value === "" ? added : `${existing.value} ${added}`;
        return;
      }
      this.#variables.set(name, { recursive: true, value: raw });
      return;
    }
    this.#variables.set(
      name,
      flavor === ":=" ? { recursive: false, value: this.expand(raw, at) } : { recursive: true, value: raw },
    );
  }

  expand(text: string, at: Position): string {
    const out = this.#expand(text, at, [], 0);
    if (out.length > maxExpandedLength)
      throw badRequest(`${at.file}:${at.line}: a macro expands to more than ${maxExpandedLength} characters`);
    return out;
  }

  #expand(text: string, at: Position, args: readonly string[], depth: number): string {
    if (!text.includes("$(")) return text;
    if (depth > maxExpansionDepth)
      throw badRequest(`${at.file}:${at.line}: macros nest deeper than ${maxExpansionDepth} levels`);
    let out = "";
    let i = 0;
    while (i < text.length) {
      if (text[i] === "$" && text[i + 1] === "(") {
        const { parts, end } = splitReference(text, i + 2, at);
        const expanded = parts.map((part) => this.#expand(part, at, args, depth + 1));
        out += this.#call(expanded, at, args, depth);
        if (out.length > maxExpandedLength)
          throw badRequest(`${at.file}:${at.line}: a macro expands to more than ${maxExpandedLength} characters`);
        i = end + 1;
      } else {
        out += text[i];
        i++;
      }
    }
    return out;
  }

  #call(parts: readonly string[], at: Position, args: readonly string[], depth: number): string {
    const [name = "", ...params] = parts;
    switch (name) {
      case "shell":
        return unknowableMarker;
      case "info":
      case "warning":
      case "warning-if":
      case "error-if":
        return "";
      case "filename":
        return at.file;
      case "lineno":
        return String(at.line);
    }
    if (/^[1-9]\d*$/.test(name) && params.length === 0) return args[Number(name) - 1] ?? "";
    const variable = this.#variables.get(name);
    if (variable !== undefined)
      return variable.recursive ? this.#expand(variable.value, at, params, depth + 1) : variable.value;
    if (params.length === 0) return this.#env.get(name) ?? unknowableMarker;
    throw badRequest(`${at.file}:${at.line}: unknown macro function "${name}"`);
  }
}

/** From just after `$(` to its `)`: the comma-separated parts at the outer level, and the index of `)`. */
function splitReference(text: string, start: number, at: Position): { parts: string[]; end: number } {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") {
      if (depth === 0) {
        parts.push(current);
        return { parts, end: i };
      }
      depth--;
    } else if (c === "," && depth === 0) {
      parts.push(current);
      current = "";
      continue;
    }
    current += c;
  }
  throw badRequest(`${at.file}:${at.line}: unterminated "$(" reference`);
}
