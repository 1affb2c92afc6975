// The schematic: what to customize in a Talos boot asset, and its content-addressed ID.
//
// The ID is sha256 of the canonical YAML that the public image factory (Go, gopkg.in/yaml.v3) prints
// for its Schematic struct, so both directions follow Go: the request body is read the way yaml.v3
// decodes into that struct (KnownFields), and the canonical form is printed the way yaml.v3 encodes it.
// The building blocks are go-yaml-resolve.ts (scalar typing) and go-yaml-emitter.ts (printing).

import { createHash } from "node:crypto";
import {
  CST,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseAllDocuments,
  visit,
} from "yaml";
import { badRequest } from "../errors.ts";
import { emitGoYaml, type YamlNode } from "./go-yaml-emitter.ts";
import {
  formatGoFloat,
  formatGoTime,
  type GoTime,
  goOldBool,
  goResolve,
  goStringCanBePlain,
  type Resolved,
  ResolveError,
} from "./go-yaml-resolve.ts";
import type { MetaValue } from "./meta.ts";

/** Media type of the layer that stores a schematic's canonical YAML in the schematic repository. */
export const schematicMediaType = "application/vnd.sidero.dev-image.schematic";

/** Largest request body accepted (upstream has no limit; the HTTP layer answers 413 above it too). */
export const MAX_SCHEMATIC_BYTES = 1 << 20;
/** Most entries in any one list (extensions, kernel args, meta). Upstream has no limit; real ones are < 100. */
export const MAX_LIST_ENTRIES = 1024;
/** Deepest nesting accepted in overlay options (upstream's parser stops at 10000). */
export const MAX_NESTING_DEPTH = 64;
/**
 * Most nodes a schematic may expand to, aliases followed (a real one has a few hundred). With the text
 * bound below, this bounds what a small body full of aliases ("billion laughs") can make the decoder build.
 */
export const MAX_EXPANDED_NODES = 100_000;
/**
 * Most aliases in one body. Real schematics have none; upstream sets no count (only yaml.v3's expansion
 * ratio), but a body of tens of thousands costs time to build before any expansion bound can act.
 */
export const MAX_ALIASES = 4096;
/**
 * Most scalars in one body (keys and values). Every list is bounded at 1,024 entries, so a real schematic
 * has at most a few thousand; the YAML library builds and checks each one, and 200,000 repeated keys in a
 * 1 MiB body held the event loop for 3 s on an idle machine (test/reliability/fuzz-factory.test.ts found
 * it). Counted on the token stream, before anything is built.
 */
export const MAX_BODY_SCALARS = 16_384;
/** Most bytes of scalar text a schematic may expand to, aliases followed: the body limit. */
export const MAX_EXPANDED_TEXT_BYTES = MAX_SCHEMATIC_BYTES;

export const bootloaders = ["dual-boot", "sd-boot", "grub"] as const;
export type Bootloader = (typeof bootloaders)[number];
/** The values upstream accepts for secureboot.enrollKeys (checked when a profile is built). */
export const enrollKeysValues = ["off", "manual", "if-safe", "force"] as const;

/** A value decoded into Go's `any`, kept with its Go type so it re-encodes exactly. */
export type GoValue =
  | { type: "null" }
  | { type: "bool"; value: boolean }
  | { type: "int"; value: bigint; unsigned: boolean }
  | { type: "float"; value: number }
  | { type: "time"; value: GoTime }
  | { type: "string"; value: string }
  | { type: "seq"; items: GoValue[] }
  /** `stringKeys`: Go's map[string]any (all keys strings), else map[any]any. */
  | { type: "map"; stringKeys: boolean; entries: Array<[GoValue, GoValue]> };

export type Schematic = {
  overlay?: { image: string; name: string; options?: Array<[string, GoValue]> };
  customization: {
    embeddedMachineConfiguration?: string;
    extraKernelArgs?: string[];
    meta?: MetaValue[];
    systemExtensions?: { officialExtensions?: string[] };
    bootloader?: Bootloader;
    secureboot?: { enrollKeys?: string; includeWellKnownCertificates?: boolean };
    diskImage?: { sectorSize?: number };
  };
};

// ---------------------------------------------------------------------------------------------------
// Decoding, the way yaml.v3 decodes into upstream's struct.

type FieldType =
  | { kind: "string" }
  | { kind: "uint"; bits: 8 | 64 }
  | { kind: "bool" }
  | { kind: "bootloader" }
  | { kind: "list"; of: FieldType }
  | { kind: "struct"; name: string; fields: Record<string, FieldType> }
  | { kind: "options" }
  | { kind: "any" };

