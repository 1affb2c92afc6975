// Hostile schematic bodies: each costly shape is refused early, in time linear in the body, with a message
// naming the limit; what is accepted expands to a bounded document and reads back to the same ID.
// go-yaml's own guards are the reference: yaml.v3 decode.go (allowedAliasRatio, "excessive aliasing") and
// its parser's nesting limit; here the limits are documented in docs/limits.md.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isAppError } from "../../src/errors.ts";
import {
  canonicalYaml,
  MAX_ALIASES,
  MAX_BODY_SCALARS,
  MAX_EXPANDED_TEXT_BYTES,
  MAX_NESTING_DEPTH,
  parseSchematic,
  schematicId,
} from "../../src/talos/schematic.ts";

type ShapeOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

const overlay = (options: string) => `overlay:\n  image: x\n  name: y\n  options:\n${options}`;

/** Parses `body`, returning the outcome and the wall-clock time it took. */
function timed(body: string): { ms: number; error?: string; canonical?: string } {
  const started = performance.now();
  try {
    const canonical = canonicalYaml(parseSchematic(body));
    return { ms: performance.now() - started, canonical };
  } catch (err) {
    assert.ok(isAppError(err, "BadRequest"), `a BadRequest, not ${String(err)}`);
    return { ms: performance.now() - started, error: err.message };
  }
}

describe("hostile schematic bodies are refused early, naming the limit", () => {
  const rows: Array<{ rule: string; body: string; error: RegExp }> = [
    {
      rule: "20,000 aliases of one anchor in a flow sequence (quadratic to resolve one by one)",
      body: overlay(`    k: [&a x${", *a".repeat(20_000)}]\n`),
      error: new RegExp(`more than ${MAX_ALIASES} aliases`),
    },
    {
      rule: "20,000 map entries aliasing one anchor",
      body: overlay(`    a: &a x\n${Array.from({ length: 20_000 }, (_, i) => `    k${i}: *a\n`).join("")}`),
      error: new RegExp(`more than ${MAX_ALIASES} aliases`),
    },
    {
      rule: "200,000 repeated keys in 1 MiB (3 s for the YAML library to build and check)",
      body: "a: 1\n".repeat(200_000),
      error: new RegExp(`more than ${MAX_BODY_SCALARS} scalars`),
    },
    {
      rule: "100,000 list entries (refused before the list's own bound could be checked on the tree)",
      body: `customization:\n  extraKernelArgs:\n${"    - x\n".repeat(100_000)}`,
      error: new RegExp(`more than ${MAX_BODY_SCALARS} scalars`),
    },
    {
      rule: "a 4 KB anchor expanded by 4,000 aliases (16 MB of text from 20 KB)",
      body: overlay(`    a: &a ${"x".repeat(4000)}\n    k: [${Array(4000).fill("*a").join(", ")}]\n`),
      error: new RegExp(`expands to more than ${MAX_EXPANDED_TEXT_BYTES} bytes of text`),
    },
    {
      rule: "a billion laughs (9 levels of 9 aliases)",
      body: overlay(
        `    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n${Array.from({ length: 8 }, (_, i) => {
          const name = String.fromCharCode(98 + i);
          return `    ${name}: &${name} [${Array(9)
            .fill(`*${String.fromCharCode(97 + i)}`)
            .join(", ")}]\n`;
        }).join("")}`,
      ),
      error: /excessive aliasing|expands to more than/,
    },
    {
      rule: "1 MiB - 1 of [",
      body: "[".repeat(1024 * 1024 - 1),
      error: new RegExp(`nesting deeper than ${MAX_NESTING_DEPTH} levels`),
    },
    {
      rule: "half a MiB of compact block sequences (- - - …)",
      body: "- ".repeat(512 * 1024 - 1),
      error: new RegExp(`nesting deeper than ${MAX_NESTING_DEPTH} levels`),
    },
    {
      rule: "65 nested flow maps inside overlay options",
      body: overlay(`    k: ${"{a: ".repeat(65)}x${"}".repeat(65)}\n`),
      error: new RegExp(`nesting deeper than ${MAX_NESTING_DEPTH} levels`),
    },
  ];
  for (const row of rows)
    test(`${row.rule}: 400 in under a second`, () => {
      const rssBefore = process.memoryUsage().rss;
      const outcome = timed(row.body);
      assert.match(outcome.error ?? "(accepted)", row.error);
      assert.ok(outcome.ms < 1000, `took ${outcome.ms.toFixed(0)} ms`);
      const grown = (process.memoryUsage().rss - rssBefore) / 1024 ** 2;
      assert.ok(grown < 100, `RSS grew ${grown.toFixed(0)} MB`);
    });
});

