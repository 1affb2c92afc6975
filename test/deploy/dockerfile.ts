// Reads a Dockerfile into stages of instructions, by the Dockerfile reference's rules that this project's
// Dockerfile uses: `#` comment lines, `\` line continuations, instruction keywords case-insensitive, exec form
// (a JSON array) or shell form, and `--flag=value` options before the arguments.

export interface Instruction {
  keyword: string;
  /** Options given before the arguments (`--from=build` → from: "build"). */
  flags: Record<string, string>;
  /** The arguments as written (flags removed). */
  text: string;
  /** Exec form: the JSON array; shell form: undefined. */
  exec?: string[];
  line: number;
}

export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM (usable in FROM lines). */
  globalArgs: Map<string, string>;
  stages: Stage[];
}

function logicalLines(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let current: { line: number; text: string } | undefined;
  text.split("\n").forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith("#") || (trimmed === "" && current === undefined)) return;
    const continued = trimmed.endsWith("\\");
    const part = continued ? trimmed.slice(0, -1) : trimmed;
    if (current === undefined) current = { line: index + 1, text: part };
    else current.text += ` ${part}`;
    if (!continued) {
      out.push(current);
      current = undefined;
    }
  });
  if (current !== undefined) throw new SyntaxError(`line ${current.line}: a continuation runs past the end`);
  return out;
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const { line, text: body } of logicalLines(text)) {
    const match = /^(\S+)\s*(.*)$/.exec(body);
    if (match === null) continue;
    const keyword = (match[1] as string).toUpperCase();
    let rest = (match[2] as string).trim();
    const flags: Record<string, string> = {};
    for (let flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest); flag !== null; flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[flag[1] as string] = flag[2] as string;
      rest = rest.slice(flag[0].length);
    }
    let exec: string[] | undefined;
    const execText = keyword === "HEALTHCHECK" ? rest.replace(/^CMD\s+/, "") : rest;
    if (execText.startsWith("[")) {
      const parsed: unknown = JSON.parse(execText);
      if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === "string"))
        throw new SyntaxError(`line ${line}: ${keyword} exec form is not an array of strings`);
      exec = parsed;
    }
    const instruction: Instruction = { keyword, flags, text: rest, line, ...(exec !== undefined ? { exec } : {}) };
    if (keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (from === null) throw new SyntaxError(`line ${line}: FROM ${rest}`);
      stages.push({ from: from[1] as string, ...(from[2] !== undefined ? { name: from[2] } : {}), instructions: [] });
    } else if (stages.length === 0) {
      if (keyword !== "ARG") throw new SyntaxError(`line ${line}: ${keyword} before the first FROM`);
      const [name, value = ""] = rest.split("=", 2) as [string, string?];
      globalArgs.set(name, value);
    } else {
      (stages.at(-1) as Stage).instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/** The `KEY=value` pairs of ENV instructions (the `KEY=value …` form; values without spaces or quotes). */
export function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of stage.instructions.filter((x) => x.keyword === "ENV"))
    for (const pair of i.text.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new SyntaxError(`line ${i.line}: ENV ${pair} is not KEY=value`);
      env.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  return env;
}