const str: FieldType = { kind: "string" };
const schematicType: FieldType = {
  kind: "struct",
  name: "schematic.Schematic",
  fields: {
    owner: str,
    overlay: {
      kind: "struct",
      name: "schematic.Overlay",
      fields: { image: str, name: str, options: { kind: "options" } },
    },
    customization: {
      kind: "struct",
      name: "schematic.Customization",
      fields: {
        embeddedMachineConfiguration: str,
        extraKernelArgs: { kind: "list", of: str },
        meta: {
          kind: "list",
          of: { kind: "struct", name: "schematic.MetaValue", fields: { key: { kind: "uint", bits: 8 }, value: str } },
        },
        systemExtensions: {
          kind: "struct",
          name: "schematic.SystemExtensions",
          fields: { officialExtensions: { kind: "list", of: str } },
        },
        bootloader: { kind: "bootloader" },
        secureboot: {
          kind: "struct",
          name: "schematic.SecureBootCustomization",
          fields: { enrollKeys: str, includeWellKnownCertificates: { kind: "bool" } },
        },
        diskImage: {
          kind: "struct",
          name: "schematic.DiskImageCustomization",
          fields: { sectorSize: { kind: "uint", bits: 64 } },
        },
      },
    },
  },
};

const typeName = (t: FieldType): string =>
  t.kind === "string"
    ? "string"
    : t.kind === "uint"
      ? t.bits === 8
        ? "uint8"
        : "uint"
      : t.kind === "bool"
        ? "bool"
        : t.kind === "bootloader"
          ? "imageropts.BootloaderKind"
          : t.kind === "list"
            ? `[]${typeName(t.of)}`
            : t.kind === "struct"
              ? t.name
              : t.kind === "options"
                ? "map[string]interface {}"
                : "interface {}";

/** Aborts the whole decode, as yaml.v3's failf does. */
class Fatal extends Error {}

const UINT64_MAX = (1n << 64n) - 1n;
const MISSING = Symbol("missing");
type Decoded = unknown | typeof MISSING;

class Decoder {
  readonly errors: string[] = [];
  private decodeCount = 0;
  private aliasCount = 0;
  private aliasDepth = 0;
  private expandedTextBytes = 0;
  private readonly activeAliases = new Set<Node>();

  private readonly targets: AliasTargets;
  private readonly lines: LineCounter;

  constructor(targets: AliasTargets, lines: LineCounter) {
    this.targets = targets;
    this.lines = lines;
  }

  private line(n: Node | null): number {
    const offset = n?.range?.[0];
    return offset === undefined ? 0 : this.lines.linePos(offset).line;
  }

  private fail(message: string, path: string): never {
    throw new Fatal(path ? `${message} (at ${path})` : message);
  }

  private typeError(message: string, path: string): void {
    this.errors.push(path ? `${message} (at ${path})` : message);
  }

  /** Follows aliases, counting expansions with yaml.v3's own budget (billion laughs stop early). */
  private step(n: Node | null, path: string, depth: number): Node | null {
    this.decodeCount++;
    if (this.aliasDepth > 0) this.aliasCount++;
    if (
      this.aliasCount > 100 &&
      this.decodeCount > 1000 &&
      this.aliasCount / this.decodeCount > allowedAliasRatio(this.decodeCount)
    )
      this.fail("document contains excessive aliasing", path);
    if (this.decodeCount > MAX_EXPANDED_NODES)
      this.fail(`the schematic expands to more than ${MAX_EXPANDED_NODES} nodes (aliases followed)`, path);
    if (depth > MAX_NESTING_DEPTH) this.fail(`nesting deeper than ${MAX_NESTING_DEPTH} levels`, path);
    if (n !== null && isScalar(n)) {
      const text = nodeValue(n);
      this.expandedTextBytes += Buffer.byteLength(text);
      if (this.expandedTextBytes > MAX_EXPANDED_TEXT_BYTES)
        this.fail(
          `the schematic expands to more than ${MAX_EXPANDED_TEXT_BYTES} bytes of text (aliases followed)`,
          path,
        );
      // A lone surrogate (from a \uD800 escape) cannot be written as UTF-8: yaml.v3 refuses such escapes
      // ("found invalid Unicode character escape code"), rather than let the ID hash a replacement character.
      if (!text.isWellFormed()) this.fail("invalid Unicode: a lone surrogate code point", path);
    }
    return n;
  }

  decode(n: Node | null, t: FieldType, path: string, depth = 0): Decoded {
    this.step(n, path, depth);
    if (n !== null && isAlias(n)) {
      const target = this.targets.get(n);
      if (target === undefined) this.fail(`unknown anchor '${n.source}' referenced`, path);
      if (this.activeAliases.has(n)) this.fail(`anchor '${n.source}' value contains itself`, path);
      this.activeAliases.add(n);
      this.aliasDepth++;
      try {
        return this.decode(target, t, path, depth + 1);
      } finally {
        this.aliasDepth--;
        this.activeAliases.delete(n);
      }
    }
    const kind = nodeKind(n);
    if (kind === "scalar") return this.scalar(n, t, path);
    if (kind === "seq") {
      if (t.kind === "list") return this.list(n as Node & { items: Node[] }, t, path, depth);
      if (t.kind === "any") return this.anySeq(n as Node & { items: Node[] }, path, depth);
      return this.collectionMismatch(n, "!!seq", t, path);
    }
    const map = n as Node & { items: Array<{ key: Node | null; value: Node | null }> };
    if (!this.uniqueKeys(map, path)) return MISSING;
    if (t.kind === "struct") return this.struct(map, t, path, depth);
    if (t.kind === "options" || t.kind === "any") return this.anyMap(map, t.kind === "options", path, depth);
    return this.collectionMismatch(n, "!!map", t, path);
  }

