// Symbol values as the kernel's Kconfig computes them when it reads a config and writes it back
// (`make olddefconfig`): scripts/kconfig/symbol.c, sym_calc_value() and sym_calc_visibility(). A value written
// in the config is a "user value"; it counts only when the symbol's prompt is visible, is capped by that
// visibility (a tristate depending on an `m` symbol can be at most `m`), and raised by `select`. A symbol
// without a visible prompt takes its first active default instead, whatever the config says. Symbols the
// toolchain decides (`$(shell,…)`, see kconfig-preprocess.ts) keep the config's value.

import type { ConfigSetting } from "./config-file.ts";
import type { CompareOp, Expr } from "./kconfig-expr.ts";
import type { KconfigChoice, KconfigSymbol, KconfigTree } from "./kconfig-parse.ts";

export type Tri = 0 | 1 | 2;

const triNames = ["n", "m", "y"] as const;
export const triName = (t: Tri): string => triNames[t];

interface UserValue {
  tri?: Tri;
  text?: string;
}

/** A config's value text as the config reader takes it for `symbol` (conf_set_sym_val), or undefined if invalid. */
export function userValueOf(
  symbol: KconfigSymbol,
  setting: Pick<ConfigSetting, "value" | "unset">,
): UserValue | undefined {
  const type = symbol.type;
  if (type === "bool" || type === "tristate") {
    if (setting.unset) return { tri: 0 };
    const c = setting.value[0];
    if (c === "m" && type === "tristate") return { tri: 1 };
    if (c === "y") return { tri: 2 };
    if (c === "n") return { tri: 0 };
    return undefined;
  }
  if (setting.unset || type === undefined) return undefined;
  const v = setting.value;
  if (type === "string") {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(v)) return undefined;
    return { text: v.slice(1, -1).replace(/\\(.)/g, "$1") };
  }
  if (type === "int") return /^-?\d+$/.test(v) ? { text: v } : undefined;
  return /^(?:0[xX])?[0-9a-fA-F]+$/.test(v) ? { text: v } : undefined;
}

export class KconfigEvaluator {
  readonly tree: KconfigTree;
  readonly #user = new Map<string, UserValue>();
  readonly #choiceUser = new Map<KconfigChoice, KconfigSymbol>();
  readonly #tri = new Map<string, Tri>();
  readonly #text = new Map<string, string>();
  readonly #visible = new Map<string, Tri>();
  readonly #selected = new Map<KconfigChoice, KconfigSymbol | undefined>();
  readonly #busy = new Set<string>();

  /** `settings`: the config's settings in file order (a later one replaces an earlier one, as the reader does). */
  constructor(tree: KconfigTree, settings: Iterable<ConfigSetting>) {
    this.tree = tree;
    for (const setting of settings) {
      const symbol = tree.symbols.get(setting.symbol);
      if (symbol === undefined || symbol.type === undefined) continue;
      const value = userValueOf(symbol, setting);
      if (value === undefined) continue;
      this.#user.set(symbol.name, value);
      // The last member set to y picks the choice ("changes choice state").
      if (symbol.choice !== undefined && value.tri === 2) this.#choiceUser.set(symbol.choice, symbol);
    }
  }

