// Which settings of a merged config `make olddefconfig` would not keep, and why: the symbol is unknown to the
// tree, its dependencies are unmet (naming the unmet part of the `depends on` expression with each symbol's
// value, as menuconfig shows them), it has no prompt (only defaults and `select` set it), a `select` forces it
// higher, or a choice picks another member.

import type { ConfigSetting } from "./config-file.ts";
import { KconfigEvaluator, type Tri, triName, userValueOf } from "./kconfig-eval.ts";
import { conjuncts, type Expr, formatExpr } from "./kconfig-expr.ts";
import type { KconfigSymbol, KconfigTree } from "./kconfig-parse.ts";

export interface DroppedSetting {
  setting: ConfigSetting;
  /** What olddefconfig writes instead: n/m/y, a value, or "(unknown symbol)". */
  result: string;
  reason: string;
}

export interface KconfigCheck {
  dropped: DroppedSetting[];
  /** Settings whose symbol the toolchain decides ($(shell,…)): not checked. */
  unchecked: ConfigSetting[];
  /** `# CONFIG_X is not set` for a symbol the tree does not define: harmless (it is n either way). */
  unknownUnset: ConfigSetting[];
  checked: number;
}

const maxReasonLength = 600;

function orTerms(expr: Expr): Expr[] {
  return expr.kind === "or" ? [...orTerms(expr.left), ...orTerms(expr.right)] : [expr];
}

export function checkAgainstKconfig(tree: KconfigTree, settings: readonly ConfigSetting[]): KconfigCheck {
  const evaluator = new KconfigEvaluator(tree, settings);
  const last = new Map<string, ConfigSetting>();
  for (const setting of settings) last.set(setting.symbol, setting);
  const result: KconfigCheck = { dropped: [], unchecked: [], unknownUnset: [], checked: 0 };
  const annotate = (name: string) => {
    if (name === "y" || name === "m" || name === "n") return undefined;
    const symbol = tree.symbols.get(name);
    return symbol?.type === undefined ? "n" : evaluator.text(name) || '""';
  };
  const show = (expr: Expr) => {
    const text = formatExpr(expr, annotate);
    return text.length > maxReasonLength ? `${text.slice(0, maxReasonLength)}…` : text;
  };
  for (const setting of last.values()) {
    const symbol = tree.symbols.get(setting.symbol);
    if (symbol === undefined || symbol.type === undefined) {
      if (setting.unset || setting.value === "n") result.unknownUnset.push(setting);
      else
        result.dropped.push({
          setting,
          result: "(unknown symbol)",
          reason: "this Kconfig tree defines no such symbol; olddefconfig drops it",
        });
      continue;
    }
    if (symbol.unknowable) {
      result.unchecked.push(setting);
      continue;
    }
    if (setting.unset && symbol.type !== "bool" && symbol.type !== "tristate") continue;
    result.checked++;
    const wanted = userValueOf(symbol, setting);
    if (wanted === undefined) {
      result.dropped.push({
        setting,
        result: evaluator.text(symbol.name),
        reason: `"${setting.value}" is not a value of a ${symbol.type} symbol; the config reader ignores it`,
      });
      continue;
    }
    if (wanted.tri !== undefined) {
      const actual = evaluator.tri(symbol.name);
      if (actual !== wanted.tri)
        result.dropped.push({ setting, result: triName(actual), reason: triReason(symbol, wanted.tri, actual) });
    } else {
      const actual = evaluator.written(symbol) ? evaluator.text(symbol.name) : "(not written)";
      if (actual !== wanted.text) result.dropped.push({ setting, result: actual, reason: textReason(symbol) });
    }
  }
  return result;

  function triReason(symbol: KconfigSymbol, wanted: Tri, actual: Tri): string {
    if (symbol.prompts.length === 0)
      return `it has no prompt: only its defaults and "select" set it${defaultsText(symbol)}`;
    if (actual > wanted) {
      const selectors =
        symbol.revDep === undefined ? [] : orTerms(symbol.revDep).filter((t) => evaluator.evalTri(t) > wanted);
      if (selectors.length > 0) return `selected by ${selectors.map(show).join(" || ")}`;
    }
    if (symbol.choice !== undefined && evaluator.visibility(symbol) === 2) {
      const picked = evaluator.selected(symbol.choice);
      const name = symbol.choice.prompt?.text ?? "choice";
      return picked === undefined ? `choice "${name}" picks no member` : `choice "${name}" picks CONFIG_${picked.name}`;
    }
    if (evaluator.visibility(symbol) < wanted) {
      if (evaluator.dirDep(symbol) < wanted && symbol.dirDep !== undefined) {
        const unmet = orTerms(symbol.dirDep).length > 1 ? [symbol.dirDep] : conjuncts(symbol.dirDep);
        const failing = unmet.filter((t) => evaluator.evalTri(t) < wanted);
        return `unmet dependency: depends on ${failing.map(show).join(" && ")}`;
      }
      const prompts = symbol.prompts.map((p) => show(p.visible)).join(" || ");
      return `its prompt is hidden: visible only if ${prompts}`;
    }
    return `olddefconfig computes ${triName(actual)}`;
  }

  function textReason(symbol: KconfigSymbol): string {
    if (symbol.prompts.length === 0) return `it has no prompt: only its defaults set it${defaultsText(symbol)}`;
    if (evaluator.visibility(symbol) === 0) {
      const deps =
        symbol.dirDep === undefined ? [] : conjuncts(symbol.dirDep).filter((t) => evaluator.evalTri(t) === 0);
      return deps.length > 0
        ? `unmet dependency: depends on ${deps.map(show).join(" && ")}`
        : `its prompt is hidden: visible only if ${symbol.prompts.map((p) => show(p.visible)).join(" || ")}`;
    }
    const range = symbol.ranges.find((r) => evaluator.evalTri(r.visible) !== 0);
    if (range !== undefined) {
      const bound = (a: Expr) =>
        a.kind === "symbol" ? evaluator.text(a.name) : a.kind === "constant" ? a.value : show(a);
      return `outside its range ${bound(range.min)}..${bound(range.max)}`;
    }
    return "olddefconfig computes another value";
  }

  function defaultsText(symbol: KconfigSymbol): string {
    const active = symbol.defaults.find((d) => evaluator.evalTri(d.visible) !== 0);
    const parts: string[] = [];
    if (active !== undefined) parts.push(`default ${show(active.value)}`);
    if (symbol.revDep !== undefined) {
      const on = orTerms(symbol.revDep).filter((t) => evaluator.evalTri(t) !== 0);
      if (on.length > 0) parts.push(`selected by ${on.map(show).join(" || ")}`);
    }
    return parts.length > 0 ? ` (${parts.join("; ")})` : " (no active default)";
  }
}