  private collectionMismatch(n: Node | null, defaultTag: string, t: FieldType, path: string): Decoded {
    const tag = explicitTag(n) ?? defaultTag;
    this.typeError(`line ${this.line(n)}: cannot unmarshal ${tag} into ${typeName(t)}`, path);
    return MISSING;
  }

  private uniqueKeys(map: Node & { items: Array<{ key: Node | null }> }, path: string): boolean {
    const seen = new Map<string, number>();
    let ok = true;
    for (const { key } of map.items) {
      const id = `${nodeKind(key)}\u0000${nodeValue(key)}`;
      const first = seen.get(id);
      if (first !== undefined) {
        this.typeError(
          `line ${this.line(key)}: mapping key ${JSON.stringify(nodeValue(key))} already defined at line ${first}`,
          path,
        );
        ok = false;
      } else {
        seen.set(id, this.line(key));
      }
    }
    return ok;
  }

  private rejectMerge(key: Node | null, path: string): void {
    if (isMergeKey(key)) this.fail("merge keys (<<) are not supported in schematics", path);
  }

  private struct(
    map: Node & { items: Array<{ key: Node | null; value: Node | null }> },
    t: FieldType & { kind: "struct" },
    path: string,
    depth: number,
  ): Decoded {
    const out: Record<string, unknown> = {};
    const done = new Set<string>();
    for (const { key, value } of map.items) {
      this.rejectMerge(key, path);
      const name = this.decode(key, str, path, depth + 1);
      if (name === MISSING) continue;
      const field = t.fields[name as string];
      const fieldPath = path ? `${path}.${name as string}` : (name as string);
      if (field === undefined) {
        this.typeError(`line ${this.line(key)}: field ${name as string} not found in type ${t.name}`, fieldPath);
        continue;
      }
      if (done.has(name as string)) {
        this.typeError(`line ${this.line(key)}: field ${name as string} already set in type ${t.name}`, fieldPath);
        continue;
      }
      done.add(name as string);
      const decoded = this.decode(value, field, fieldPath, depth + 1);
      // A field set to null (or to something dropped) is reset to its zero value, as in Go.
      if (decoded === MISSING) delete out[name as string];
      else out[name as string] = decoded;
    }
    return out;
  }

  private list(seq: Node & { items: Node[] }, t: FieldType & { kind: "list" }, path: string, depth: number): Decoded {
    if (seq.items.length > MAX_LIST_ENTRIES)
      throw badRequest(`${path}: too many entries (${seq.items.length} > ${MAX_LIST_ENTRIES})`);
    const out: unknown[] = [];
    // yaml.v3 drops elements that do not decode (nulls included) instead of keeping zero values.
    seq.items.forEach((item, i) => {
      const v = this.decode(item, t.of, `${path}[${i}]`, depth + 1);
      if (v !== MISSING) out.push(v);
    });
    return out;
  }

  private anySeq(seq: Node & { items: Node[] }, path: string, depth: number): GoValue {
    return {
      type: "seq",
      items: seq.items.map((item, i) => this.decode(item, ANY, `${path}[${i}]`, depth + 1) as GoValue),
    };
  }

  private anyMap(
    map: Node & { items: Array<{ key: Node | null; value: Node | null }> },
    topLevelOptions: boolean,
    path: string,
    depth: number,
  ): Decoded {
    const stringKeys = topLevelOptions || map.items.every(({ key }) => shortTag(key, this.targets) === "!!str");
    const entries = new Map<string, [GoValue, GoValue]>();
    for (const { key, value } of map.items) {
      this.rejectMerge(key, path);
      let k: GoValue;
      if (stringKeys) {
        const s = this.decode(key, str, path, depth + 1);
        if (s === MISSING) continue;
        k = { type: "string", value: s as string };
      } else {
        const kind = nodeKind(key, this.targets);
        if (kind !== "scalar") this.fail(`line ${this.line(key)}: invalid map key: a ${kind} cannot be a key`, path);
        k = this.decode(key, ANY, path, depth + 1) as GoValue;
        if (k.type === "float" && Number.isNaN(k.value)) this.fail("NaN map keys are not supported", path);
      }
      const v = this.decode(value, ANY, `${path}.${goValueText(k)}`, depth + 1) as GoValue;
      entries.set(goKeyIdentity(k), [k, v]); // later duplicates win, as with Go map assignment
    }
    const list = [...entries.values()];
    // Go orders such keys by its random map iteration (they compare equal), so there is no one answer.
    if (list.filter(([k]) => k.type === "time").length > 1)
      this.fail("a map with more than one timestamp key has no stable order", path);
    if (topLevelOptions) return list.map(([k, v]) => [(k as { value: string }).value, v] as [string, GoValue]);
    return { type: "map", stringKeys, entries: list };
  }

