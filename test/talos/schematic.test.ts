import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  canonicalYaml,
  MAX_LIST_ENTRIES,
  parseSchematic,
  schematicId,
  schematicMediaType,
} from "../../src/talos/schematic.ts";

const canonical = (body: string | Buffer) => canonicalYaml(parseSchematic(body));
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

function assertBadRequest(body: string | Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseSchematic(body),
    (err: unknown) => isAppError(err, "BadRequest") && pattern.test(err.message),
    `expected a BadRequest matching ${pattern}`,
  );
}

describe("schematic ID fixed points (upstream image-factory docs/api.md)", () => {
  const EMPTY = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
  for (const body of ["{}", "customization: {}", "customization: {extraKernelArgs: []}", "---\n", "null"]) {
    test(`${JSON.stringify(body)} is the empty schematic`, () => {
      assert.equal(canonical(body), "customization: {}\n");
      assert.equal(schematicId(parseSchematic(body)), EMPTY);
    });
  }
  test("extraKernelArgs [noapic, nolapic]", () => {
    const s = parseSchematic("customization:\n  extraKernelArgs:\n    - noapic\n    - nolapic\n");
    assert.equal(canonicalYaml(s), "customization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n");
    assert.equal(schematicId(s), "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c");
  });
  test("the ID is the sha256 of the canonical YAML", () => {
    const s = parseSchematic('{"customization":{"systemExtensions":{"officialExtensions":["siderolabs/amd-ucode"]}}}');
    assert.equal(schematicId(s), sha256(canonicalYaml(s)));
  });
  test("media type", () => assert.equal(schematicMediaType, "application/vnd.sidero.dev-image.schematic"));
});

