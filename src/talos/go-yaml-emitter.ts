// A block-style YAML emitter that prints exactly what Go's gopkg.in/yaml.v3 prints (yaml.Marshal:
// 4-space indentation, sequences indented under their key, no line folding, unicode kept). It follows
// the decisions of yaml.v3's emitter (emitterc.go) byte for byte — scalar analysis, style selection,
// indentation arithmetic, escapes — for the subset the schematic needs: block mappings and sequences,
// empty collections written `{}`/`[]`, and plain, quoted and literal scalars. No tags, anchors or comments.

export type ScalarStyle = "plain" | "double" | "literal";

export type YamlNode =
  | { kind: "map"; entries: Array<[YamlNode, YamlNode]> }
  | { kind: "seq"; items: YamlNode[] }
  /** `style` is what the encoder asks for; the emitter may still fall back to single or double quotes. */
  | { kind: "scalar"; value: string; style: ScalarStyle };

type State = "documentEnd" | "blockSequenceItem" | "blockMappingKey" | "blockMappingSimpleValue" | "blockMappingValue";

type Analysis = {
  multiline: boolean;
  flowPlainAllowed: boolean;
  blockPlainAllowed: boolean;
  singleQuotedAllowed: boolean;
  blockAllowed: boolean;
};

const BEST_INDENT = 4;
/** See writeLiteral: true prints what the public factory (yaml v4) prints, false what yaml.v3 v3.0.1 does. */
const LITERAL_HEADER_BREAK = true;
const SPACE = 0x20;
const LF = 0x0a;

function width(b: number): number {
  if ((b & 0x80) === 0) return 1;
  if ((b & 0xe0) === 0xc0) return 2;
  if ((b & 0xf0) === 0xe0) return 3;
  if ((b & 0xf8) === 0xf0) return 4;
  return 0;
}

// Byte-level character classes, as yaml.v3 defines them (yamlprivateh.go). Note that 4-byte
// characters (emoji, …) are not "printable" there, so they end up escaped in double quotes.
const at = (b: Buffer, i: number): number => b[i] ?? -1;

function isPrintable(b: Buffer, i: number): boolean {
  const c = at(b, i);
  const n1 = at(b, i + 1);
  const n2 = at(b, i + 2);
  return (
    c === 0x0a ||
    (c >= 0x20 && c <= 0x7e) ||
    (c === 0xc2 && n1 >= 0xa0) ||
    (c > 0xc2 && c < 0xed) ||
    (c === 0xed && n1 < 0xa0) ||
    c === 0xee ||
    (c === 0xef && !(n1 === 0xbb && n2 === 0xbf) && !(n1 === 0xbf && (n2 === 0xbe || n2 === 0xbf)))
  );
}

function isBreak(b: Buffer, i: number): boolean {
  const c = at(b, i);
  return (
    c === 0x0d ||
    c === 0x0a ||
    (c === 0xc2 && at(b, i + 1) === 0x85) ||
    (c === 0xe2 && at(b, i + 1) === 0x80 && (at(b, i + 2) === 0xa8 || at(b, i + 2) === 0xa9))
  );
}

const isSpace = (b: Buffer, i: number) => at(b, i) === SPACE;
const isBlank = (b: Buffer, i: number) => at(b, i) === SPACE || at(b, i) === 0x09;
const isBlankz = (b: Buffer, i: number) => isBlank(b, i) || isBreak(b, i) || at(b, i) === 0;
// yaml.v3 looks at the start of the value here, whatever the position: a leading BOM escapes everything.
const startsWithBom = (b: Buffer) => b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;