  private scalar(n: Node | null, t: FieldType, path: string): Decoded {
    const text = nodeValue(n);
    const tag = goNodeTag(n);
    let resolved: Resolved;
    let binary = false;
    if (tag === "!!str") {
      resolved = { tag: "!!str", value: text };
    } else {
      try {
        resolved = goResolve(tag, text);
      } catch (err) {
        if (err instanceof ResolveError) this.fail(err.message, path);
        throw err;
      }
      if (resolved.tag === "!!binary") {
        resolved = { tag: "!!str", value: decodeBinary(text, path) };
        binary = true;
      }
    }
    if (resolved.tag === "!!null") {
      // Go's d.null: only interfaces, maps and slices take a null (as their zero value).
      // Everything else keeps (or falls back to) its zero value, which is what MISSING means here.
      if (t.kind === "any") return { type: "null" } satisfies GoValue;
      return MISSING;
    }
    const source = binary ? (resolved as { value: string }).value : text;
    switch (t.kind) {
      case "string":
        return source;
      case "bootloader": {
        const name = [source, source.toLowerCase()].find((s) => s === "none" || bootloaders.includes(s as Bootloader));
        if (name === undefined) this.fail(`${source} does not belong to BootloaderKind values`, path);
        return name === "none" ? MISSING : name;
      }
      case "uint": {
        const u = toGoUint(resolved, t.bits);
        if (u !== undefined) return t.bits === 8 ? Number(u) : u;
        break;
      }
      case "bool":
        if (resolved.tag === "!!bool") return (resolved as { value: boolean }).value;
        if (resolved.tag === "!!str") {
          const b = goOldBool((resolved as { value: string }).value);
          if (b !== undefined) return b;
        }
        break;
      case "any":
        return resolvedToGoValue(resolved);
    }
    const shown = text.length > 10 ? `${text.slice(0, 7)}...` : text;
    this.typeError(
      `line ${this.line(n)}: cannot unmarshal ${tag === "" ? resolved.tag : tag} \`${shown}\` into ${typeName(t)}`,
      path,
    );
    return MISSING;
  }
}

const ANY: FieldType = { kind: "any" };

function allowedAliasRatio(decodeCount: number): number {
  const low = 400_000;
  const high = 4_000_000;
  if (decodeCount <= low) return 0.99;
  if (decodeCount >= high) return 0.1;
  return 0.99 - 0.89 * ((decodeCount - low) / (high - low));
}

/** Go's conversion of a resolved number into an unsigned field (floats are truncated, as in Go). */
function toGoUint(r: Resolved, bits: 8 | 64): bigint | undefined {
  let u: bigint | undefined;
  if (r.tag === "!!int") {
    const v = (r as { value: bigint }).value;
    u = v >= 0n ? v : undefined;
  } else if (r.tag === "!!float") {
    const f = (r as { value: number }).value;
    if (!(f <= 2 ** 64)) return undefined; // Go's bound, 2^64 - 1, is 2^64 as a double
    const t = BigInt(Math.trunc(f));
    // amd64 converts through a signed 64-bit integer: negatives wrap, far negatives become 2^63.
    u = t >= 0n ? t : t < -(1n << 63n) ? 1n << 63n : (1n << 64n) + t;
  }
  if (u === undefined || u > (bits === 8 ? 255n : UINT64_MAX)) return undefined;
  return u;
}

function resolvedToGoValue(r: Resolved): GoValue {
  switch (r.tag) {
    case "!!bool":
      return { type: "bool", value: (r as { value: boolean }).value };
    case "!!int":
      return { type: "int", value: (r as { value: bigint }).value, unsigned: (r as { unsigned: boolean }).unsigned };
    case "!!float":
      return { type: "float", value: (r as { value: number }).value };
    case "!!timestamp":
      return { type: "time", value: (r as { value: GoTime }).value };
    case "!!null":
      return { type: "null" };
    default:
      return { type: "string", value: (r as { value: string }).value };
  }
}

function decodeBinary(text: string, path: string): string {
  const compact = text.replace(/[\r\n]/g, "");
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact))
    throw badRequest(`!!binary value contains invalid base64 data (at ${path})`);
  const bytes = Buffer.from(compact, "base64");
  const decoded = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (!Buffer.from(decoded).equals(bytes))
    throw badRequest(`!!binary values that are not UTF-8 text are not supported (at ${path})`);
  return decoded;
}

// --- node helpers over eemeli/yaml's tree, giving yaml.v3's view of each node ---

/** Each alias node's target: the latest node before it carrying its anchor (undefined: no such anchor). */
type AliasTargets = Map<Node, Node | undefined>;

