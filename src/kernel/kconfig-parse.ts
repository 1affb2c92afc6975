// The Kconfig language (Documentation/kbuild/kconfig-language.rst in the kernel tree), as much as deciding
// which values `make olddefconfig` keeps needs: config/menuconfig entries with their type, prompts, defaults,
// `depends on`, `select`, `imply` and `range`; choice/endchoice; menu/endmenu with `depends on` and `visible if`;
// if/endif; `source "…"` (macro-expanded, e.g. arch/$(SRCARCH)/Kconfig). Dependencies are propagated as the
// kernel's menu_finalize() does: an entry's properties carry the dependencies of every block around it, and a
// `select`/`imply` adds "selector && condition" to its target's reverse dependencies. Help texts are skipped.

import { badRequest, tooLarge } from "../errors.ts";
import { type Atom, and, atomsOf, type Expr, or, parseExpr, type Token, tokenize, yes } from "./kconfig-expr.ts";
import { KconfigPreprocessor, type Position, unknowableMarker } from "./kconfig-preprocess.ts";

export type SymbolType = "bool" | "tristate" | "string" | "int" | "hex";

export interface Prompt {
  text: string;
  /** When the prompt shows: its `if`, the entry's dependencies and enclosing menus' `visible if`. */
  visible: Expr;
  at: Position;
}

export interface Default {
  value: Expr;
  /** Its `if` and the entry's dependencies. */
  visible: Expr;
  at: Position;
}

export interface Range {
  min: Atom;
  max: Atom;
  visible: Expr;
}

export interface KconfigSymbol {
  name: string;
  type: SymbolType | undefined;
  prompts: Prompt[];
  defaults: Default[];
  ranges: Range[];
  /** OR of each definition's dependencies (`depends on` and enclosing if/menu/choice). */
  dirDep: Expr | undefined;
  /** OR of "selector && condition" over every `select` of this symbol. */
  revDep: Expr | undefined;
  /** The same for `imply`. */
  implied: Expr | undefined;
  definitions: Position[];
  choice: KconfigChoice | undefined;
  /** Mentions `$(shell,…)` or an unknown environment variable: the toolchain decides its value. */
  unknowable: boolean;
}

export interface KconfigChoice {
  prompt: Prompt | undefined;
  dep: Expr;
  defaults: { symbol: string; visible: Expr }[];
  members: KconfigSymbol[];
  optional: boolean;
  at: Position;
}

export interface KconfigTree {
  symbols: Map<string, KconfigSymbol>;
  choices: KconfigChoice[];
  /** The symbol marked `modules` (MODULES): when it is n, tristates act as bools. */
  modules: string | undefined;
  files: number;
}

/** Reads a file of the tree by its path relative to the tree's top; refuses paths outside it. */
export type KconfigLoader = (path: string) => Promise<string>;

export const kconfigLimits = { maxFiles: 10_000, maxIncludeDepth: 32, maxLinesPerFile: 100_000 };

type Block =
  | { kind: "if"; dep: Expr }
  | { kind: "menu"; dep: Expr | undefined; visible: Expr | undefined }
  | { kind: "choice"; choice: KconfigChoice; dep: Expr | undefined };

interface ConfigEntry {
  kind: "config";
  symbol: KconfigSymbol;
  at: Position;
  depends: Expr[];
  prompts: { text: string; cond: Expr | undefined; at: Position }[];
  defaults: { value: Expr; cond: Expr | undefined; at: Position }[];
  selects: { target: string; cond: Expr | undefined; weak: boolean }[];
  ranges: { min: Atom; max: Atom; cond: Expr | undefined }[];
}

type Entry =
  | ConfigEntry
  | { kind: "choice"; block: Extract<Block, { kind: "choice" }>; at: Position; prompt?: { text: string; cond?: Expr } }
  | { kind: "menu"; block: Extract<Block, { kind: "menu" }> }
  | { kind: "comment" };

export async function parseKconfigTree(
  top: string,
  load: KconfigLoader,
  env: ReadonlyMap<string, string>,
): Promise<KconfigTree> {
  const parser = new Parser(load, env);
  await parser.file(top, 0);
  parser.finish();
  return parser.tree;
}

class Parser {
  readonly tree: KconfigTree = { symbols: new Map(), choices: [], modules: undefined, files: 0 };
  readonly #load: KconfigLoader;
  readonly #macros: KconfigPreprocessor;
  readonly #blocks: Block[] = [];
  #entry: Entry | undefined;