// Inputs and the canonical YAML derived by hand from yaml.v3's rules (field order, omitempty, 4-space
// indent, sequences indented under their key, quoting).
const table: [string, string, string][] = [
  [
    "all fields in struct order, whatever the input order",
    `customization:
  diskImage: {sectorSize: 4096}
  secureboot: {includeWellKnownCertificates: true, enrollKeys: force}
  bootloader: sd-boot
  systemExtensions: {officialExtensions: [siderolabs/i915-ucode, siderolabs/amd-ucode]}
  meta: [{value: x, key: 10}]
  extraKernelArgs: [console=ttyS0]
  embeddedMachineConfiguration: "machine: {}"
overlay: {name: rpi_generic, image: siderolabs/sbc-raspberrypi}
`,
    `overlay:
    image: siderolabs/sbc-raspberrypi
    name: rpi_generic
customization:
    embeddedMachineConfiguration: 'machine: {}'
    extraKernelArgs:
        - console=ttyS0
    meta:
        - key: 10
          value: x
    systemExtensions:
        officialExtensions:
            - siderolabs/i915-ucode
            - siderolabs/amd-ucode
    bootloader: sd-boot
    secureboot:
        enrollKeys: force
        includeWellKnownCertificates: true
    diskImage:
        sectorSize: 4096
`,
  ],
  [
    "meta key in hex and octal forms becomes decimal; a string field keeps the source text",
    "customization: {meta: [{key: 0xa, value: 1.0}, {key: 0o17, value: 0x10}, {key: 012, value: +1}]}",
    `customization:
    meta:
        - key: 10
          value: "1.0"
        - key: 15
          value: "0x10"
        - key: 10
          value: "+1"
`,
  ],
  [
    "strings that would read back as another type are double-quoted",
    'customization: {extraKernelArgs: ["true", "yes", "on", "No", "null", "~", "", "123", "1.0", "0x1F", "1_000", ".inf", "2001-12-14", "12:30:45", "1e3"]}',
    `customization:
    extraKernelArgs:
        - "true"
        - "yes"
        - "on"
        - "No"
        - "null"
        - "~"
        - ""
        - "123"
        - "1.0"
        - "0x1F"
        - "1_000"
        - ".inf"
        - "2001-12-14"
        - "12:30:45"
        - "1e3"
`,
  ],
  [
    "plain strings that look almost like other types stay plain",
    'customization: {extraKernelArgs: ["tRUE", "yess", "1.2.3", "2001-13-01", "12:60", "v1.10.0", "0x", "a:b", "a#b", "-x", "?x", ":x"]}',
    `customization:
    extraKernelArgs:
        - tRUE
        - yess
        - 1.2.3
        - 2001-13-01
        - 12:60
        - v1.10.0
        - 0x
        - a:b
        - a#b
        - -x
        - ?x
        - :x
`,
  ],
  [
    "strings that cannot be plain are single-quoted (a quote inside is no reason)",
    `customization: {extraKernelArgs: ["a: b", "a #b", " lead", "trail ", "- x", "#x", "{\\"a\\":1}", "[x]", "*x", "&x", "!x", "|x", ">x", "%x", "@x", "\`x", "it's", "---", "a,b"]}`,
    `customization:
    extraKernelArgs:
        - 'a: b'
        - 'a #b'
        - ' lead'
        - 'trail '
        - '- x'
        - '#x'
        - '{"a":1}'
        - '[x]'
        - '*x'
        - '&x'
        - '!x'
        - '|x'
        - '>x'
        - '%x'
        - '@x'
        - '\`x'
        - it's
        - '---'
        - a,b
`,
  ],
  [
    "control characters, tabs and 4-byte characters are double-quoted with escapes; other unicode is kept",
    'customization: {extraKernelArgs: ["a\\tb", "\\u0000", "\\u001b", "ü€", "😀", "\\u00a0x"]}',
    `customization:
    extraKernelArgs:
        - "a\\tb"
        - "\\0"
        - "\\e"
        - ü€
        - "\\U0001F600"
        - \u00a0x
`,
  ],
  [
    "multi-line strings become literal blocks with the chomping their trailing breaks need",
    'customization: {meta: [{key: 1, value: "a\\nb"}, {key: 2, value: "a\\nb\\n"}, {key: 3, value: "a\\n\\n"}, {key: 4, value: " x\\ny"}]}',
    `customization:
    meta:
        - key: 1
          value: |-
            a
            b
        - key: 2
          value: |
            a
            b
        - key: 3
          value: |+
            a

        - key: 4
          value: |4-
             x
            y
`,
  ],
  [
    // go.yaml.in/yaml/v4 (upstream today) keeps the leading empty line; gopkg.in/yaml.v3 v3.0.1 dropped it.
    "a multi-line string starting with a line break keeps it (as the yaml v4 encoder prints it)",
    'customization: {meta: [{key: 1, value: "\\nx"}]}',
    `customization:
    meta:
        - key: 1
          value: |4-

            x
`,
  ],
  [
    "a multi-line string with a space before a break is double-quoted",
    'customization: {meta: [{key: 1, value: "a \\nb"}]}',
    `customization:
    meta:
        - key: 1
          value: "a \\nb"
`,
  ],
  [
    "nulls in a list are dropped, as Go drops elements that do not decode",
    "customization: {extraKernelArgs: [a, null, ~, b]}",
    "customization:\n    extraKernelArgs:\n        - a\n        - b\n",
  ],
  [
    "bool field takes YAML 1.1 yes/on; bootloader is case-insensitive and none means unset",
    "customization: {secureboot: {includeWellKnownCertificates: yes}, bootloader: GRUB}",
    "customization:\n    bootloader: grub\n    secureboot:\n        includeWellKnownCertificates: true\n",
  ],
  ["bootloader none is the zero value", "customization: {bootloader: none}", "customization: {}\n"],
  [
    "overlay with options: image and name always printed, option keys sorted, values keep their Go types",
    "overlay: {name: x, options: {b: 1.50, a: [0x10, 1e6, true, null, 2001-12-14, text, '7']}}",
    `overlay:
    image: ""
    name: x
    options:
        a:
            - 16
            - 1e+06
            - true
            - null
            - 2001-12-14T00:00:00Z
            - text
            - "7"
        b: 1.5
customization: {}
`,
  ],
  [
    "option keys sort naturally (numbers inside strings by value)",
    "overlay: {name: x, options: {a10: 1, a9: 2, b: 3, B: 4, '10': 5, '9': 6}}",
    `overlay:
    image: ""
    name: x
    options:
        "9": 6
        "10": 5
        B: 4
        a9: 2
        a10: 1
        b: 3
customization: {}
`,
  ],
  [
    "empty nested collections in options are written in flow style",
    "overlay: {name: x, options: {m: {}, s: [], l: [[a, b], {c: d}]}}",
    `overlay:
    image: ""
    name: x
    options:
        l:
            - - a
              - b
            - c: d
        m: {}
        s: []
customization: {}
`,
  ],
  [
    "JSON bodies are YAML",
    '{"customization": {"extraKernelArgs": ["console=ttyS0,115200"], "meta": [{"key": 10, "value": "{\\"externalIPs\\":[\\"1.2.3.4\\"]}"}]}}',
    `customization:
    extraKernelArgs:
        - console=ttyS0,115200
    meta:
        - key: 10
          value: '{"externalIPs":["1.2.3.4"]}'
`,
  ],
];