/**
 * Every alias's target, found in one walk of the document. (The yaml library's `Alias.resolve` walks the
 * document from the start for each alias, which is quadratic in their number: a small body of tens of
 * thousands of aliases would hold the event loop for minutes.)
 */
function aliasTargets(doc: Document): AliasTargets {
  const anchors = new Map<string, Node>();
  const targets: AliasTargets = new Map();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) targets.set(node, anchors.get(node.source));
      else if (node.anchor !== undefined && node.anchor !== "") anchors.set(node.anchor, node);
    },
  });
  return targets;
}

function nodeKind(n: Node | null, targets?: AliasTargets): "scalar" | "seq" | "map" {
  if (n !== null && isAlias(n) && targets !== undefined) return nodeKind(targets.get(n) ?? null, targets);
  if (n === null || isScalar(n)) return "scalar";
  if (isSeq(n)) return "seq";
  if (isMap(n)) return "map";
  return "scalar";
}

function nodeValue(n: Node | null): string {
  if (n === null) return "";
  if (isScalar(n)) return n.value === null || n.value === undefined ? "" : String(n.value);
  if (isAlias(n)) return n.source;
  return "";
}

function isQuotedOrBlock(n: Node | null): boolean {
  return n !== null && isScalar(n) && n.type !== undefined && n.type !== "PLAIN";
}

function shortenTag(tag: string): string {
  const prefix = "tag:yaml.org,2002:";
  return tag.startsWith(prefix) ? `!!${tag.slice(prefix.length)}` : tag;
}

function explicitTag(n: Node | null): string | undefined {
  const tag = n === null ? undefined : (n as { tag?: string }).tag;
  return tag === undefined || tag === "" || tag === "!" ? undefined : shortenTag(tag);
}

/** The tag yaml.v3's parser gives a scalar node: explicit, else !!str when quoted, else resolved. */
function goNodeTag(n: Node | null): string {
  const explicit = explicitTag(n);
  if (explicit !== undefined) return explicit;
  if (isQuotedOrBlock(n)) return "!!str";
  const text = nodeValue(n);
  if (text === "<<") return "!!merge";
  return goResolve("", text).tag;
}

/** yaml.v3's Node.ShortTag(). */
function shortTag(n: Node | null, targets: AliasTargets): string {
  if (n !== null && isAlias(n)) return shortTag(targets.get(n) ?? null, targets);
  const kind = nodeKind(n);
  if (kind === "seq") return explicitTag(n) ?? "!!seq";
  if (kind === "map") return explicitTag(n) ?? "!!map";
  return goNodeTag(n);
}

function isMergeKey(n: Node | null): boolean {
  return n !== null && isScalar(n) && !isQuotedOrBlock(n) && nodeValue(n) === "<<" && explicitTag(n) === undefined;
}

function goValueText(v: GoValue): string {
  return v.type === "string" ? v.value : (goScalarText(v) ?? v.type);
}

function goKeyIdentity(k: GoValue): string {
  return `${k.type}:${goValueText(k)}`;
}

// ---------------------------------------------------------------------------------------------------

/** Parses a request body (YAML or JSON) into a schematic, refusing what upstream refuses. */
/**
 * The yaml library's message is "REASON at line L, column C:" followed by a code excerpt; the excerpt goes
 * and the position becomes a parenthesis, so the one-line message does not end on a dangling colon.
 */
function describeYamlError(err: Error): string {
  const first = (err.message.split("\n")[0] ?? "").trim();
  const at = /^(.*?)\s+at line (\d+), column (\d+):?$/.exec(first);
  return at ? `${at[1]} (line ${at[2]}, column ${at[3]})` : first.replace(/:$/, "");
}

/**
 * Refuses nesting deeper than MAX_NESTING_DEPTH, more than MAX_ALIASES aliases and more than MAX_BODY_SCALARS
 * scalars, before the document is
 * built, from the token stream alone
 * (linear, and it stops at the first token past the limit): building the tree of 1 MB of "[" takes seconds
 * and a gigabyte before any depth check on the tree could run. Flow collections count by their brackets;
 * block collections by the indicators ("- ", "? ", ": ") that open nested ones on one line, which is where
 * a small body can nest deeply (indentation costs a column per level).
 */