describe("Unicode is refused or round-trips, and never changes the ID", () => {
  const refused: Array<[string, string, RegExp]> = [
    ["a line separator that the canonical YAML would print raw (single-quoted)", '"a\\u2028b"', /U\+2028, U\+2029/],
    ["a paragraph separator that the canonical YAML would print raw", '"\\u2029"', /U\+2028, U\+2029/],
    ["a lone surrogate escape (yaml.v3: invalid Unicode character escape code)", '"a\\ud800b"', /lone surrogate/],
    ["a raw line separator", '"a\u2028b"', /NEL, LS, PS/],
  ];
  for (const [rule, value, error] of refused)
    test(`${rule} is a 400`, () => {
      assert.match(timed(`customization: {extraKernelArgs: [${value}]}`).error ?? "(accepted)", error);
    });

  for (const [rule, value] of [
    ["NEL, escaped", '"a\\x85b"'],
    ["a control character, escaped", '"a\\x01b"'],
    ["an astral character", '"\\U0001F600"'],
    ["a line separator beside a control character (double-quoted: printed as \\L)", '"a\\u2028\\x01b"'],
    ["a paragraph separator beside a control character (printed as \\P)", '"a\\u2029\\x7fb"'],
    ["a BOM inside a value", '"a\\ufeffb"'],
  ])
    test(`${rule} round-trips: the canonical YAML reads back to the same schematic and ID`, () => {
      const outcome = timed(`customization: {extraKernelArgs: [${value}]}`);
      assert.ok(outcome.canonical !== undefined, outcome.error);
      const again = parseSchematic(outcome.canonical);
      assert.equal(canonicalYaml(again), outcome.canonical);
      assert.equal(schematicId(again), schematicId(parseSchematic(outcome.canonical)));
    });
});

describe("property: parse time and output size stay linear in the body (anchors, aliases, nesting)", () => {
  const shape = fc.record({
    anchorBytes: fc.integer({ min: 1, max: 8000 }),
    aliases: fc.integer({ min: 0, max: 2 * MAX_ALIASES }),
    aliasesPerEntry: fc.integer({ min: 1, max: 50 }),
    depth: fc.integer({ min: 0, max: 2 * MAX_NESTING_DEPTH }),
    nestedAliases: fc.boolean(),
  });

  /** A body with one anchor, `aliases` aliases of it spread over entries, and one value nested `depth` deep. */
  function body(s: ShapeOf<typeof shape>): string {
    const lines = [`    a: &a ${s.nestedAliases ? "[p, q, r]" : "x".repeat(s.anchorBytes)}`];
    for (let left = s.aliases, i = 0; left > 0; i++) {
      const n = Math.min(left, s.aliasesPerEntry);
      lines.push(`    k${i}: [${Array(n).fill("*a").join(", ")}]`);
      left -= n;
    }
    lines.push(`    deep: ${"[".repeat(s.depth)}x${"]".repeat(s.depth)}`);
    return overlay(`${lines.join("\n")}\n`);
  }

  // The time budget is generous for a shared, loaded 2-core machine, and still far below what quadratic alias
  // resolution took: 8,000 aliases (~40 KB) cost seconds before, against a budget of ~1.8 s here.
  test("every generated body is answered within 1 s + 20 µs per byte, its output within 10× + the expansion bound", () => {
    fc.assert(
      fc.property(shape, (s) => {
        const text = body(s);
        const outcome = timed(text);
        const budgetMs = 1000 + 0.02 * text.length;
        assert.ok(outcome.ms < budgetMs, `${outcome.ms.toFixed(0)} ms for ${text.length} bytes`);
        if (outcome.canonical !== undefined)
          assert.ok(
            outcome.canonical.length <= 10 * text.length + MAX_EXPANDED_TEXT_BYTES,
            `${outcome.canonical.length} bytes out of ${text.length}`,
          );
      }),
      { numRuns: 60 },
    );
  });
});