describe("canonical YAML (hand-derived table)", () => {
  for (const [name, input, expected] of table) {
    test(name, () => {
      assert.equal(canonical(input), expected);
      // Canonical YAML is a fixed point: reading it back gives the same bytes — except where yaml.v3
      // itself prints YAML that no parser (Go's included) reads back: a literal block with an
      // indentation indicator inside a sequence item.
      if (!expected.includes("|4")) assert.equal(canonical(expected), expected);
    });
  }

  test("officialExtensions keep the order given", () => {
    const s = parseSchematic("customization: {systemExtensions: {officialExtensions: [z/z, a/a, m/m]}}");
    assert.deepEqual(s.customization.systemExtensions?.officialExtensions, ["z/z", "a/a", "m/m"]);
    const reordered = parseSchematic("customization: {systemExtensions: {officialExtensions: [a/a, m/m, z/z]}}");
    assert.notEqual(schematicId(s), schematicId(reordered));
  });

  test("the model carries decoded values", () => {
    const s = parseSchematic("customization: {meta: [{key: 0x0a, value: 1.0}], diskImage: {sectorSize: 0x1000}}");
    assert.deepEqual(s.customization.meta, [{ key: 10, value: "1.0" }]);
    assert.equal(s.customization.diskImage?.sectorSize, 4096);
  });
});

describe("refused inputs", () => {
  const rows: [string, string | Buffer, RegExp][] = [
    ["unknown top-level field", "customisation: {}", /field customisation not found.*\(at customisation\)/],
    [
      "unknown nested field, with its path",
      "customization: {meta: [{key: 1, vaule: x}]}",
      /field vaule not found.*customization\.meta\[0\]\.vaule/,
    ],
    [
      "meta key above 255",
      "customization: {meta: [{key: 256, value: x}]}",
      /cannot unmarshal !!int `256` into uint8.*customization\.meta\[0\]\.key/,
    ],
    ["negative meta key", "customization: {meta: [{key: -1, value: x}]}", /uint8/],
    ["quoted meta key", 'customization: {meta: [{key: "10", value: x}]}', /cannot unmarshal !!str `10` into uint8/],
    ["list where a struct goes", "customization: [a]", /cannot unmarshal !!seq into schematic\.Customization/],
    [
      "scalar where a list goes",
      "customization: {extraKernelArgs: noapic}",
      /cannot unmarshal !!str `noapic` into \[\]string.*extraKernelArgs/,
    ],
    ["map where a string goes", "customization: {extraKernelArgs: [{a: b}]}", /cannot unmarshal !!map into string/],
    ["unknown bootloader", "customization: {bootloader: lilo}", /lilo does not belong to BootloaderKind values/],
    [
      "unknown enrollKeys",
      "customization: {secureboot: {enrollKeys: sometimes}}",
      /enrollKeys.*off, manual, if-safe, force/,
    ],
    [
      "non-bool includeWellKnownCertificates",
      "customization: {secureboot: {includeWellKnownCertificates: 1}}",
      /into bool/,
    ],
    [
      "duplicate keys",
      "customization: {}\ncustomization: {}\n",
      /mapping key "customization" already defined at line 1/,
    ],
    ["owner (enterprise only)", "owner: someone\n", /owner field is only supported in Enterprise edition/],
    ["empty body", "", /EOF/],
    ["comment-only body", "# nothing\n", /EOF/],
    ["JSON array", "[1, 2]", /cannot unmarshal !!seq into schematic\.Schematic/],
    ["JSON scalar", '"customization"', /cannot unmarshal !!str `customi...` into schematic\.Schematic/],
    ["number", "42", /cannot unmarshal !!int `42` into schematic\.Schematic/],
    ["syntax error", "customization: {extraKernelArgs: [a", /invalid schematic/],
    [
      "syntax error: the position is a parenthesis, the message never ends on a dangling colon",
      "customization:\n  extraKernelArgs: 'x\n",
      /^invalid schematic: Missing closing 'quote \(line 3, column 1\)$/,
    ],
    ["invalid UTF-8", Buffer.from([0x63, 0x3a, 0x20, 0xff, 0xfe]), /not valid UTF-8/],
    ["raw control character", 'customization: {extraKernelArgs: ["a\u0001"]}', /control characters/],
    ["raw YAML 1.1 line break (NEL)", 'customization: {extraKernelArgs: ["a\u0085"]}', /NEL, LS, PS/],
    ["merge keys", "x: &b {extraKernelArgs: [a]}\ncustomization: {<<: *b}", /merge keys/],
    [
      "a tag that does not fit the value",
      "customization: {meta: [{key: !!int abc}]}",
      /cannot decode !!str `abc` as a !!int/,
    ],
    ["recursive alias", "customization: &a {extraKernelArgs: *a}", /invalid schematic/],
  ];
  for (const [name, body, pattern] of rows) test(name, () => assertBadRequest(body, pattern));
});