function refuseCostlyStructure(text: string): void {
  let flow = 0;
  let aliases = 0;
  let scalars = 0;
  let blockOnLine = 0;
  const tooDeep = () => badRequest(`invalid schematic: nesting deeper than ${MAX_NESTING_DEPTH} levels`);
  for (const token of new Lexer().lex(text)) {
    switch (CST.tokenType(token)) {
      case "flow-seq-start":
      case "flow-map-start":
        if (++flow > MAX_NESTING_DEPTH) throw tooDeep();
        break;
      case "flow-seq-end":
      case "flow-map-end":
        flow = Math.max(0, flow - 1);
        break;
      case "seq-item-ind":
      case "explicit-key-ind":
      case "map-value-ind":
        if (flow === 0 && ++blockOnLine > MAX_NESTING_DEPTH) throw tooDeep();
        break;
      case "newline":
        blockOnLine = 0;
        break;
      case "scalar":
      case "single-quoted-scalar":
      case "double-quoted-scalar":
        if (++scalars > MAX_BODY_SCALARS)
          throw badRequest(`invalid schematic: more than ${MAX_BODY_SCALARS} scalars`, "SCHEMATIC_TOO_COMPLEX");
        break;
      case "alias":
        if (++aliases > MAX_ALIASES)
          throw badRequest(`invalid schematic: more than ${MAX_ALIASES} aliases`, "SCHEMATIC_TOO_COMPLEX");
        break;
    }
  }
}

export function parseSchematic(body: Buffer | string): Schematic {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  if (bytes.length > MAX_SCHEMATIC_BYTES)
    throw badRequest(`schematic is larger than ${MAX_SCHEMATIC_BYTES} bytes`, "SCHEMATIC_TOO_LARGE");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw badRequest("schematic is not valid UTF-8");
  }
  // yaml.v3's reader refuses characters outside YAML's printable set; NEL, LS, PS and a lone CR are line
  // breaks to it (YAML 1.1) but not to the YAML 1.2 parser used here, so they are refused rather than
  // read differently.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the set spells out YAML's printable characters
  if (/[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u.test(text.replace(/^\uFEFF/, "")))
    throw badRequest("invalid schematic: control characters are not allowed");
  if (/[\x85\u2028\u2029]|\r(?!\n)/.test(text))
    throw badRequest("invalid schematic: NEL, LS, PS and lone CR line breaks are not supported; use \\n");
  refuseCostlyStructure(text);
  const lines = new LineCounter();
  let doc: Document;
  try {
    const docs = parseAllDocuments(text, {
      schema: "failsafe",
      resolveKnownTags: false,
      uniqueKeys: false,
      lineCounter: lines,
      version: "1.2",
    });
    if (!Array.isArray(docs) || docs.length === 0) throw badRequest("invalid schematic: EOF");
    doc = docs[0] as Document;
  } catch (err) {
    if (err instanceof RangeError) throw badRequest("invalid schematic: nesting too deep");
    throw err;
  }
  if (doc.errors.length > 0) throw badRequest(`invalid schematic: ${describeYamlError(doc.errors[0] as Error)}`);

  const decoder = new Decoder(aliasTargets(doc), lines);
  let decoded: Decoded;
  try {
    decoded = decoder.decode((doc.contents as Node | null) ?? null, schematicType, "");
  } catch (err) {
    if (err instanceof Fatal) throw badRequest(`invalid schematic: ${err.message}`);
    if (err instanceof RangeError) throw badRequest("invalid schematic: nesting too deep");
    throw err;
  }
  if (decoder.errors.length > 0) throw badRequest(`invalid schematic: ${decoder.errors.slice(0, 5).join("; ")}`);
  return toSchematic(decoded === MISSING ? {} : (decoded as Record<string, unknown>));
}

type Raw = Record<string, unknown>;