function analyzeScalar(value: Buffer): Analysis {
  if (value.length === 0) {
    return {
      multiline: false,
      flowPlainAllowed: false,
      blockPlainAllowed: true,
      singleQuotedAllowed: true,
      blockAllowed: false,
    };
  }
  let blockIndicators = false;
  let flowIndicators = false;
  let lineBreaks = false;
  let specialCharacters = false;
  let tabCharacters = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  let previousSpace = false;
  let previousBreak = false;

  const head = value.subarray(0, 3).toString("latin1");
  if (value.length >= 3 && (head === "---" || head === "...")) {
    blockIndicators = true;
    flowIndicators = true;
  }
  let precededByWhitespace = true;
  for (let i = 0, w = 0; i < value.length; i += w) {
    w = width(value[i] as number);
    const followedByWhitespace = i + w >= value.length || isBlank(value, i + w);
    const c = String.fromCharCode(value[i] as number);
    if (i === 0) {
      if ("#,[]{}&*!|>'\"%@`".includes(c)) {
        flowIndicators = true;
        blockIndicators = true;
      } else if (c === "?" || c === ":") {
        flowIndicators = true;
        if (followedByWhitespace) blockIndicators = true;
      } else if (c === "-" && followedByWhitespace) {
        flowIndicators = true;
        blockIndicators = true;
      }
    } else if (",?[]{}".includes(c)) {
      flowIndicators = true;
    } else if (c === ":") {
      flowIndicators = true;
      if (followedByWhitespace) blockIndicators = true;
    } else if (c === "#" && precededByWhitespace) {
      flowIndicators = true;
      blockIndicators = true;
    }

    if (value[i] === 0x09) tabCharacters = true;
    else if (!isPrintable(value, i)) specialCharacters = true;

    if (isSpace(value, i)) {
      if (i === 0) leadingSpace = true;
      if (i + w === value.length) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (isBreak(value, i)) {
      lineBreaks = true;
      if (i === 0) leadingBreak = true;
      if (i + w === value.length) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWhitespace = isBlankz(value, i);
  }

  const a: Analysis = {
    multiline: lineBreaks,
    flowPlainAllowed: true,
    blockPlainAllowed: true,
    singleQuotedAllowed: true,
    blockAllowed: true,
  };
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) {
    a.flowPlainAllowed = false;
    a.blockPlainAllowed = false;
  }
  if (trailingSpace) a.blockAllowed = false;
  if (breakSpace || spaceBreak || tabCharacters || specialCharacters) {
    a.flowPlainAllowed = false;
    a.blockPlainAllowed = false;
    a.singleQuotedAllowed = false;
  }
  if (spaceBreak || specialCharacters) a.blockAllowed = false;
  if (lineBreaks) {
    a.flowPlainAllowed = false;
    a.blockPlainAllowed = false;
  }
  if (flowIndicators) a.flowPlainAllowed = false;
  if (blockIndicators) a.blockPlainAllowed = false;
  return a;
}

const escapes = new Map<number, string>([
  [0x00, "0"],
  [0x07, "a"],
  [0x08, "b"],
  [0x09, "t"],
  [0x0a, "n"],
  [0x0b, "v"],
  [0x0c, "f"],
  [0x0d, "r"],
  [0x1b, "e"],
  [0x22, '"'],
  [0x5c, "\\"],
  [0x85, "N"],
  [0xa0, "_"],
  [0x2028, "L"],
  [0x2029, "P"],
]);

class Emitter {
  private readonly out: number[] = [];
  private indent = -1;
  private readonly indents: number[] = [];
  private readonly states: State[] = [];
  private column = 0;
  private whitespace = true;
  private indention = true;
  private flowLevel = 0;
  private simpleKeyContext = false;

  document(root: YamlNode): string {
    this.states.push("documentEnd");
    this.node(root, false);
    this.states.pop();
    this.writeIndent();
    return Buffer.from(this.out).toString("utf8");
  }

  private put(byte: number): void {
    this.out.push(byte);
    this.column++;
  }

  private putBreak(): void {
    this.out.push(LF);
    this.column = 0;
    this.indention = true;
  }

  private write(value: Buffer, i: number): number {
    const w = width(value[i] as number);
    for (let k = 0; k < w; k++) this.out.push(value[i + k] as number);
    this.column++;
    return i + w;
  }

  private writeBreak(value: Buffer, i: number): number {
    if (value[i] === LF) {
      this.putBreak();
      return i + 1;
    }
    const next = this.write(value, i);
    this.column = 0;
    this.indention = true;
    return next;
  }

  private writeIndicator(indicator: string, needWhitespace: boolean, isWhitespace: boolean, isIndention: boolean) {
    if (needWhitespace && !this.whitespace) this.put(SPACE);
    for (const ch of Buffer.from(indicator)) this.put(ch);
    this.whitespace = isWhitespace;
    this.indention = this.indention && isIndention;
  }

  private writeIndent(): void {
    const indent = Math.max(this.indent, 0);
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) this.putBreak();
    while (this.column < indent) this.put(SPACE);
    this.whitespace = true;
  }

  private increaseIndent(flow: boolean): void {
    this.indents.push(this.indent);
    if (this.indent < 0) {
      this.indent = flow ? BEST_INDENT : 0;
    } else if (this.states.at(-1) === "blockSequenceItem") {
      // yaml.v3: the first indent inside a sequence only skips the "- " indicator.
      this.indent += 2;
    } else {
      this.indent = BEST_INDENT * Math.floor((this.indent + BEST_INDENT) / BEST_INDENT);
    }
  }

  private popIndent(): void {
    this.indent = this.indents.pop() as number;
  }

  private node(n: YamlNode, simpleKey: boolean): void {
    this.simpleKeyContext = simpleKey;
    if (n.kind === "scalar") {
      this.scalar(n.value, n.style);
      return;
    }
    const empty = n.kind === "seq" ? n.items.length === 0 : n.entries.length === 0;
    if (this.flowLevel > 0 || empty) {
      if (!empty) throw new Error("flow collections with content are not emitted");
      const [open, close] = n.kind === "seq" ? ["[", "]"] : ["{", "}"];
      this.writeIndicator(open, true, true, false);
      this.increaseIndent(true);
      this.popIndent();
      if (n.kind === "seq" && this.column === 0) this.writeIndent();
      this.writeIndicator(close, false, false, false);
      return;
    }
    if (n.kind === "seq") this.blockSequence(n.items);
    else this.blockMapping(n.entries);
  }

  private blockSequence(items: YamlNode[]): void {
    this.increaseIndent(false);
    for (const item of items) {
      this.writeIndent();
      this.writeIndicator("-", true, false, true);
      this.states.push("blockSequenceItem");
      this.node(item, false);
      this.states.pop();
    }
    this.popIndent();
  }

  private blockMapping(entries: Array<[YamlNode, YamlNode]>): void {
    this.increaseIndent(false);
    for (const [key, value] of entries) {
      this.writeIndent();
      if (this.isSimpleKey(key)) {
        this.states.push("blockMappingSimpleValue");
        this.node(key, true);
        this.states.pop();
        this.writeIndicator(":", false, false, false);
      } else {
        this.writeIndicator("?", true, false, true);
        this.states.push("blockMappingValue");
        this.node(key, false);
        this.states.pop();
        this.writeIndent();
        this.writeIndicator(":", true, false, true);
      }
      this.states.push("blockMappingKey");
      this.node(value, false);
      this.states.pop();
    }
    this.popIndent();
  }

  private isSimpleKey(key: YamlNode): boolean {
    if (key.kind !== "scalar") return false;
    const bytes = Buffer.from(key.value);
    return !analyzeScalar(bytes).multiline && bytes.length <= 128;
  }

  private scalar(text: string, requested: ScalarStyle): void {
    const value = Buffer.from(text);
    const a = analyzeScalar(value);
    let style: ScalarStyle | "single" = requested;
    if (this.simpleKeyContext && a.multiline) style = "double";
    if (style === "plain") {
      const allowed = this.flowLevel > 0 ? a.flowPlainAllowed : a.blockPlainAllowed;
      if (!allowed) style = "single";
      if (value.length === 0 && (this.flowLevel > 0 || this.simpleKeyContext)) style = "single";
    }
    if (style === "single" && !a.singleQuotedAllowed) style = "double";
    if (style === "literal" && (!a.blockAllowed || this.flowLevel > 0 || this.simpleKeyContext)) style = "double";

    this.increaseIndent(true);
    if (style === "plain") this.writePlain(value);
    else if (style === "single") this.writeSingleQuoted(value);
    else if (style === "double") this.writeDoubleQuoted(value);
    else this.writeLiteral(value);
    this.popIndent();
  }

  // Line folding never happens (yaml.v3 sets an unlimited width), so the writers only keep the
  // break handling that can still occur.
  private writePlain(value: Buffer): void {
    if (value.length > 0 && !this.whitespace) this.put(SPACE);
    let breaks = false;
    for (let i = 0; i < value.length; ) {
      if (isSpace(value, i)) {
        i = this.write(value, i);
      } else if (isBreak(value, i)) {
        if (!breaks && value[i] === LF) this.putBreak();
        i = this.writeBreak(value, i);
        breaks = true;
      } else {
        if (breaks) this.writeIndent();
        i = this.write(value, i);
        this.indention = false;
        breaks = false;
      }
    }
    if (value.length > 0) this.whitespace = false;
    this.indention = false;
  }

  private writeSingleQuoted(value: Buffer): void {
    this.writeIndicator("'", true, false, false);
    let breaks = false;
    for (let i = 0; i < value.length; ) {
      if (isSpace(value, i)) {
        i = this.write(value, i);
      } else if (isBreak(value, i)) {
        if (!breaks && value[i] === LF) this.putBreak();
        i = this.writeBreak(value, i);
        breaks = true;
      } else {
        if (breaks) this.writeIndent();
        if (value[i] === 0x27) this.put(0x27);
        i = this.write(value, i);
        this.indention = false;
        breaks = false;
      }
    }
    this.writeIndicator("'", false, false, false);
    this.whitespace = false;
    this.indention = false;
  }

  private writeDoubleQuoted(value: Buffer): void {
    this.writeIndicator('"', true, false, false);
    const bom = startsWithBom(value);
    for (let i = 0; i < value.length; ) {
      const c = value[i] as number;
      if (!isPrintable(value, i) || bom || isBreak(value, i) || c === 0x22 || c === 0x5c) {
        const w = width(c);
        let v = w === 1 ? c & 0x7f : w === 2 ? c & 0x1f : w === 3 ? c & 0x0f : c & 0x07;
        for (let k = 1; k < w; k++) v = (v << 6) + ((value[i + k] as number) & 0x3f);
        i += w;
        this.put(0x5c);
        const short = escapes.get(v);
        if (short !== undefined) {
          this.put(short.charCodeAt(0));
        } else {
          const [letter, digits] = v <= 0xff ? ["x", 2] : v <= 0xffff ? ["u", 4] : ["U", 8];
          this.put(letter.charCodeAt(0));
          for (const ch of v
            .toString(16)
            .toUpperCase()
            .padStart(digits as number, "0"))
            this.put(ch.charCodeAt(0));
        }
      } else {
        i = this.write(value, i);
      }
    }
    this.writeIndicator('"', false, false, false);
    this.whitespace = false;
    this.indention = false;
  }

  private writeLiteral(value: Buffer): void {
    this.writeIndicator("|", true, false, false);
    if (isSpace(value, 0) || isBreak(value, 0)) this.writeIndicator(String(BEST_INDENT), false, false, false);
    const chomp = literalChomping(value);
    if (chomp !== "") this.writeIndicator(chomp, false, false, false);
    // Current go-yaml (go.yaml.in/yaml/v4, which upstream uses, and go-yaml issue 755's fix) breaks the
    // line right after the header. gopkg.in/yaml.v3 v3.0.1 did not, and so dropped a leading empty line;
    // the two differ only for values that start with a line break.
    if (LITERAL_HEADER_BREAK) this.putBreak();
    this.whitespace = true;
    let breaks = true;
    for (let i = 0; i < value.length; ) {
      if (isBreak(value, i)) {
        i = this.writeBreak(value, i);
        breaks = true;
      } else {
        if (breaks) this.writeIndent();
        i = this.write(value, i);
        this.indention = false;
        breaks = false;
      }
    }
  }
}

/** The chomping indicator yaml.v3 writes: strip without a final break, keep with two or more. */
function literalChomping(value: Buffer): "-" | "+" | "" {
  if (value.length === 0) return "-";
  let i = value.length - 1;
  while (((value[i] as number) & 0xc0) === 0x80) i--;
  if (!isBreak(value, i)) return "-";
  if (i === 0) return "+";
  i--;
  while (((value[i] as number) & 0xc0) === 0x80) i--;
  return isBreak(value, i) ? "+" : "";
}

/** yaml.Marshal's output for one document whose root is `root`. */
export function emitGoYaml(root: YamlNode): string {
  return new Emitter().document(root);
}
