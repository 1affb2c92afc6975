import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  decodeMetaBlock,
  decodeMetaPartition,
  encodeMetaBlock,
  encodeMetaPartition,
  MetaTag,
  metaDataCapacity,
  metaRecordsFromValues,
} from "../../src/formats/meta-partition.ts";
import { decodeMetaValues, encodeMetaValues, metaPairs } from "../../src/talos/meta.ts";
import { runTool, runToolText } from "../../src/tools/run.ts";

const KiB = 1024;
const text = (records: { tag: number; value: Uint8Array }[]) =>
  records.map((r) => [r.tag, Buffer.from(r.value).toString()]);

describe("META partition block", () => {
  test("layout per go-adv: BE magic at 0, records from 4, SHA-256 at end−36 over the zeroed field, magic at end−4", () => {
    const block = encodeMetaBlock([{ tag: 0xa, value: Buffer.from("net") }]);
    assert.equal(block.length, 256 * KiB);
    assert.deepEqual([...block.subarray(0, 4)], [0x5a, 0x4b, 0x3c, 0x2d]);
    assert.deepEqual([...block.subarray(4, 12)], [0, 0, 0, 0x0a, 0, 0, 0, 3]);
    assert.equal(block.subarray(12, 15).toString(), "net");
    assert.deepEqual([...block.subarray(15, 19)], [0, 0, 0, 0], "end tag 0");
    assert.deepEqual([...block.subarray(block.length - 4)], [0xa5, 0xb4, 0xc3, 0xd2]);
    const zeroed = Buffer.from(block);
    zeroed.fill(0, block.length - 36, block.length - 4);
    assert.deepEqual(block.subarray(block.length - 36, block.length - 4), createHash("sha256").update(zeroed).digest());
  });

  test("round trip, sorted by tag whatever the input order (reproducible bytes)", () => {
    const records = [
      { tag: MetaTag.UserReserved2, value: Buffer.from("two") },
      { tag: MetaTag.MetalNetworkPlatformConfig, value: Buffer.from("addresses: []") },
      { tag: MetaTag.DiskImageBootloader, value: Buffer.alloc(0) },
    ];
    const a = encodeMetaBlock(records);
    assert.deepEqual(a, encodeMetaBlock([...records].reverse()));
    assert.deepEqual(text(decodeMetaBlock(a)), [
      [0xa, "addresses: []"],
      [0xd, "two"],
      [0x11, ""],
    ]);
  });

  test("an empty META has no records", () => {
    assert.deepEqual(decodeMetaBlock(encodeMetaBlock([])), []);
  });

  test("the partition holds two identical copies; a damaged first copy falls back to the second", () => {
    const content = encodeMetaPartition(metaRecordsFromValues([{ key: 0xc, value: "hi" }]));
    assert.equal(content.length, 512 * KiB);
    assert.deepEqual(content.subarray(0, 256 * KiB), content.subarray(256 * KiB));
    content[100] = 0xff;
    assert.deepEqual(text(decodeMetaPartition(content)), [[0xc, "hi"]]);
    content[256 * KiB + 100] = 0xff;
    assert.throws(
      () => decodeMetaPartition(content),
      (err) => isAppError(err, "Integrity"),
    );
  });

  test("bad magic, checksum or a record running off the end are Integrity errors", () => {
    const block = encodeMetaBlock([{ tag: 1, value: Buffer.from("x") }]);
    const badMagic = Buffer.from(block);
    badMagic[0] = 0;
    assert.throws(() => decodeMetaBlock(badMagic), /magic/);
    const badSum = Buffer.from(block);
    badSum.writeUInt8(badSum.readUInt8(13) ^ 1, 13);
    assert.throws(() => decodeMetaBlock(badSum), /checksum/);
    assert.throws(
      () => decodeMetaBlock(block.subarray(1)),
      (err) => isAppError(err, "Integrity"),
    );
  });

  test("capacity is 256 KiB − 40; a tag outside 1–255 or given twice is refused", () => {
    assert.equal(metaDataCapacity, 256 * KiB - 40);
    const fits = encodeMetaBlock([{ tag: 1, value: Buffer.alloc(metaDataCapacity - 8, 0x61) }]);
    assert.equal(decodeMetaBlock(fits)[0]?.value.length, metaDataCapacity - 8);
    assert.throws(
      () => encodeMetaBlock([{ tag: 1, value: Buffer.alloc(metaDataCapacity - 7) }]),
      (err) => isAppError(err, "BadRequest") && /do not fit/.test(err.message),
    );
    assert.throws(() => encodeMetaBlock([{ tag: 0, value: Buffer.alloc(1) }]), /1 to 255/);
    assert.throws(() => encodeMetaBlock([{ tag: 256, value: Buffer.alloc(1) }]), /1 to 255/);
    assert.throws(
      () =>
        encodeMetaBlock([
          { tag: 2, value: Buffer.alloc(1) },
          { tag: 2, value: Buffer.alloc(1) },
        ]),
      /twice/,
    );
  });
});