/** Turns the decoded struct into the model, dropping zero values exactly where omitempty would. */
function toSchematic(raw: Raw): Schematic {
  if (typeof raw.owner === "string" && raw.owner !== "")
    throw badRequest("owner field is only supported in Enterprise edition");
  const s: Schematic = { customization: {} };
  const overlay = raw.overlay as Raw | undefined;
  if (overlay !== undefined) {
    const options = overlay.options as Array<[string, GoValue]> | undefined;
    const o: NonNullable<Schematic["overlay"]> = {
      image: (overlay.image as string | undefined) ?? "",
      name: (overlay.name as string | undefined) ?? "",
    };
    if (options !== undefined && options.length > 0) o.options = options;
    if (o.image !== "" || o.name !== "" || o.options !== undefined) s.overlay = o;
  }
  const c = (raw.customization as Raw | undefined) ?? {};
  const out = s.customization;
  if (typeof c.embeddedMachineConfiguration === "string" && c.embeddedMachineConfiguration !== "")
    out.embeddedMachineConfiguration = c.embeddedMachineConfiguration;
  const args = c.extraKernelArgs as string[] | undefined;
  if (args !== undefined && args.length > 0) out.extraKernelArgs = args;
  const meta = c.meta as Raw[] | undefined;
  if (meta !== undefined && meta.length > 0)
    out.meta = meta.map((m) => ({
      key: (m.key as number | undefined) ?? 0,
      value: (m.value as string | undefined) ?? "",
    }));
  const extensions = (c.systemExtensions as Raw | undefined)?.officialExtensions as string[] | undefined;
  if (extensions !== undefined && extensions.length > 0) out.systemExtensions = { officialExtensions: extensions };
  if (typeof c.bootloader === "string") out.bootloader = c.bootloader as Bootloader;
  const sb = c.secureboot as Raw | undefined;
  if (sb !== undefined) {
    const secureboot: NonNullable<Schematic["customization"]["secureboot"]> = {};
    if (typeof sb.enrollKeys === "string" && sb.enrollKeys !== "") {
      if (!(enrollKeysValues as readonly string[]).includes(sb.enrollKeys))
        throw badRequest(
          `invalid secureboot enrollKeys value ${JSON.stringify(sb.enrollKeys)}: expected one of ${enrollKeysValues.join(", ")}`,
        );
      secureboot.enrollKeys = sb.enrollKeys;
    }
    if (sb.includeWellKnownCertificates === true) secureboot.includeWellKnownCertificates = true;
    if (Object.keys(secureboot).length > 0) out.secureboot = secureboot;
  }
  const sectorSize = (c.diskImage as Raw | undefined)?.sectorSize as bigint | undefined;
  if (sectorSize !== undefined && sectorSize !== 0n) {
    if (sectorSize > BigInt(Number.MAX_SAFE_INTEGER))
      throw badRequest("customization.diskImage.sectorSize is too large");
    out.diskImage = { sectorSize: Number(sectorSize) };
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Encoding, the way yaml.v3 marshals upstream's struct.

/** Go's encoder: a string is plain unless it would read back as another type; multi-line → literal. */
function goString(s: string): YamlNode {
  if (s.includes("\n")) return { kind: "scalar", value: s, style: "literal" };
  return { kind: "scalar", value: s, style: goStringCanBePlain(s) ? "plain" : "double" };
}

const plain = (value: string): YamlNode => ({ kind: "scalar", value, style: "plain" });

function goScalarText(v: GoValue): string | undefined {
  switch (v.type) {
    case "null":
      return "null";
    case "bool":
      return String(v.value);
    case "int":
      return v.value.toString();
    case "float":
      return formatGoFloat(v.value);
    case "time":
      return formatGoTime(v.value);
    default:
      return undefined;
  }
}

function goValueNode(v: GoValue): YamlNode {
  if (v.type === "string") return goString(v.value);
  if (v.type === "seq") return { kind: "seq", items: v.items.map(goValueNode) };
  if (v.type === "map") {
    const entries = [...v.entries].sort(([a], [b]) => (goKeyLess(a, b) ? -1 : goKeyLess(b, a) ? 1 : 0));
    return { kind: "map", entries: entries.map(([k, val]) => [goValueNode(k), goValueNode(val)]) };
  }
  return plain(goScalarText(v) as string);
}

// reflect.Kind numbers: yaml.v3 orders map keys of different kinds by them.
const kindRank: Record<GoValue["type"], number> = {
  bool: 1,
  int: 2,
  float: 14,
  null: 20,
  seq: 23,
  map: 21,
  string: 24,
  time: 25,
};

function keyRank(v: GoValue): number {
  return v.type === "int" && v.unsigned ? 11 : kindRank[v.type];
}

function keyFloat(v: GoValue): number | undefined {
  if (v.type === "int") return Number(v.value);
  if (v.type === "float") return v.value;
  if (v.type === "bool") return v.value ? 1 : 0;
  return undefined;
}

const isGoDigit = (ch: string) => /\p{Nd}/u.test(ch);
const isGoLetter = (ch: string) => /\p{L}/u.test(ch);

/** yaml.v3's keyList.Less: numbers by value, then kinds, then strings in "natural" order. */
function goKeyLess(a: GoValue, b: GoValue): boolean {
  const af = keyFloat(a);
  const bf = keyFloat(b);
  if (af !== undefined && bf !== undefined) {
    if (af !== bf) return af < bf;
    if (keyRank(a) !== keyRank(b)) return keyRank(a) < keyRank(b);
    if (a.type === "int" && b.type === "int") return a.value < b.value;
    if (a.type === "float" && b.type === "float") return a.value < b.value;
    if (a.type === "bool" && b.type === "bool") return !a.value && b.value;
    return false;
  }
  if (a.type !== "string" || b.type !== "string") return keyRank(a) < keyRank(b);
  const ar = [...a.value];
  const br = [...b.value];
  let digits = false;
  for (let i = 0; i < ar.length && i < br.length; i++) {
    const ac = ar[i] as string;
    const bc = br[i] as string;
    if (ac === bc) {
      digits = isGoDigit(ac);
      continue;
    }
    const al = isGoLetter(ac);
    const bl = isGoLetter(bc);
    if (al && bl) return (ac.codePointAt(0) as number) < (bc.codePointAt(0) as number);
    if (al || bl) return digits ? al : bl;
    let an = 0n;
    let bn = 0n;
    if (ac === "0" || bc === "0") {
      for (let j = i - 1; j >= 0 && isGoDigit(ar[j] as string); j--) {
        if (ar[j] !== "0") {
          an = 1n;
          bn = 1n;
          break;
        }
      }
    }
    let ai = i;
    for (; ai < ar.length && isGoDigit(ar[ai] as string); ai++)
      an = BigInt.asIntN(64, an * 10n + BigInt((ar[ai] as string).codePointAt(0) as number) - 48n);
    let bi = i;
    for (; bi < br.length && isGoDigit(br[bi] as string); bi++)
      bn = BigInt.asIntN(64, bn * 10n + BigInt((br[bi] as string).codePointAt(0) as number) - 48n);
    if (an !== bn) return an < bn;
    if (ai !== bi) return ai < bi;
    return (ac.codePointAt(0) as number) < (bc.codePointAt(0) as number);
  }
  return ar.length < br.length;
}

const map = (entries: Array<[string, YamlNode | undefined]>): YamlNode => ({
  kind: "map",
  entries: entries.filter((e): e is [string, YamlNode] => e[1] !== undefined).map(([k, v]) => [plain(k), v]),
});
const strings = (list: string[] | undefined): YamlNode | undefined =>
  list !== undefined && list.length > 0 ? { kind: "seq", items: list.map(goString) } : undefined;
const nonEmptyString = (s: string | undefined): YamlNode | undefined =>
  s !== undefined && s !== "" ? goString(s) : undefined;
const nonEmptyMap = (node: YamlNode): YamlNode | undefined =>
  node.kind === "map" && node.entries.length === 0 ? undefined : node;

function schematicNode(s: Schematic): YamlNode {
  const c = s.customization;
  const overlay = s.overlay;
  const overlayNode =
    overlay === undefined
      ? undefined
      : nonEmptyMap(
          map([
            ["image", goString(overlay.image)],
            ["name", goString(overlay.name)],
            [
              "options",
              overlay.options !== undefined && overlay.options.length > 0
                ? goValueNode({
                    type: "map",
                    stringKeys: true,
                    entries: overlay.options.map(([k, v]) => [{ type: "string", value: k }, v]),
                  })
                : undefined,
            ],
          ]),
        );
  const customization = map([
    ["embeddedMachineConfiguration", nonEmptyString(c.embeddedMachineConfiguration)],
    ["extraKernelArgs", strings(c.extraKernelArgs)],
    [
      "meta",
      c.meta !== undefined && c.meta.length > 0
        ? {
            kind: "seq",
            items: c.meta.map((m) =>
              map([
                ["key", plain(String(m.key))],
                ["value", goString(m.value)],
              ]),
            ),
          }
        : undefined,
    ],
    ["systemExtensions", nonEmptyMap(map([["officialExtensions", strings(c.systemExtensions?.officialExtensions)]]))],
    ["bootloader", c.bootloader !== undefined ? goString(c.bootloader) : undefined],
    [
      "secureboot",
      nonEmptyMap(
        map([
          ["enrollKeys", nonEmptyString(c.secureboot?.enrollKeys)],
          ["includeWellKnownCertificates", c.secureboot?.includeWellKnownCertificates ? plain("true") : undefined],
        ]),
      ),
    ],
    [
      "diskImage",
      nonEmptyMap(map([["sectorSize", c.diskImage?.sectorSize ? plain(String(c.diskImage.sectorSize)) : undefined]])),
    ],
  ]);
  return map([
    ["overlay", overlayNode],
    ["customization", customization],
  ]);
}

/**
 * The canonical YAML: byte for byte what upstream's yaml.Marshal prints for this schematic. yaml.v3 escapes
 * U+2028/U+2029 in double-quoted scalars (\L, \P) but prints them raw in single-quoted and plain ones, where
 * its own reader (and ours) takes them for line breaks: such a schematic would be stored under an ID that does
 * not read back as the same value, so it is refused instead (the one place this project refuses what
 * upstream accepts; docs/limits.md).
 */
export function canonicalYaml(s: Schematic): string {
  const yaml = emitGoYaml(schematicNode(s));
  if (/[\u2028\u2029]/.test(yaml))
    throw badRequest(
      "invalid schematic: a value holding a line or paragraph separator (U+2028, U+2029) that the canonical YAML " +
        "would print raw; escape-free, it would not read back the same (write it without the separator)",
    );
  return yaml;
}

/** The schematic ID: hex sha256 of the canonical YAML. */
export function schematicId(s: Schematic): string {
  return createHash("sha256").update(canonicalYaml(s)).digest("hex");
}

/**
 * The overlay's options as yaml.v3 marshals upstream's `overlay.ExtraOptions` (a `map[string]any`: keys
 * sorted as Go sorts them); undefined when there are none.
 */
export function overlayOptionsNode(options: Array<[string, GoValue]> | undefined): YamlNode | undefined {
  if (options === undefined || options.length === 0) return undefined;
  return goValueNode({
    type: "map",
    stringKeys: true,
    entries: options.map(([k, v]) => [{ type: "string", value: k }, v]),
  });
}

/** A Go string as yaml.v3 writes it (plain unless it would read back as something else). */
export const goStringNode = goString;
