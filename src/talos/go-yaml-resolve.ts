// How Go's gopkg.in/yaml.v3 reads a scalar's text: the implicit type of an untagged plain scalar, the
// meaning of an explicit standard tag, and the encoder's "would this string read back as something
// else?" test. The schematic ID depends on these rules, so they follow yaml.v3 (resolve.go, encode.go)
// rule for rule, including its YAML 1.1 leftovers (0777 octals, base-60 and yes/no quoting).

export type GoTime = {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction digits as written (Go keeps at most 9). */
  fraction: string;
  /** Offset east of UTC in seconds. */
  offsetSeconds: number;
};

export type Resolved =
  | { tag: "!!null" }
  | { tag: "!!bool"; value: boolean }
  /** `unsigned` marks values only a uint64 holds (Go returns uint64 above MaxInt64). */
  | { tag: "!!int"; value: bigint; unsigned: boolean }
  | { tag: "!!float"; value: number }
  | { tag: "!!timestamp"; value: GoTime }
  | { tag: "!!str"; value: string }
  | { tag: "!!merge"; value: string }
  /** A tag yaml.v3 does not resolve (custom or !!binary etc.): the text is kept as is. */
  | { tag: string; value: string; other: true };

export class ResolveError extends Error {}

const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

const fixedScalars = new Map<string, Resolved>();
for (const s of ["true", "True", "TRUE"]) fixedScalars.set(s, { tag: "!!bool", value: true });
for (const s of ["false", "False", "FALSE"]) fixedScalars.set(s, { tag: "!!bool", value: false });
for (const s of ["", "~", "null", "Null", "NULL"]) fixedScalars.set(s, { tag: "!!null" });
for (const s of [".nan", ".NaN", ".NAN"]) fixedScalars.set(s, { tag: "!!float", value: Number.NaN });
for (const s of [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"])
  fixedScalars.set(s, { tag: "!!float", value: Number.POSITIVE_INFINITY });
for (const s of ["-.inf", "-.Inf", "-.INF"]) fixedScalars.set(s, { tag: "!!float", value: Number.NEGATIVE_INFINITY });
fixedScalars.set("<<", { tag: "!!merge", value: "<<" });

/** The first character decides which parsers yaml.v3 even tries (its resolveTable). */
function hintOf(s: string): "S" | "D" | "M" | "." | undefined {
  const c = s[0] as string;
  if (c === "+" || c === "-") return "S";
  if (c >= "0" && c <= "9") return "D";
  if ("yYnNtTfFoO~".includes(c)) return "M";
  if (c === ".") return ".";
  return undefined;
}

const resolvableTags = new Set(["", "!!str", "!!bool", "!!int", "!!float", "!!null", "!!timestamp"]);

/** yaml.v3's resolve(tag, in). `tag` is the short form ("!!int") or "" for an untagged scalar. */
export function goResolve(tag: string, text: string): Resolved {
  if (!resolvableTags.has(tag)) return { tag, value: text, other: true };
  const implicit = resolveImplicit(tag, text);
  if (tag === "" || tag === implicit.tag || tag === "!!str") return tag === "!!str" ? { tag, value: text } : implicit;
  if (tag === "!!float" && implicit.tag === "!!int") return { tag: "!!float", value: Number(implicit.value) };
  throw new ResolveError(`cannot decode ${implicit.tag} \`${text}\` as a ${tag}`);
}

function resolveImplicit(tag: string, text: string): Resolved {
  const hint = text === "" ? "N" : hintOf(text);
  if (hint !== undefined && tag !== "!!str") {
    const fixed = fixedScalars.get(text);
    if (fixed !== undefined) return fixed;
    if (hint === ".") {
      const f = goParseFloat(text);
      if (f !== undefined) return { tag: "!!float", value: f };
    } else if (hint === "D" || hint === "S") {
      if (tag === "" || tag === "!!timestamp") {
        const t = parseGoTimestamp(text);
        if (t !== undefined) return { tag: "!!timestamp", value: t };
      }
      const plain = text.replaceAll("_", "");
      const asInt = goParseInt(plain);
      if (asInt !== undefined) return { tag: "!!int", value: asInt, unsigned: false };
      const asUint = goParseUint(plain);
      if (asUint !== undefined) return { tag: "!!int", value: asUint, unsigned: true };
      if (yamlStyleFloat.test(plain)) {
        const f = goParseFloat(plain);
        if (f !== undefined) return { tag: "!!float", value: f };
      }
      const prefixed = resolvePrefixedInt(plain);
      if (prefixed !== undefined) return prefixed;
    }
  }
  return { tag: "!!str", value: text };
}

/** yaml.v3's explicit 0b/0o branches (reached only when strconv's base-0 parse failed, e.g. overflow). */
function resolvePrefixedInt(plain: string): Resolved | undefined {
  for (const [prefix, radix] of [
    ["0b", 2],
    ["0o", 8],
  ] as const) {
    if (plain.startsWith(prefix)) {
      const digits = plain.slice(2);
      const v = parseDigits(digits, radix);
      if (v !== undefined && v <= INT64_MAX) return { tag: "!!int", value: v, unsigned: false };
      if (v !== undefined && v <= UINT64_MAX) return { tag: "!!int", value: v, unsigned: true };
      return undefined;
    }
    if (plain.startsWith(`-${prefix}`)) {
      const v = parseDigits(plain.slice(3), radix);
      if (v !== undefined && v <= INT64_MAX + 1n) return { tag: "!!int", value: -v, unsigned: false };
      return undefined;
    }
  }
  return undefined;
}

const yamlStyleFloat = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

function parseDigits(digits: string, radix: number): bigint | undefined {
  if (digits === "") return undefined;
  let v = 0n;
  const r = BigInt(radix);
  for (const ch of digits) {
    const d = Number.parseInt(ch, 36);
    if (Number.isNaN(d) || d >= radix) return undefined;
    v = v * r + BigInt(d);
    if (v > UINT64_MAX) return undefined;
  }
  return v;
}

/** strconv.ParseUint(s, 0, 64): base prefixes 0b/0o/0x, a bare leading 0 means octal, no sign. */
export function goParseUint(s: string): bigint | undefined {
  if (s === "") return undefined;
  let digits = s;
  let radix = 10;
  if (s[0] === "0") {
    const p = s[1]?.toLowerCase();
    if (s.length >= 3 && p === "b") [radix, digits] = [2, s.slice(2)];
    else if (s.length >= 3 && p === "o") [radix, digits] = [8, s.slice(2)];
    else if (s.length >= 3 && p === "x") [radix, digits] = [16, s.slice(2)];
    else [radix, digits] = [8, s.slice(1)];
    if (digits === "") return radix === 8 && s === "0" ? 0n : undefined;
  }
  return parseDigits(digits, radix);
}

/** strconv.ParseInt(s, 0, 64). */
export function goParseInt(s: string): bigint | undefined {
  let body = s;
  let negative = false;
  if (s[0] === "+" || s[0] === "-") {
    negative = s[0] === "-";
    body = s.slice(1);
  }
  const u = goParseUint(body);
  if (u === undefined) return undefined;
  if (negative) return u <= INT64_MAX + 1n ? -u : undefined;
  return u <= INT64_MAX ? u : undefined;
}

/** strconv.ParseFloat for the decimal forms yaml.v3 lets through; overflow is an error as in Go. */
function goParseFloat(s: string): number | undefined {
  if (!/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return undefined;
  const f = Number(s);
  return Number.isFinite(f) ? f : undefined;
}

// --- timestamps: yaml.v3 tries four time.Parse layouts on anything starting with "YYYY-" ---

function daysIn(month: number, year: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

class Cursor {
  readonly s: string;
  i: number;
  constructor(s: string, i = 0) {
    this.s = s;
    this.i = i;
  }
  isDigit(k = 0): boolean {
    const c = this.s[this.i + k];
    return c !== undefined && c >= "0" && c <= "9";
  }
  /** Go time's getnum(value, false): one digit, or two if the second is a digit too. */
  num(): number | undefined {
    if (!this.isDigit()) return undefined;
    const two = this.isDigit(1);
    const n = Number(this.s.slice(this.i, this.i + (two ? 2 : 1)));
    this.i += two ? 2 : 1;
    return n;
  }
  lit(ch: string): boolean {
    if (this.s[this.i] !== ch) return false;
    this.i++;
    return true;
  }
  get done(): boolean {
    return this.i >= this.s.length;
  }
}

type Layout = { sep: "T" | "t" | " " | undefined; zone: boolean };
const layouts: Layout[] = [
  { sep: "T", zone: true },
  { sep: "t", zone: true },
  { sep: " ", zone: false },
  { sep: undefined, zone: false },
];

export function parseGoTimestamp(s: string): GoTime | undefined {
  if (!/^[0-9]{4}-/.test(s)) return undefined;
  for (const layout of layouts) {
    const t = parseWithLayout(s, layout);
    if (t !== undefined) return t;
  }
  return undefined;
}

function parseWithLayout(s: string, layout: Layout): GoTime | undefined {
  const c = new Cursor(s, 5);
  const year = Number(s.slice(0, 4));
  const month = c.num();
  if (month === undefined || month < 1 || month > 12 || !c.lit("-")) return undefined;
  const day = c.num();
  if (day === undefined) return undefined;
  const t: GoTime = { year, month, day, hour: 0, minute: 0, second: 0, fraction: "", offsetSeconds: 0 };
  if (layout.sep !== undefined) {
    if (!c.lit(layout.sep)) return undefined;
    const hour = c.num();
    if (hour === undefined || hour > 23 || !c.lit(":")) return undefined;
    const minute = c.num();
    if (minute === undefined || minute > 59 || !c.lit(":")) return undefined;
    const second = c.num();
    if (second === undefined || second > 59) return undefined;
    Object.assign(t, { hour, minute, second });
    const sep = s[c.i];
    if ((sep === "." || sep === ",") && c.isDigit(1)) {
      c.i++;
      const start = c.i;
      while (c.isDigit()) c.i++;
      t.fraction = s.slice(start, c.i).slice(0, 9);
    }
    if (layout.zone) {
      if (c.lit("Z")) {
        t.offsetSeconds = 0;
      } else {
        const z = s.slice(c.i, c.i + 6);
        if (z.length < 6 || z[3] !== ":" || !/^[0-9]{2}$/.test(z.slice(1, 3)) || !/^[0-9]{2}$/.test(z.slice(4, 6)))
          return undefined;
        const hh = Number(z.slice(1, 3));
        const mm = Number(z.slice(4, 6));
        if (hh > 24 || mm > 60) return undefined;
        if (z[0] !== "+" && z[0] !== "-") return undefined;
        t.offsetSeconds = (z[0] === "-" ? -1 : 1) * (hh * 3600 + mm * 60);
        c.i += 6;
      }
    }
  }
  if (!c.done) return undefined;
  if (day < 1 || day > daysIn(month, year)) return undefined;
  return t;
}

/** time.Time.Format(time.RFC3339Nano) for a parsed timestamp (kept in its own zone, as Go does). */
export function formatGoTime(t: GoTime): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const fraction = t.fraction.replace(/0+$/, "");
  let zone = "Z";
  if (t.offsetSeconds !== 0) {
    const abs = Math.abs(t.offsetSeconds);
    zone = `${t.offsetSeconds < 0 ? "-" : "+"}${p(Math.floor(abs / 3600))}:${p(Math.floor((abs % 3600) / 60))}`;
  }
  return `${p(t.year, 4)}-${p(t.month)}-${p(t.day)}T${p(t.hour)}:${p(t.minute)}:${p(t.second)}${fraction ? `.${fraction}` : ""}${zone}`;
}

/** strconv.FormatFloat(f, 'g', -1, 64) with yaml.v3's spellings of the special values. */
export function formatGoFloat(f: number): string {
  if (Number.isNaN(f)) return ".nan";
  if (f === Number.POSITIVE_INFINITY) return ".inf";
  if (f === Number.NEGATIVE_INFINITY) return "-.inf";
  if (f === 0) return Object.is(f, -0) ? "-0" : "0";
  const [mantissa, expText] = Math.abs(f).toExponential().split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  const exp = Number(expText);
  const sign = f < 0 ? "-" : "";
  if (exp < -4 || exp >= 6) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e < 10 ? `0${e}` : e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intLen = exp + 1;
  if (digits.length <= intLen) return `${sign}${digits}${"0".repeat(intLen - digits.length)}`;
  return `${sign}${digits.slice(0, intLen)}.${digits.slice(intLen)}`;
}

const base60Float = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;
const oldBools = new Set([
  "y",
  "Y",
  "yes",
  "Yes",
  "YES",
  "on",
  "On",
  "ON",
  "n",
  "N",
  "no",
  "No",
  "NO",
  "off",
  "Off",
  "OFF",
]);

/** The encoder's test: may this string be written plain without reading back as another type? */
export function goStringCanBePlain(s: string): boolean {
  return goResolve("", s).tag === "!!str" && !base60Float.test(s) && !oldBools.has(s);
}

/** yaml.v3 accepts the YAML 1.1 spellings when the target is a bool field. */
export function goOldBool(s: string): boolean | undefined {
  if (["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"].includes(s)) return true;
  if (["n", "N", "no", "No", "NO", "off", "Off", "OFF"].includes(s)) return false;
  return undefined;
}