describe("bounds", () => {
  test("a body over 1 MiB is refused before parsing", () => {
    const body = `customization: {extraKernelArgs: [${"a".repeat(1 << 20)}]}`;
    assertBadRequest(body, /larger than 1048576 bytes/);
  });

  test("a body just under 1 MiB is accepted", () => {
    const arg = "x".repeat((1 << 20) - 100);
    const s = parseSchematic(`customization: {extraKernelArgs: [${arg}]}`);
    assert.equal(s.customization.extraKernelArgs?.[0]?.length, arg.length);
  });

  test(`${MAX_LIST_ENTRIES} extensions are accepted, 10,000 are refused naming the field and the limit`, () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `siderolabs/ext-${i}`).join(", ");
    const ok = parseSchematic(`customization: {systemExtensions: {officialExtensions: [${list(MAX_LIST_ENTRIES)}]}}`);
    assert.equal(ok.customization.systemExtensions?.officialExtensions?.length, MAX_LIST_ENTRIES);
    assertBadRequest(
      `customization: {systemExtensions: {officialExtensions: [${list(10_000)}]}}`,
      /customization\.systemExtensions\.officialExtensions: too many entries \(10000 > 1024\)/,
    );
  });

  test("billion laughs is refused fast with flat memory", () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
    }
    lines.push("overlay: {name: x, options: {bomb: *i}}");
    const before = process.memoryUsage().heapUsed;
    const started = performance.now();
    assertBadRequest(lines.join("\n"), /excessive aliasing/);
    assert.ok(performance.now() - started < 1000, "took too long");
    assert.ok(process.memoryUsage().heapUsed - before < 64 * 1024 * 1024, "memory grew");
  });

  test("aliases within reason are expanded", () => {
    const s = parseSchematic("overlay: {name: &n rpi, image: *n}\ncustomization: {extraKernelArgs: [&q quiet, *q]}");
    assert.deepEqual(s.overlay, { image: "rpi", name: "rpi" });
    assert.deepEqual(s.customization.extraKernelArgs, ["quiet", "quiet"]);
  });

  test("deep nesting is refused", () => {
    assertBadRequest(`overlay: {name: x, options: {k: ${"[".repeat(100)}${"]".repeat(100)}}}`, /nesting/);
    const started = performance.now();
    assertBadRequest(
      `overlay: {name: x, options: {k: ${"[".repeat(200_000)}${"]".repeat(200_000)}}}`,
      /nesting|invalid/,
    );
    assert.ok(performance.now() - started < 5000, "took too long");
  });
});
