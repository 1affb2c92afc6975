// Go's strconv.Quote (the `%q` verb), for messages that upstream writes with it: double quotes, backslash
// escapes for `"` and `\`, the named control escapes, \xHH for other ASCII controls and \uHHHH / \UHHHHHHHH
// for code points Go does not consider printable (controls, format characters, separators other than the
// ASCII space, unassigned and private-use code points).

const named: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  '"': '\\"',
  "\\": "\\\\",
};

const notPrintable = /[\p{C}\p{Z}]/u;

export function goQuote(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    const short = named[char];
    if (short !== undefined) out += short;
    else if (char === " " || !notPrintable.test(char)) out += char;
    else if (code < 0x80) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else if (code >= 0xd800 && code <= 0xdfff) out += "\\ufffd";
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += `\\U${code.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}
