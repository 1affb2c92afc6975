// Go's time.ParseDuration, so `-talos-versions-recheck-interval 1h30m` and `negativeTTL: 300ms` mean here what
// they mean to the upstream factory: a sequence of decimal numbers, each with an optional fraction and a
// unit (ns, us/µs/μs, ms, s, m, h), e.g. "15m", "1h30m", "1.5h", ".5s", "-2m"; "0" alone needs no unit.
// No spaces, no days, and the total must fit Go's int64 nanoseconds.

const nanosecondsPerUnit: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek small letter mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const maxNanoseconds = 2n ** 63n - 1n;
const maxDurationText = 64;

export class DurationSyntaxError extends Error {}

/** Parses a Go duration to nanoseconds; throws DurationSyntaxError with Go's wording. */
export function parseGoDurationNanoseconds(text: string): bigint {
  const quoted = JSON.stringify(text.length > maxDurationText ? `${text.slice(0, maxDurationText)}…` : text);
  const invalid = () => new DurationSyntaxError(`invalid duration ${quoted}`);
  if (text.length > maxDurationText) throw invalid();

  let rest = text;
  let negative = false;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    negative = rest.startsWith("-");
    rest = rest.slice(1);
  }
  if (rest === "0") return 0n;
  if (rest === "") throw invalid();

  let total = 0n;
  while (rest !== "") {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? "";
    const fraction = number?.[2];
    // Go: at least one digit before or after the point.
    if (whole === "" && (fraction === undefined || fraction === "")) throw invalid();
    rest = rest.slice(number?.[0].length ?? 0);

    const unitMatch = /^[^\d.]+/.exec(rest);
    if (unitMatch === null) throw new DurationSyntaxError(`missing unit in duration ${quoted}`);
    const unitText = unitMatch[0];
    const unit = nanosecondsPerUnit[unitText];
    if (unit === undefined)
      throw new DurationSyntaxError(`unknown unit ${JSON.stringify(unitText)} in duration ${quoted}`);
    rest = rest.slice(unitText.length);

    let value = BigInt(whole === "" ? "0" : whole) * unit;
    if (fraction !== undefined && fraction !== "") {
      // Go truncates the fractional part towards zero at nanosecond precision.
      value += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    }
    total += value;
    if (total > maxNanoseconds) throw invalid();
  }
  return negative ? -total : total;
}

/** The duration in milliseconds (fractional below 1 ms), the unit Node timers take. */
export function parseGoDurationMilliseconds(text: string): number {
  return Number(parseGoDurationNanoseconds(text)) / 1e6;
}

/** Formats milliseconds the way Go prints a time.Duration ("1h30m0s", "300ms", "0s"), for summaries. */
export function formatGoDuration(milliseconds: number): string {
  if (milliseconds === 0) return "0s";
  const sign = milliseconds < 0 ? "-" : "";
  let ms = Math.abs(milliseconds);
  if (ms < 1000) return `${sign}${trimNumber(ms)}ms`;
  const hours = Math.floor(ms / 3_600_000);
  ms -= hours * 3_600_000;
  const minutes = Math.floor(ms / 60_000);
  ms -= minutes * 60_000;
  const seconds = trimNumber(ms / 1000);
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function trimNumber(value: number): string {
  return String(Math.round(value * 1e6) / 1e6);
}
