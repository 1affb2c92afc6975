// Differential tier: the same bodies go through this project's parser + canonical encoder and through
// Go's gopkg.in/yaml.v3 itself (test/talos/go-schematic/main.go, upstream's struct decoded with
// KnownFields and re-marshalled). Both must produce identical canonical YAML, or both refuse.
// Inputs are hand-picked edge cases plus strings drawn from tricky alphabets with a fixed seed.

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { canonicalYaml, parseSchematic } from "../../src/talos/schematic.ts";
import { buildOracle, type OracleResult, runOracle } from "./go-schematic/oracle.ts";

let oracle: string;
before(() => {
  oracle = buildOracle();
});

function ours(body: string): OracleResult {
  try {
    return { ok: true, yaml: canonicalYaml(parseSchematic(body)) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

async function assertSameAsGo(bodies: string[]): Promise<void> {
  const theirs = await runOracle(oracle, bodies);
  const mismatches: string[] = [];
  bodies.forEach((body, i) => {
    const go = theirs[i] as OracleResult;
    const ts = ours(body);
    // The one deliberate difference: a value holding U+2028/U+2029 is refused here, because yaml.v3 prints
    // it raw into the canonical YAML, where its reader takes it for a line break, so the stored schematic
    // would not read back as the same value (docs/limits.md). Only that: Go's output must show the raw one.
    const refusedSeparator = go.ok && !ts.ok && /U\+2028, U\+2029/.test(ts.error) && /[\u2028\u2029]/.test(go.yaml);
    const same = refusedSeparator || (go.ok === ts.ok && (!go.ok || (ts.ok && go.yaml === ts.yaml)));
    if (!same)
      mismatches.push(`input ${JSON.stringify(body)}\n  go: ${JSON.stringify(go)}\n  ts: ${JSON.stringify(ts)}`);
  });
  assert.equal(
    mismatches.length,
    0,
    `${mismatches.length} of ${bodies.length} differ:\n${mismatches.slice(0, 10).join("\n")}`,
  );
}

/** mulberry32: a small seeded generator so every run (and every failure) is reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pieces = [
  ..."ab019 :#-?'\"\\{}[],&*!|>%@`.+_~eExoyn=<",
  "\t",
  "\n",
  "\r",
  "ü",
  "€",
  "😀",
  "\u2028",
  "\u2029",
  "\u0085",
  "\u00a0",
  "\ufeff",
  "\u0000",
  "\u001b",
  "\u007f",
  "true",
  "null",
  "yes",
  "No",
  "on",
  "OFF",
  "0x1f",
  "0o17",
  "1e3",
  ".inf",
  "2001-12-14",
  "12:30",
  "---",
  "...",
  " #",
  ": ",
];
const plainTokens = [
  "0x1F",
  "0X1f",
  "0o17",
  "017",
  "09",
  "1_000",
  "+12",
  "-0",
  "1e2",
  "1.5",
  "0b11",
  "-0b11",
  ".5",
  "255",
  "256",
  "-1",
  "1e999",
  "0x",
  "12:30:00",
  "190:20:30",
  "2001-12-14",
  "2001-12-14T21:59:43Z",
  "2001-12-14t21:59:43.10-05:00",
  "2001-12-14 21:59:43.10",
  "2001-02-30",
  "2001-1-2",
  "true",
  "True",
  "yes",
  "Y",
  "~",
  "null",
  "Null",
  "abc",
  "1.0",
  "+.inf",
  "-.Inf",
  ".nan",
  "4096",
  "4096.7",
  "0.0",
  "-0.0",
  "1e-7",
  "123456789",
  "9223372036854775807",
  "9223372036854775808",
  "18446744073709551615",
  "18446744073709551616",
  "-9223372036854775808",
  "0b",
  "0o",
  "1__2",
  "_1",
  "0xff_ff",
  "+0x10",
  "-0x10",
  "1.5e+300",
  "100000",
  "1000000",
  "0.0001",
  "0.00001",
  "123456.5",
  "1234567.5",
];

function randomString(next: () => number): string {
  const n = Math.floor(next() * 6);
  let s = "";
  for (let i = 0; i < n; i++) s += pieces[Math.floor(next() * pieces.length)];
  // A multi-line value that starts with a line break is where the oracle (yaml.v3 v3.0.1) and the public
  // factory (yaml v4) print differently; this project follows v4 (schematic.test.ts covers it).
  return /^[\n\u2028\u2029]/.test(s) && s.includes("\n") ? `x${s}` : s;
}

const pick = <T>(next: () => number, list: T[]): T => list[Math.floor(next() * list.length)] as T;
/** A JSON string literal; characters this project refuses raw (YAML 1.1 breaks, controls) are escaped. */
const q = (s: string) =>
  JSON.stringify(s).replace(
    /[\x7f\x85\u2028\u2029\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );

describe("canonical YAML matches Go's gopkg.in/yaml.v3", () => {
  test("hand-picked bodies", async () => {
    await assertSameAsGo([
      "{}",
      "customization: {}",
      "customization: {extraKernelArgs: []}",
      "---\n",
      "null",
      "",
      "# only a comment\n",
      "customization:\n  extraKernelArgs: [noapic, nolapic]\n",
      "customization:\n  extraKernelArgs:\n  - noapic\n  - nolapic\n",
      "customization:\n  extraKernelArgs: [a, null, b, ~, '']\n",
      "customization:\n  meta:\n    - key: 0xa\n      value: 1.0\n    - key: 0x10\n      value: 0x10\n    - key: 012\n      value: true\n",
      "customization:\n  meta:\n    - key: 12\n      value: |\n        line1\n        line2\n",
      "customization:\n  meta:\n    - key: 12\n      value: >\n        folded\n        text\n\n        para\n",
      "customization:\n  meta:\n    - key: 12\n      value: |+\n        keep\n\n",
      'customization:\n  meta:\n    - key: 12\n      value: \'{"externalIPs":["1.2.3.4"]}\'\n',
      "customization:\n  meta: [null, {key: 1}, {value: x}]\n",
      'customization:\n  meta: [{key: "10", value: x}]\n',
      "customization:\n  meta: [{key: !!int '10', value: !!str 10}]\n",
      "customization:\n  meta: [{key: !!float '10', value: x}]\n",
      "customization:\n  meta: [{key: 1.9, value: x}]\n",
      "customization:\n  meta: [{key: 256, value: x}]\n",
      "customization:\n  meta: [{key: -1, value: x}]\n",
      "customization:\n  meta: [{key: !!bool 1, value: x}]\n",
      "customization:\n  meta: [{key: 1, value: !!binary aGVsbG8=}]\n",
      "customization:\n  meta: [{key: 1, value: !custom text}]\n",
      "customization:\n  meta: [{key: 1, value: [a]}]\n",
      "customization:\n  meta: [{key: 1, value: x, extra: y}]\n",
      "customization:\n  foo: 1\n",
      "overlay:\n  image: x\n  nmae: y\n",
      "customization: []\n",
      "customization: foo\n",
      "customization: null\n",
      "customization: ~\noverlay: ~\n",
      "[1, 2]\n",
      "12\n",
      "just a string\n",
      "customization: {}\ncustomization: {}\n",
      'customization: {}\n"customization": {}\n',
      "customization: {extraKernelArgs: [a], extraKernelArgs: [b]}\n",
      "customization:\n  bootloader: sd-boot\n",
      "customization:\n  bootloader: GRUB\n",
      "customization:\n  bootloader: Dual-Boot\n",
      "customization:\n  bootloader: none\n",
      "customization:\n  bootloader: lilo\n",
      "customization:\n  bootloader: ~\n",
      "customization:\n  secureboot:\n    enrollKeys: force\n    includeWellKnownCertificates: true\n",
      "customization:\n  secureboot: {includeWellKnownCertificates: yes}\n",
      "customization:\n  secureboot: {includeWellKnownCertificates: 'on'}\n",
      "customization:\n  secureboot: {includeWellKnownCertificates: 'true'}\n",
      "customization:\n  secureboot: {includeWellKnownCertificates: false}\n",
      "customization:\n  secureboot: {includeWellKnownCertificates: 1}\n",
      "customization:\n  diskImage: {sectorSize: 4096}\n",
      "customization:\n  diskImage: {sectorSize: 0x1000}\n",
      "customization:\n  diskImage: {sectorSize: 4096.9}\n",
      "customization:\n  diskImage: {sectorSize: 0}\n",
      "customization:\n  diskImage: {sectorSize: -4096}\n",
      "customization:\n  diskImage: {sectorSize: 1e3}\n",
      "customization:\n  embeddedMachineConfiguration: |\n    version: v1alpha1\n    machine:\n      type: worker\n",
      "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/z, siderolabs/a, siderolabs/m]\n",
      "customization:\n  systemExtensions: {}\n",
      "overlay: {}\n",
      "overlay: {image: siderolabs/sbc-raspberrypi, name: rpi_generic}\n",
      "overlay: {options: {}}\n",
      "overlay: {name: x, options: {b: 1, a: [1, 2.5, x, null, true, 2001-12-14, {}, []], c: {z: 1, '': 2, 10: 3, 9: 4}}}\n",
      'overlay: {name: x, options: {configTxt: "gpu_mem=128\\narm_64bit=1\\n", n: 1e6, m: 0.00001, k: 123456.5}}\n',
      "overlay: {name: x, options: {a10: 1, a9: 2, a010: 3, b: 4, B: 5, _x: 6, '1': 7, '01': 8, ü: 9}}\n",
      "overlay: {name: x, options: {k: {1: a, 2.5: b, true: c, x: d, '10': e, 2001-12-14: f, -3: g}}}\n",
      "overlay: {name: x, options: {k: [[a, b], [c], [], [[d]]]}}\n",
      "overlay: {name: x, options: {k: [{a: 1, b: [x, y]}, {}]}}\n",
      "overlay: {name: x, options: {~: 1, k: 2}}\n",
      "overlay: {name: x, options: {k: ~}}\n",
      `overlay: {name: x, options: {${q("k".repeat(130))}: 1, ${q("multi\nline")}: 2}}\n`,
      "owner: someone\n",
      "owner: ''\n",
      "a: &anchor [x]\n",
      "customization: {extraKernelArgs: &a [x, y], meta: [{key: 1, value: *b}]}\n",
      "x: &a y\ncustomization: {extraKernelArgs: [*a, *a]}\n",
      "customization: {extraKernelArgs: [a]}\n---\ncustomization: {extraKernelArgs: [b]}\n",
      '{"customization": {"extraKernelArgs": ["console=ttyS0,115200", "talos.platform=metal"]}}',
      '{"customization": {"meta": [{"key": 10, "value": "{\\"a\\": 1}"}]}}',
      '{"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/i915-ucode", "siderolabs/amd-ucode"]}}}',
    ]);
  });

  test("strings from tricky alphabets survive a round trip in every string field", async () => {
    const next = rng(20260821);
    const bodies: string[] = [];
    for (let i = 0; i < 400; i++) {
      const s = () => q(randomString(next));
      const shape = i % 5;
      if (shape === 0) bodies.push(`customization: {extraKernelArgs: [${s()}, ${s()}, ${s()}]}`);
      else if (shape === 1)
        bodies.push(`customization: {meta: [{key: ${i % 256}, value: ${s()}}, {key: 7, value: ${s()}}]}`);
      else if (shape === 2)
        bodies.push(
          `customization: {embeddedMachineConfiguration: ${s()}, systemExtensions: {officialExtensions: [${s()}]}}`,
        );
      else if (shape === 3)
        bodies.push(`overlay: {image: ${s()}, name: ${s()}, options: {${s()}: ${s()}, k: [${s()}, ${s()}]}}`);
      else bodies.push(`overlay: {name: n, options: {m: {${s()}: {${s()}: ${s()}}}}}`);
    }
    await assertSameAsGo(bodies);
  });

  test("plain scalars are read into string, integer, bool and untyped fields as Go reads them", async () => {
    const next = rng(7);
    const bodies: string[] = [];
    for (const t of plainTokens) {
      bodies.push(`customization: {extraKernelArgs: [${t}]}`);
      bodies.push(`customization: {meta: [{key: ${t}, value: ${t}}]}`);
      bodies.push(`customization: {secureboot: {includeWellKnownCertificates: ${t}}}`);
      bodies.push(`overlay: {name: n, options: {k: ${t}, ${t}: [${t}]}}`);
      // Left out: NaN keys and a second timestamp key, which Go orders differently from run to run
      // (they compare equal to or unordered with their neighbours); this project refuses them.
      const keys = [t, pick(next, plainTokens), pick(next, plainTokens)]
        .filter((k) => k !== ".nan")
        .filter((k, j, all) => !/^\d{4}-/.test(k) || all.findIndex((o) => /^\d{4}-/.test(o)) === j);
      bodies.push(`overlay: {name: n, options: {m: {${keys.map((k, j) => `${k}: ${j}`).join(", ")}}}}`);
    }
    for (let i = 0; i < 100; i++) {
      const f = (next() * 10 ** Math.floor(next() * 30 - 15)).toPrecision(1 + Math.floor(next() * 17));
      bodies.push(`overlay: {name: n, options: {f: ${f}, g: -${f}}}`);
    }
    await assertSameAsGo(bodies);
  });
});