  constructor(load: KconfigLoader, env: ReadonlyMap<string, string>) {
    this.#load = load;
    this.#macros = new KconfigPreprocessor(env);
  }

  symbol(name: string): KconfigSymbol {
    let symbol = this.tree.symbols.get(name);
    if (symbol === undefined) {
      symbol = {
        name,
        type: undefined,
        prompts: [],
        defaults: [],
        ranges: [],
        dirDep: undefined,
        revDep: undefined,
        implied: undefined,
        definitions: [],
        choice: undefined,
        unknowable: false,
      };
      this.tree.symbols.set(name, symbol);
    }
    return symbol;
  }

  async file(path: string, depth: number): Promise<void> {
    if (depth > kconfigLimits.maxIncludeDepth)
      throw tooLarge(`${path}: "source" nests deeper than ${kconfigLimits.maxIncludeDepth} files`);
    if (++this.tree.files > kconfigLimits.maxFiles)
      throw tooLarge(`the Kconfig tree has more than ${kconfigLimits.maxFiles} files`);
    const lines = (await this.#load(path)).split("\n");
    if (lines.length > kconfigLimits.maxLinesPerFile)
      throw tooLarge(`${path}: more than ${kconfigLimits.maxLinesPerFile} lines`);
    const blocksAtStart = this.#blocks.length;
    let helpIndent: number | undefined; // inside a help text: undefined until its first line sets the indent
    let inHelp = false;
    for (let index = 0; index < lines.length; index++) {
      let raw = lines[index] as string;
      const at = { file: path, line: index + 1 };
      if (inHelp) {
        if (raw.trim() === "") continue;
        const indent = indentOf(raw);
        if (helpIndent === undefined) helpIndent = indent;
        if (indent >= helpIndent && indent > 0) continue;
        inHelp = false;
      }
      while (raw.endsWith("\\") && index + 1 < lines.length) raw = `${raw.slice(0, -1)}${lines[++index]}`;
      const text = stripComment(raw).trim();
      if (text === "") continue;
      const assignment = /^([A-Za-z0-9_-]+)\s*(:=|\+=|=)\s*(.*)$/.exec(text);
      if (assignment) {
        this.#macros.assign(assignment[1] as string, assignment[2] as ":=" | "=" | "+=", assignment[3] ?? "", at);
        continue;
      }
      const where = `${at.file}:${at.line}`;
      const tokens = tokenize(this.#macros.expand(text, at), where);
      const first = tokens[0];
      if (first === undefined) continue;
      if (first.kind !== "word") throw badRequest(`${where}: expected a keyword`);
      if (first.text === "help" || first.text === "---help---") {
        inHelp = true;
        helpIndent = undefined;
        continue;
      }
      await this.#line(first.text, tokens, at, where, depth);
    }
    this.#finishEntry();
    if (this.#blocks.length !== blocksAtStart)
      throw badRequest(`${path}: a menu, choice or if block is not closed in the file that opens it`);
  }

  async #line(keyword: string, tokens: Token[], at: Position, where: string, depth: number): Promise<void> {
    const entry = this.#entry;
    const word = (i: number): string => {
      const t = tokens[i];
      if (t === undefined || t.kind === "op") throw badRequest(`${where}: "${keyword}" needs an argument`);
      return t.text;
    };
    const condition = (i: number): Expr | undefined => {
      const t = tokens[i];
      if (t === undefined) return undefined;
      if (t.kind !== "word" || t.text !== "if") throw badRequest(`${where}: unexpected "${t.text}"`);
      return this.#expr(tokens, i + 1, where).expr;
    };
    switch (keyword) {
      case "config":
      case "menuconfig": {
        this.#finishEntry();
        const symbol = this.symbol(word(1));
        symbol.definitions.push(at);
        this.#entry = { kind: "config", symbol, at, depends: [], prompts: [], defaults: [], selects: [], ranges: [] };
        return;
      }
      case "choice": {
        this.#finishEntry();
        const choice: KconfigChoice = { prompt: undefined, dep: yes, defaults: [], members: [], optional: false, at };
        const block = { kind: "choice" as const, choice, dep: undefined };
        this.#blocks.push(block);
        this.tree.choices.push(choice);
        this.#entry = { kind: "choice", block, at };
        return;
      }
      case "menu": {
        this.#finishEntry();
        const block = { kind: "menu" as const, dep: undefined, visible: undefined };
        this.#blocks.push(block);
        this.#entry = { kind: "menu", block };
        return;
      }
      case "comment":
        this.#finishEntry();
        this.#entry = { kind: "comment" };
        return;
      case "if":
        this.#finishEntry();
        this.#blocks.push({ kind: "if", dep: this.#expr(tokens, 1, where).expr });
        return;
      case "endif":
      case "endmenu":
      case "endchoice": {
        this.#finishEntry();
        const block = this.#blocks.pop();
        if (block?.kind !== keyword.slice(3))
          throw badRequest(`${where}: "${keyword}" without its "${keyword.slice(3)}"`);
        return;
      }
      case "source": {
        this.#finishEntry();
        await this.file(word(1), depth + 1);
        return;
      }
      case "mainmenu":
        return;
    }
    if (entry === undefined || entry.kind === "comment") {
      if (keyword === "depends" && entry?.kind === "comment") return;
      throw badRequest(`${where}: "${keyword}" outside a config, choice or menu entry`);
    }
    if (entry.kind === "menu") {
      if (keyword === "depends") entry.block.dep = and(entry.block.dep, this.#expr(tokens, 2, where).expr);
      else if (keyword === "visible") entry.block.visible = and(entry.block.visible, this.#expr(tokens, 2, where).expr);
      else throw badRequest(`${where}: "${keyword}" does not apply to a menu`);
      return;
    }
    if (entry.kind === "choice") {
      const choice = entry.block.choice;
      switch (keyword) {
        case "bool":
        case "tristate":
        case "prompt":
          if (tokens[1]?.kind === "string") entry.prompt = { text: tokens[1].text, cond: condition(2) };
          return;
        case "depends":
          entry.block.dep = and(entry.block.dep, this.#expr(tokens, 2, where).expr);
          return;
        case "default":
          choice.defaults.push({ symbol: word(1), visible: condition(2) ?? yes });
          return;
        case "optional":
          choice.optional = true;
          return;
      }
      throw badRequest(`${where}: "${keyword}" does not apply to a choice`);
    }
    switch (keyword) {
      case "bool":
      case "boolean":
      case "tristate":
      case "string":
      case "int":
      case "hex":
        entry.symbol.type ??= keyword === "boolean" ? "bool" : keyword;
        if (tokens[1]?.kind === "string") entry.prompts.push({ text: tokens[1].text, cond: condition(2), at });
        else if (tokens[1] !== undefined) throw badRequest(`${where}: a prompt must be a quoted string`);
        return;
      case "def_bool":
      case "def_tristate": {
        entry.symbol.type ??= keyword === "def_bool" ? "bool" : "tristate";
        const { expr, next } = this.#expr(tokens, 1, where);
        entry.defaults.push({ value: expr, cond: condition(next), at });
        return;
      }
      case "prompt":
        if (tokens[1]?.kind !== "string") throw badRequest(`${where}: a prompt must be a quoted string`);
        entry.prompts.push({ text: tokens[1].text, cond: condition(2), at });
        return;
      case "default": {
        const { expr, next } = this.#expr(tokens, 1, where);
        entry.defaults.push({ value: expr, cond: condition(next), at });
        return;
      }
      case "depends":
        if (tokens[1]?.kind !== "word" || tokens[1].text !== "on") throw badRequest(`${where}: expected "depends on"`);
        entry.depends.push(this.#expr(tokens, 2, where).expr);
        return;
      case "select":
      case "imply":
        entry.selects.push({ target: word(1), cond: condition(2), weak: keyword === "imply" });
        return;
      case "range": {
        const { expr: min, next } = this.#expr(tokens, 1, where, true);
        const { expr: max, next: after } = this.#expr(tokens, next, where, true);
        entry.ranges.push({ min: min as Atom, max: max as Atom, cond: condition(after) });
        return;
      }
      case "modules":
        this.tree.modules = entry.symbol.name;
        return;
      case "option":
        if (tokens.some((t) => t.text === "modules")) this.tree.modules = entry.symbol.name;
        return;
      case "transitional":
      case "allnoconfig_y":
        return;
    }
    throw badRequest(`${where}: unknown Kconfig keyword "${keyword}"`);
  }

  #expr(tokens: readonly Token[], start: number, where: string, atomOnly = false): { expr: Expr; next: number } {
    if (atomOnly) {
      const t = tokens[start];
      if (t === undefined || t.kind === "op") throw badRequest(`${where}: expected a symbol`);
      return {
        expr: t.kind === "string" ? { kind: "constant", value: t.text } : { kind: "symbol", name: t.text },
        next: start + 1,
      };
    }
    return parseExpr(tokens, start, where);
  }

  /** The dependencies of everything inside the open blocks, and the menus' `visible if`. */
  #context(): { dep: Expr | undefined; visible: Expr | undefined; choice: KconfigChoice | undefined } {
    let dep: Expr | undefined;
    let visible: Expr | undefined;
    for (const block of this.#blocks) {
      dep = and(dep, block.dep);
      if (block.kind === "menu") visible = and(visible, block.visible);
    }
    // A choice's members are the entries inside it, if-blocks allowed between.
    const innermost = [...this.#blocks].reverse().find((b) => b.kind !== "if");
    return { dep, visible, choice: innermost?.kind === "choice" ? innermost.choice : undefined };
  }

  #finishEntry(): void {
    const entry = this.#entry;
    this.#entry = undefined;
    if (entry === undefined || entry.kind === "menu" || entry.kind === "comment") return;
    if (entry.kind === "choice") {
      // The choice's own block is still open: its dependencies are the context's.
      const { dep, visible } = this.#context();
      const choice = entry.block.choice;
      choice.dep = dep ?? yes;
      if (entry.prompt !== undefined)
        choice.prompt = {
          text: entry.prompt.text,
          visible: and(and(entry.prompt.cond, dep), visible) ?? yes,
          at: entry.at,
        };
      for (const d of choice.defaults) d.visible = and(d.visible, dep) ?? yes;
      return;
    }
    const context = this.#context();
    const dep = entry.depends.reduce<Expr | undefined>((acc, d) => and(acc, d), context.dep);
    const symbol = entry.symbol;
    symbol.dirDep = or(symbol.dirDep, dep ?? yes);
    const mentions = [
      ...(dep === undefined ? [] : [dep]),
      ...entry.prompts.flatMap((p) => (p.cond === undefined ? [] : [p.cond])),
      ...entry.defaults.flatMap((d) => [d.value, ...(d.cond === undefined ? [] : [d.cond])]),
    ];
    if (mentions.some(mentionsUnknowable)) symbol.unknowable = true;
    for (const p of entry.prompts)
      symbol.prompts.push({ text: p.text, visible: and(and(p.cond, dep), context.visible) ?? yes, at: p.at });
    for (const d of entry.defaults)
      symbol.defaults.push({ value: d.value, visible: and(d.cond, dep) ?? yes, at: d.at });
    for (const r of entry.ranges) symbol.ranges.push({ min: r.min, max: r.max, visible: and(r.cond, dep) ?? yes });
    for (const s of entry.selects) {
      const target = this.symbol(s.target);
      // A toolchain-decided selector's value already says whether its dependencies held (they mention $(shell,…)).
      const term = and({ kind: "symbol", name: symbol.name }, and(s.cond, symbol.unknowable ? undefined : dep)) as Expr;
      if (s.weak) target.implied = or(target.implied, term);
      else target.revDep = or(target.revDep, term);
      // `select X if $(cc-option,…)`: the toolchain decides X too.
      if (s.cond !== undefined && mentionsUnknowable(s.cond)) target.unknowable = true;
    }
    if (context.choice !== undefined && !context.choice.members.includes(symbol)) {
      symbol.choice = context.choice;
      context.choice.members.push(symbol);
    }
  }

  finish(): void {
    this.#finishEntry();
    if (this.#blocks.length > 0) throw badRequest("a menu, choice or if block is never closed");
  }
}

function mentionsUnknowable(expr: Expr): boolean {
  return [...atomsOf(expr)].some((a) => a.includes(unknowableMarker));
}

function indentOf(line: string): number {
  let width = 0;
  for (const c of line) {
    if (c === " ") width++;
    else if (c === "\t") width = (Math.floor(width / 8) + 1) * 8;
    else break;
  }
  return width;
}

/** Cuts a `#` comment, leaving `#` inside quotes or a `$(…)` reference alone. */
function stripComment(line: string): string {
  let quote: string | undefined;
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "$" && line[i + 1] === "(") {
      depth++;
      i++;
    } else if (c === "(" && depth > 0) depth++;
    else if (c === ")" && depth > 0) depth--;
    else if (c === "#" && depth === 0) return line.slice(0, i);
  }
  return line;
}
