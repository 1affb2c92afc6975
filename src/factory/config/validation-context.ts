// What every validation step shares: the settings, the problems found so far, and helpers that turn a bad
// value into a problem naming the setting (and its source) instead of an exception.

import { resolve } from "node:path";
import { isAppError } from "../../errors.ts";
import { FileProblem } from "../../signing/pem-files.ts";
import type { Problems } from "./problems.ts";
import type { SettingValues } from "./values.ts";

export interface ValidationContext {
  values: SettingValues;
  problems: Problems;
  cwd: string;
}

export function str(ctx: ValidationContext, key: string): string {
  return ctx.values.value<string>(key);
}

export function check<T>(ctx: ValidationContext, key: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: ${(err as Error).message}`);
    return undefined;
  }
}

export async function checkedFile<T>(
  ctx: ValidationContext,
  key: string,
  read: (path: string) => Promise<T>,
): Promise<T | undefined> {
  const given = str(ctx, key);
  const path = resolve(ctx.cwd, given);
  try {
    return await read(path);
  } catch (err) {
    if (err instanceof FileProblem || isAppError(err)) {
      ctx.problems.add(`${ctx.values.nameOf(key)} ${given}: ${(err as Error).message}`);
      return undefined;
    }
    throw err;
  }
}

export function positiveDuration(ctx: ValidationContext, key: string, allowZero = false): number | undefined {
  const ms = ctx.values.value<number>(key);
  if (ms < 0 || (!allowZero && ms === 0)) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: must be ${allowZero ? "zero or more" : "more than zero"}`);
    return undefined;
  }
  return ms;
}

export function intInRange(ctx: ValidationContext, key: string, min: number, max: number): number | undefined {
  const value = ctx.values.value<number>(key);
  if (value < min || value > max) {
    ctx.problems.add(`${ctx.values.nameOf(key)}: ${value} is not between ${min} and ${max}`);
    return undefined;
  }
  return value;
}
