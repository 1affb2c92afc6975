// A small .env reader (the subset of godotenv's format configuration files use): `KEY=VALUE` lines,
// optional `export `, `#` comments, blank lines; values bare (trimmed, ` #…` comment dropped), 'single quoted'
// (literal) or "double quoted" (with \n, \t, \\ and \" escapes). One line per entry; anything else is an
// error naming the line.

export class DotenvSyntaxError extends Error {}

const keyPattern = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function unescapeDouble(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => ({ n: "\n", t: "\t", r: "\r" })[c] ?? c);
}

export function parseDotenv(text: string): Array<{ key: string; value: string; line: number }> {
  const entries: Array<{ key: string; value: string; line: number }> = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNumber = i + 1;
    let line = (lines[i] as string).trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("export ")) line = line.slice("export ".length).trimStart();
    const equals = line.indexOf("=");
    if (equals === -1) throw new DotenvSyntaxError(`line ${lineNumber}: expected KEY=VALUE`);
    const key = line.slice(0, equals).trim();
    if (!keyPattern.test(key)) throw new DotenvSyntaxError(`line ${lineNumber}: invalid key ${JSON.stringify(key)}`);
    const raw = line.slice(equals + 1).trim();
    let value: string;
    const quote = raw[0];
    if (quote === '"' || quote === "'") {
      const close = quote === '"' ? findClosingDoubleQuote(raw) : raw.indexOf("'", 1);
      if (close === -1) throw new DotenvSyntaxError(`line ${lineNumber}: unterminated ${quote} quote`);
      const after = raw.slice(close + 1).trim();
      if (after !== "" && !after.startsWith("#"))
        throw new DotenvSyntaxError(`line ${lineNumber}: unexpected text after the closing quote`);
      const inner = raw.slice(1, close);
      value = quote === '"' ? unescapeDouble(inner) : inner;
    } else {
      const comment = raw.search(/\s#/);
      value = (comment === -1 ? raw : raw.slice(0, comment)).trim();
    }
    entries.push({ key, value, line: lineNumber });
  }
  return entries;
}

function findClosingDoubleQuote(raw: string): number {
  for (let i = 1; i < raw.length; i++) {
    if (raw[i] === "\\") i++;
    else if (raw[i] === '"') return i;
  }
  return -1;
}
