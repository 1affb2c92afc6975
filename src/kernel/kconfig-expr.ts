// Kconfig expressions (Documentation/kbuild/kconfig-language.rst, "Menu dependencies"): symbols, quoted
// constants, `=`/`!=`/`<`/`<=`/`>`/`>=` between two symbols, `!`, `&&`, `||` and parentheses, in that
// precedence. Tokenizing a whole (already macro-expanded) line is here too: words, quoted strings, operators.

import { badRequest } from "../errors.ts";

export type CompareOp = "=" | "!=" | "<" | "<=" | ">" | ">=";

export type Expr =
  | { kind: "symbol"; name: string }
  | { kind: "constant"; value: string }
  | { kind: "not"; operand: Expr }
  | { kind: "and" | "or"; left: Expr; right: Expr }
  | { kind: "compare"; op: CompareOp; left: Atom; right: Atom };

export type Atom = Extract<Expr, { kind: "symbol" | "constant" }>;

export type Token = { kind: "word"; text: string } | { kind: "string"; text: string } | { kind: "op"; text: string };

const maxExprDepth = 256;
const operators = ["&&", "||", "!=", "<=", ">=", "=", "<", ">", "!", "(", ")"];

/** Splits a macro-expanded line into tokens; `#` outside quotes starts a comment. */
export function tokenize(line: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === "#") break;
    if (c === '"' || c === "'") {
      let text = "";
      let j = i + 1;
      for (; j < line.length && line[j] !== c; j++) {
        if (line[j] === "\\" && j + 1 < line.length) j++;
        text += line[j];
      }
      if (j >= line.length) throw badRequest(`${where}: unterminated string`);
      tokens.push({ kind: "string", text });
      i = j + 1;
      continue;
    }
    const op = operators.find((o) => line.startsWith(o, i));
    if (op !== undefined) {
      tokens.push({ kind: "op", text: op });
      i += op.length;
      continue;
    }
    let j = i;
    while (j < line.length && /[A-Za-z0-9_\-./$+]/.test(line[j] as string)) j++;
    if (j === i) throw badRequest(`${where}: unexpected character "${c}"`);
    tokens.push({ kind: "word", text: line.slice(i, j) });
    i = j;
  }
  return tokens;
}

/** Parses an expression from tokens[start…]; stops before a bare `if` or the end. */
export function parseExpr(tokens: readonly Token[], start: number, where: string): { expr: Expr; next: number } {
  let pos = start;
  const peek = () => tokens[pos];
  const isOp = (text: string) => {
    const t = peek();
    return t?.kind === "op" && t.text === text;
  };
  const atom = (): Atom => {
    const t = peek();
    if (t === undefined || t.kind === "op" || (t.kind === "word" && t.text === "if"))
      throw badRequest(`${where}: expected a symbol in the expression`);
    pos++;
    return t.kind === "string" ? { kind: "constant", value: t.text } : { kind: "symbol", name: t.text };
  };
  const primary = (depth: number): Expr => {
    if (depth > maxExprDepth) throw badRequest(`${where}: expression nested deeper than ${maxExprDepth}`);
    if (isOp("!")) {
      pos++;
      return { kind: "not", operand: primary(depth + 1) };
    }
    if (isOp("(")) {
      pos++;
      const inner = or(depth + 1);
      if (!isOp(")")) throw badRequest(`${where}: missing ")"`);
      pos++;
      return inner;
    }
    const left = atom();
    const t = peek();
    if (t?.kind === "op" && ["=", "!=", "<", "<=", ">", ">="].includes(t.text)) {
      pos++;
      return { kind: "compare", op: t.text as CompareOp, left, right: atom() };
    }
    return left;
  };
  const and = (depth: number): Expr => {
    let left = primary(depth);
    while (isOp("&&")) {
      pos++;
      left = { kind: "and", left, right: primary(depth) };
    }
    return left;
  };
  const or = (depth: number): Expr => {
    let left = and(depth);
    while (isOp("||")) {
      pos++;
      left = { kind: "or", left, right: and(depth) };
    }
    return left;
  };
  const expr = or(0);
  return { expr, next: pos };
}

export const yes: Expr = { kind: "symbol", name: "y" };

export function and(left: Expr | undefined, right: Expr | undefined): Expr | undefined {
  if (left === undefined) return right;
  if (right === undefined) return left;
  return { kind: "and", left, right };
}

export function or(left: Expr | undefined, right: Expr | undefined): Expr | undefined {
  if (left === undefined) return right;
  if (right === undefined) return left;
  return { kind: "or", left, right };
}

/** The top-level `&&` terms of an expression. */
export function conjuncts(expr: Expr): Expr[] {
  return expr.kind === "and" ? [...conjuncts(expr.left), ...conjuncts(expr.right)] : [expr];
}

/** Every symbol and constant text an expression mentions. */
export function* atomsOf(expr: Expr): Generator<string> {
  switch (expr.kind) {
    case "symbol":
      yield expr.name;
      return;
    case "constant":
      yield expr.value;
      return;
    case "not":
      yield* atomsOf(expr.operand);
      return;
    case "compare":
      yield* atomsOf(expr.left);
      yield* atomsOf(expr.right);
      return;
    default:
      yield* atomsOf(expr.left);
      yield* atomsOf(expr.right);
  }
}

/** Kconfig's own notation, each symbol followed by ` [=value]` when `annotate` gives one (as menuconfig shows). */
export function formatExpr(expr: Expr, annotate?: (name: string) => string | undefined, parentPrec = 0): string {
  const atom = (a: Atom) => {
    if (a.kind === "constant") return JSON.stringify(a.value);
    const value = annotate?.(a.name);
    return value === undefined ? a.name : `${a.name} [=${value}]`;
  };
  switch (expr.kind) {
    case "symbol":
    case "constant":
      return atom(expr);
    case "not":
      return `!${formatExpr(expr.operand, annotate, 3)}`;
    case "compare":
      return `${atom(expr.left)}${expr.op}${atom(expr.right)}`;
    case "and": {
      const text = `${formatExpr(expr.left, annotate, 2)} && ${formatExpr(expr.right, annotate, 2)}`;
      return parentPrec > 2 ? `(${text})` : text;
    }
    case "or": {
      const text = `${formatExpr(expr.left, annotate, 1)} || ${formatExpr(expr.right, annotate, 1)}`;
      return parentPrec > 1 ? `(${text})` : text;
    }
  }
}