describe("META values on the kernel command line", () => {
  test("pairs are 0x<hex>=<value> joined by ';'", () => {
    assert.equal(
      metaPairs([
        { key: 0xa, value: "a=b" },
        { key: 0x11, value: "" },
      ]),
      "0xa=a=b;0x11=",
    );
  });

  test("short values are plain base64; > 256 bytes gzip only when allowed", () => {
    const short = [{ key: 0xc, value: "v" }];
    assert.equal(encodeMetaValues(short, { allowGzip: true }), Buffer.from("0xc=v").toString("base64"));
    const long = [{ key: 0xc, value: "y".repeat(253) }]; // "0xc=" + 253 = 257 bytes
    const gz = Buffer.from(encodeMetaValues(long, { allowGzip: true }), "base64");
    assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b]);
    assert.equal(
      Buffer.from(encodeMetaValues(long, { allowGzip: false }), "base64").toString(),
      `0xc=${"y".repeat(253)}`,
    );
    const exactly256 = [{ key: 0xc, value: "y".repeat(252) }];
    assert.equal(Buffer.from(encodeMetaValues(exactly256, { allowGzip: true }), "base64")[0], 0x30);
    assert.deepEqual(decodeMetaValues(encodeMetaValues(long, { allowGzip: true })), long);
  });

  test("a value with ';' cannot be carried and is refused; keys must be 1–255", () => {
    assert.throws(
      () => metaPairs([{ key: 0xa, value: "a;b" }]),
      (err) => isAppError(err, "BadRequest"),
    );
    assert.throws(() => metaPairs([{ key: 0, value: "" }]), /1 to 255/);
  });
});

describe("checked by an independent Go reader (upstream's layout and decoding, standard library)", () => {
  const goTool = { command: "go", debianPackage: "golang-go" };
  let dir: string;
  let oracle: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "go-meta-"));
    oracle = join(dir, "oracle");
    await runTool(goTool, ["build", "-o", oracle, join(import.meta.dirname, "go-meta", "main.go")], {
      env: { GOFLAGS: "", GO111MODULE: "auto" },
      timeoutMs: 120_000,
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const oracleTool = () => ({ command: oracle, debianPackage: "golang-go" });

  test("Go reads the partition we write", async () => {
    const values = [
      { key: 0xa, value: "machine:\n  network: {}\n" },
      { key: 0xe, value: "ünïcode" },
    ];
    const out = await runToolText(oracleTool(), ["block"], {
      stdin: encodeMetaPartition(metaRecordsFromValues(values)),
    });
    assert.deepEqual(JSON.parse(out), { "0xa": values[0]?.value, "0xe": values[1]?.value });
  });

  test("Go decodes the talos.environment encoding we write, plain and gzip'd", async () => {
    for (const values of [
      [{ key: 0xb, value: "code" }],
      [
        { key: 0xa, value: "z".repeat(400) },
        { key: 0xc, value: "x" },
      ],
    ]) {
      const out = await runToolText(oracleTool(), ["values"], { stdin: encodeMetaValues(values, { allowGzip: true }) });
      assert.deepEqual(JSON.parse(out), values);
    }
  });
});