  #modulesOff(): boolean {
    return this.tree.modules === undefined || this.tri(this.tree.modules) === 0;
  }

  /** bool, or tristate when modules are on. */
  #isTristate(symbol: KconfigSymbol): boolean {
    return symbol.type === "tristate" && !this.#modulesOff();
  }

  #boolify(symbol: KconfigSymbol, t: Tri): Tri {
    return t === 1 && !this.#isTristate(symbol) ? 2 : t;
  }

  visibility(symbol: KconfigSymbol): Tri {
    const cached = this.#visible.get(symbol.name);
    if (cached !== undefined) return cached;
    let t: Tri = 0;
    for (const prompt of symbol.prompts) t = Math.max(t, this.evalTri(prompt.visible)) as Tri;
    if (t === 1 && !this.#isTristate(symbol)) t = 2;
    this.#visible.set(symbol.name, t);
    return t;
  }

  dirDep(symbol: KconfigSymbol): Tri {
    return this.#boolify(symbol, symbol.dirDep === undefined ? 2 : this.evalTri(symbol.dirDep));
  }

  revDep(symbol: KconfigSymbol): Tri {
    return symbol.revDep === undefined ? 0 : this.#boolify(symbol, this.evalTri(symbol.revDep));
  }

  /** The member a choice ends up with: the config's pick if visible, else its first active default, else the first visible member. */
  selected(choice: KconfigChoice): KconfigSymbol | undefined {
    if (this.#selected.has(choice)) return this.#selected.get(choice);
    this.#selected.set(choice, undefined); // a cycle through the choice resolves to "none"
    let pick: KconfigSymbol | undefined;
    const user = this.#choiceUser.get(choice);
    if (user !== undefined && this.visibility(user) !== 0) pick = user;
    else if (!choice.optional || user !== undefined) {
      for (const d of choice.defaults) {
        if (this.evalTri(d.visible) === 0) continue;
        const member = this.tree.symbols.get(d.symbol);
        if (member !== undefined && this.visibility(member) !== 0) {
          pick = member;
          break;
        }
      }
      pick ??= choice.members.find((m) => this.visibility(m) !== 0);
    }
    if (choice.optional && user === undefined) pick = undefined;
    this.#selected.set(choice, pick);
    return pick;
  }

  /** The symbol's tristate value (n for strings and unknown symbols). */
  tri(name: string): Tri {
    if (name === "y") return 2;
    if (name === "m") return 1;
    if (name === "n") return 0;
    const cached = this.#tri.get(name);
    if (cached !== undefined) return cached;
    const symbol = this.tree.symbols.get(name);
    if (symbol === undefined || (symbol.type !== "bool" && symbol.type !== "tristate")) return 0;
    if (this.#busy.has(name)) return 0; // a dependency loop (Kconfig refuses them): take n, as an unfinished value
    this.#busy.add(name);
    const value = this.#calcTri(symbol);
    this.#busy.delete(name);
    this.#tri.set(name, value);
    return value;
  }

  #calcTri(symbol: KconfigSymbol): Tri {
    if (symbol.unknowable) return this.#boolify(symbol, this.#user.get(symbol.name)?.tri ?? 0);
    const visible = this.visibility(symbol);
    if (symbol.choice !== undefined && visible === 2) return this.selected(symbol.choice) === symbol ? 2 : 0;
    let value: Tri = 0;
    const user = this.#user.get(symbol.name);
    if (visible !== 0 && user?.tri !== undefined) value = Math.min(user.tri, visible) as Tri;
    else {
      const def = symbol.defaults.find((d) => this.evalTri(d.visible) !== 0);
      if (def !== undefined) value = Math.min(this.evalTri(def.value), this.evalTri(def.visible)) as Tri;
      if (symbol.implied !== undefined) {
        const implied = this.#boolify(symbol, this.evalTri(symbol.implied));
        if (implied !== 0) value = Math.min(Math.max(value, implied), this.dirDep(symbol)) as Tri;
      }
    }
    value = Math.max(value, this.revDep(symbol)) as Tri;
    return this.#boolify(symbol, value);
  }

  /** The symbol's value as text: n/m/y, a string's contents, a number; an undefined symbol's is its name. */
  text(name: string): string {
    const symbol = this.tree.symbols.get(name);
    if (name === "y" || name === "m" || name === "n") return name;
    if (symbol === undefined || symbol.type === undefined) return name;
    if (symbol.type === "bool" || symbol.type === "tristate") return triName(this.tri(name));
    const cached = this.#text.get(name);
    if (cached !== undefined) return cached;
    if (this.#busy.has(name)) return "";
    this.#busy.add(name);
    const value = this.#calcText(symbol);
    this.#busy.delete(name);
    this.#text.set(name, value);
    return value;
  }

  /**
   * Whether olddefconfig writes a string/int/hex symbol at all (SYMBOL_WRITE): only when its prompt is visible
   * or a default is active; otherwise the value is lost.
   */
  written(symbol: KconfigSymbol): boolean {
    if (symbol.type === "bool" || symbol.type === "tristate") return true;
    if (symbol.unknowable) return this.#user.has(symbol.name);
    return this.visibility(symbol) !== 0 || symbol.defaults.some((d) => this.evalTri(d.visible) !== 0);
  }

  #calcText(symbol: KconfigSymbol): string {
    const user = this.#user.get(symbol.name)?.text;
    if (symbol.unknowable) return user ?? "";
    let value = "";
    if (this.visibility(symbol) !== 0 && user !== undefined) value = user;
    else {
      const def = symbol.defaults.find((d) => this.evalTri(d.visible) !== 0);
      if (def !== undefined) value = this.#atomText(def.value);
    }
    if (symbol.type === "int" || symbol.type === "hex") {
      const range = symbol.ranges.find((r) => this.evalTri(r.visible) !== 0);
      if (range !== undefined) {
        const base = symbol.type === "hex" ? 16 : 10;
        const parse = (text: string) => Number.parseInt(text.replace(/^0[xX]/, ""), base) || 0;
        const n = parse(value);
        const min = this.#atomText(range.min);
        const max = this.#atomText(range.max);
        if (n < parse(min)) value = min;
        else if (n > parse(max)) value = max;
      }
    }
    return value;
  }

  #atomText(expr: Expr): string {
    if (expr.kind === "constant") return expr.value;
    if (expr.kind === "symbol") return this.text(expr.name);
    return triName(this.evalTri(expr));
  }

  #atomType(expr: Expr): KconfigSymbol["type"] {
    if (expr.kind !== "symbol") return undefined;
    if (expr.name === "y" || expr.name === "m" || expr.name === "n") return "tristate";
    return this.tree.symbols.get(expr.name)?.type;
  }

  evalTri(expr: Expr): Tri {
    switch (expr.kind) {
      case "symbol":
        return this.tri(expr.name);
      case "constant":
        return expr.value === "y" ? 2 : expr.value === "m" ? 1 : 0;
      case "not":
        return (2 - this.evalTri(expr.operand)) as Tri;
      case "and":
        return Math.min(this.evalTri(expr.left), this.evalTri(expr.right)) as Tri;
      case "or":
        return Math.max(this.evalTri(expr.left), this.evalTri(expr.right)) as Tri;
      case "compare":
        return this.#compare(expr.op, expr.left, expr.right) ? 2 : 0;
    }
  }

  // expr_calc_value()'s comparison: numbers compare as numbers when both sides parse (by type), else as text.
  #compare(op: CompareOp, left: Expr, right: Expr): boolean {
    const a = this.#atomText(left);
    const b = this.#atomText(right);
    const ta = this.#atomType(left);
    const tb = this.#atomType(right);
    let res: number;
    const na = ta === "string" && tb === "string" ? undefined : parseNumber(a, ta);
    const nb = ta === "string" && tb === "string" ? undefined : parseNumber(b, tb);
    if (na === undefined || nb === undefined) res = a === b ? 0 : a < b ? -1 : 1;
    else res = na === nb ? 0 : na < nb ? -1 : 1;
    switch (op) {
      case "=":
        return res === 0;
      case "!=":
        return res !== 0;
      case "<":
        return res < 0;
      case "<=":
        return res <= 0;
      case ">":
        return res > 0;
      case ">=":
        return res >= 0;
    }
  }
}

function parseNumber(text: string, type: KconfigSymbol["type"]): bigint | undefined {
  if (type === "bool" || type === "tristate") return BigInt(["n", "m", "y"].indexOf(text));
  try {
    if (type === "hex")
      return /^(?:0[xX])?[0-9a-fA-F]+$/.test(text)
        ? BigInt(text.startsWith("0") && /^0[xX]/.test(text) ? text : `0x${text}`)
        : undefined;
    if (/^[+-]?\d+$/.test(text)) return BigInt(text);
    if (type !== "int" && /^0[xX][0-9a-fA-F]+$/.test(text)) return BigInt(text);
  } catch {
    return undefined;
  }
  return undefined;
}
