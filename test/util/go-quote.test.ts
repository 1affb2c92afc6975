// goQuote against Go's strconv.Quote as its documentation and tests (strconv/quote_test.go) show it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { goQuote } from "../../src/util/go-quote.ts";

describe("goQuote (Go's %q)", () => {
  const cases: Array<[string, string]> = [
    ["aaaaaaaaaaaa", '"aaaaaaaaaaaa"'],
    ['"Fran & Freddie\'s Diner"', '"\\"Fran & Freddie\'s Diner\\""'],
    ["\x07\b\f\r\n\t\v", '"\\a\\b\\f\\r\\n\\t\\v"'],
    ["\\", '"\\\\"'],
    ["abc\xffdef", '"abc\u00ffdef"'],
    ["\u263a", '"\u263a"'],
    ["\x04", '"\\x04"'],
    ["\x7f", '"\\x7f"'],
    ["\u00a0", '"\\u00a0"'],
    ["\u2028", '"\\u2028"'],
    ["\u{10ffff}", '"\\U0010ffff"'],
    ["a b", '"a b"'],
  ];
  for (const [input, quoted] of cases)
    it(`${JSON.stringify(input)} → ${quoted}`, () => {
      assert.equal(goQuote(input), quoted);
    });
});
