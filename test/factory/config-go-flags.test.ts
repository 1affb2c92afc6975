// Go's `flag` rules, one row per rule, as the factory's command line follows them; and Go's duration syntax.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseGoDurationMilliseconds } from "../../src/factory/config/go-duration.ts";
import { type GoFlagDefinition, parseGoFlags } from "../../src/factory/config/go-flags.ts";
import { ConfigError, readFactoryCommandLine } from "../../src/factory/config/index.ts";

const definitions: GoFlagDefinition[] = [
  { name: "http-port", kind: "value" },
  { name: "external-pxe-url", kind: "value" },
  { name: "secureboot", kind: "bool" },
  { name: "config", kind: "value" },
];

const parse = (...args: string[]) => parseGoFlags(args, definitions);
const pairs = (...args: string[]) => parse(...args).flags.map((f) => [f.spelling, f.value]);

describe("Go flag rules", () => {
  it("one dash: -name value", () => assert.deepEqual(pairs("-http-port", ":1"), [["-http-port", ":1"]]));
  it("two dashes mean the same: --name value", () =>
    assert.deepEqual(pairs("--http-port", ":1"), [["--http-port", ":1"]]));
  it("= is optional: -name=value", () => assert.deepEqual(pairs("-http-port=:1"), [["-http-port", ":1"]]));
  it("= with two dashes: --name=value", () => assert.deepEqual(pairs("--http-port=:1"), [["--http-port", ":1"]]));
  it("the value may itself contain =", () => assert.deepEqual(pairs("--config=env=IF_"), [["--config", "env=IF_"]]));
  it("a value flag takes the next argument even when it starts with a dash", () =>
    assert.deepEqual(pairs("-external-pxe-url", "-x"), [["-external-pxe-url", "-x"]]));
  it("an empty value is a value: -name=", () => assert.deepEqual(pairs("-http-port="), [["-http-port", ""]]));
  it("a boolean alone is true: -secureboot", () => assert.deepEqual(pairs("-secureboot"), [["-secureboot", "true"]]));
  for (const [spelling, expected] of [
    ["1", "true"],
    ["t", "true"],
    ["T", "true"],
    ["TRUE", "true"],
    ["true", "true"],
    ["True", "true"],
    ["0", "false"],
    ["f", "false"],
    ["F", "false"],
    ["FALSE", "false"],
    ["false", "false"],
    ["False", "false"],
  ] as const) {
    it(`a boolean takes strconv.ParseBool's ${JSON.stringify(spelling)} after =`, () =>
      assert.deepEqual(pairs(`-secureboot=${spelling}`), [["-secureboot", expected]]));
  }
  for (const spelling of ["yes", "on", "", " true", "tRUE"])
    it(`a boolean refuses ${JSON.stringify(spelling)}, naming the flag`, () =>
      assert.throws(() => parse(`-secureboot=${spelling}`), /invalid boolean value .* for flag -secureboot/));
  it("a boolean never takes the next argument: -secureboot false leaves a positional", () => {
    const result = parse("-secureboot", "false", "-http-port", ":1");
    assert.deepEqual(
      result.flags.map((f) => f.value),
      ["true"],
    );
    assert.deepEqual(result.positional, ["false", "-http-port", ":1"]);
  });
  it("parsing stops at the first non-flag argument", () =>
    assert.deepEqual(parse("-http-port", ":1", "serve", "-secureboot").positional, ["serve", "-secureboot"]));
  it('"-" alone is a non-flag argument', () =>
    assert.deepEqual(parse("-", "-secureboot").positional, ["-", "-secureboot"]));
  it('"--" ends the flags and is dropped', () =>
    assert.deepEqual(parse("-secureboot", "--", "-http-port", ":1"), {
      flags: [{ name: "secureboot", spelling: "-secureboot", value: "true" }],
      positional: ["-http-port", ":1"],
      help: false,
    }));
  it("an undefined flag is an error naming it", () =>
    assert.throws(() => parse("-nope=1"), { message: "flag provided but not defined: -nope" }));
  it("a value flag at the end without a value is an error naming it", () =>
    assert.throws(() => parse("-secureboot", "--http-port"), { message: "flag needs an argument: --http-port" }));
  for (const bad of ["---http-port", "-=x", "--=x"])
    it(`bad flag syntax ${JSON.stringify(bad)} is an error`, () => assert.throws(() => parse(bad), /bad flag syntax/));
  it("flags repeat and are returned in order", () =>
    assert.deepEqual(pairs("-http-port", ":1", "--config", "a.yaml", "-http-port=:2"), [
      ["-http-port", ":1"],
      ["--config", "a.yaml"],
      ["-http-port", ":2"],
    ]));
  for (const help of ["-h", "-help", "--help"])
    it(`${help} asks for usage`, () => assert.equal(parse(help).help, true));
});

