// The two limits of asset cache garbage collection, as operators write them: an age (`30d`, `36h`, any Go
// duration, plus whole days, which Go's syntax lacks) and a size (`50GiB`, `500MB`, `1T`, bytes).
// Empty means "no limit".

import { DurationSyntaxError, parseGoDurationNanoseconds } from "./go-duration.ts";

const dayMs = 24 * 60 * 60 * 1000;

/** An age in milliseconds, or undefined for "" (no limit); throws with the reason. */
export function parseAge(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const days = /^(\d{1,6})d$/.exec(trimmed);
  let ms: number;
  if (days) ms = Number(days[1]) * dayMs;
  else {
    try {
      ms = Number(parseGoDurationNanoseconds(trimmed) / 1_000_000n);
    } catch (err) {
      if (err instanceof DurationSyntaxError)
        throw new Error(`invalid age ${JSON.stringify(trimmed)}: expected e.g. 30d, 36h or 90m`);
      throw err;
    }
  }
  if (ms <= 0) throw new Error(`invalid age ${JSON.stringify(trimmed)}: must be more than zero`);
  return ms;
}

const units: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** A size in bytes, or undefined for "" (no limit); throws with the reason. */
export function parseSize(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const match = /^(\d{1,15}(?:\.\d{1,6})?)\s*([a-zA-Z]{0,3})$/.exec(trimmed);
  const unit = units[match?.[2]?.toLowerCase() ?? "?"];
  if (!match || unit === undefined)
    throw new Error(`invalid size ${JSON.stringify(trimmed)}: expected e.g. 50GiB, 500MB or 1T`);
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes <= 0) throw new Error(`invalid size ${JSON.stringify(trimmed)}: must be more than zero`);
  return bytes;
}