describe("the factory's use of the Go flag rules", () => {
  const read = (...args: string[]) => readFactoryCommandLine(args, {}, { cwd: "/nonexistent-cwd" });
  const problemsOf = async (...args: string[]) => {
    try {
      await read(...args);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    assert.fail("expected a ConfigError");
  };

  it("the last occurrence of a scalar flag wins", async () => {
    const result = await read(
      "-http-port",
      ":1000",
      "--check-config",
      "--http-port=127.0.0.1:2000",
      "-metrics-listen-addr=",
    );
    assert.ok(!result.help);
    assert.deepEqual(result.config.http.listen, { host: "127.0.0.1", port: 2000, text: "127.0.0.1:2000" });
    assert.equal(result.checkOnly, true);
  });

  it("a repeatable flag accumulates", async () => {
    const result = await read(
      "-metrics-listen-addr=",
      "-extra-extensions-catalog",
      "ghcr.io/team/extensions:{version}",
      "--extra-extensions-catalog=registry.example:5000/more/catalog:{version}",
    );
    assert.ok(!result.help);
    assert.deepEqual(result.config.extraExtensionCatalogs, [
      "ghcr.io/team/extensions:{version}",
      "registry.example:5000/more/catalog:{version}",
    ]);
  });

  it("-ca-file and the repeatable -certs-dir take one or two dashes, = optional", async () => {
    const dir = await mkdtemp(join(tmpdir(), "factory-trust-"));
    try {
      const ca = join(dir, "ca.pem");
      execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
          "-days",
          "1",
          "-subj",
          "/CN=test CA",
          "-keyout",
          join(dir, "ca.key"),
          "-out",
          ca,
        ]),
        {
          stdio: "ignore",
        },
      );
      for (const sub of ["a", "b"]) await mkdir(join(dir, sub));
      const result = await read(
        "-metrics-listen-addr=",
        `--ca-file=${ca}`,
        "-certs-dir",
        join(dir, "a"),
        `--certs-dir=${join(dir, "b")}`,
      );
      assert.ok(!result.help);
      assert.deepEqual(result.config.registryTls, { caFile: ca, certsDirs: [join(dir, "a"), join(dir, "b")] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a positional argument after a boolean is refused with the = form as the fix", async () => {
    const [problem, ...rest] = await problemsOf("-secureboot", "false", "-http-port", ":1");
    assert.deepEqual(rest, []);
    assert.match(problem as string, /unexpected argument "false".*-secureboot=false/);
  });

  it("any positional argument is refused", async () => {
    assert.match(
      (await problemsOf("serve"))[0] as string,
      /unexpected argument "serve": the factory takes no positional/,
    );
    assert.match(
      (await problemsOf("--", "-http-port", ":1"))[0] as string,
      /unexpected argument "-http-port" after "--"/,
    );
  });

  it("an unknown flag is refused by name", async () =>
    assert.deepEqual(await problemsOf("-container-signature-subject", "x"), [
      "flag provided but not defined: -container-signature-subject",
    ]));

  it("-h gives the usage, listing the legacy flags", async () => {
    const result = await read("-h");
    assert.ok(result.help);
    assert.match(result.usage, /-container-signature-subject-regexp value/);
    assert.match(result.usage, /-cache-s3-enabled/);
    assert.match(result.usage, /-ca-file value\n\s+PEM file of extra CA certificates trusted for every registry/);
    assert.match(result.usage, /-certs-dir value\n\s+certs\.d directory .*repeatable; replaces the default/);
  });
});

describe("Go durations", () => {
  for (const [text, ms] of [
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["300ms", 300],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["1.s", 1000],
    ["0", 0],
    ["-2m", -120_000],
    ["+5s", 5000],
    ["1h0m0s", 3_600_000],
    ["2us", 0.002],
    ["2µs", 0.002],
    ["2μs", 0.002],
    ["1500ns", 0.0015],
    ["9223372036854775807ns", 9_223_372_036_854.775],
  ] as const) {
    it(`${JSON.stringify(text)} is ${ms} ms`, () => assert.equal(parseGoDurationMilliseconds(text), ms));
  }
  for (const [text, why] of [
    ["", /invalid duration/],
    ["1", /missing unit/],
    ["1d", /unknown unit "d"/],
    ["h", /invalid duration/],
    [".s", /invalid duration/],
    ["1h 30m", /unknown unit " "|unknown unit/],
    ["9223372036854775808ns", /invalid duration/],
    ["1e3s", /unknown unit "e"/],
    ["--1s", /invalid duration/],
  ] as const) {
    it(`${JSON.stringify(text)} is refused`, () => assert.throws(() => parseGoDurationMilliseconds(text), why));
  }
});
