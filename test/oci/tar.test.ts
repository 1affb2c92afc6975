import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { after, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { createTar, type TarEntry } from "../../src/oci/tar.ts";

const work = mkdtempSync(join(tmpdir(), "tar-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

const bigSource = join(work, "big.bin");
const bigContent = Buffer.alloc(300_000);
for (let i = 0; i < bigContent.length; i++) bigContent[i] = (i * 31) & 0xff;
writeFileSync(bigSource, bigContent);

const longName = `deep/${"d".repeat(120)}/${"f".repeat(110)}.txt`;
const entries: TarEntry[] = [
  { type: "file", path: "etc/config.yaml", content: Buffer.from("key: value\n"), mode: 0o600 },
  { type: "file", path: "usr/bin/tool", sourcePath: bigSource, size: bigContent.length, mode: 0o755 },
  { type: "symlink", path: "usr/bin/alias", target: "tool" },
  { type: "hardlink", path: "etc/config-copy.yaml", target: "etc/config.yaml" },
  { type: "directory", path: "var/empty", mode: 0o700 },
  { type: "file", path: longName, content: Buffer.from("long") },
  { type: "file", path: "a.txt", content: Buffer.from("") },
];

async function build(list: TarEntry[], options?: Parameters<typeof createTar>[1]): Promise<Buffer> {
  return buffer(createTar(list, options));
}
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function listVerbose(tarPath: string): string[] {
  return execFileSync("tar", ["--numeric-owner", "--full-time", "-tvf", tarPath], {
    encoding: "utf8",
    env: { ...process.env, TZ: "UTC" },
  })
    .trim()
    .split("\n");
}

describe("deterministic tar writer", () => {
  it("builds byte-identical output twice, whatever the input order", async () => {
    const first = await build(entries);
    const second = await build(entries);
    const reversed = await build([...entries].reverse());
    assert.equal(sha256(first), sha256(second));
    assert.equal(sha256(first), sha256(reversed));
  });

  it("lists sorted names, implied parents, modes, owner 0/0 and mtime 0 with the real tar tool", async () => {
    const tarPath = join(work, "listing.tar");
    writeFileSync(tarPath, await build(entries));
    const lines = listVerbose(tarPath);
    const names = lines.map((l) => l.split(/\s+/).slice(5).join(" "));
    assert.deepEqual(names, [
      "a.txt",
      "deep/",
      `deep/${"d".repeat(120)}/`,
      `${longName}`,
      "etc/",
      "etc/config-copy.yaml",
      "etc/config.yaml link to etc/config-copy.yaml",
      "usr/",
      "usr/bin/",
      "usr/bin/alias -> tool",
      "usr/bin/tool",
      "var/",
      "var/empty/",
    ]);
    const byName = new Map(lines.map((l) => [l.split(/\s+/).slice(5)[0] as string, l.split(/\s+/)]));
    assert.equal(byName.get("etc/config-copy.yaml")?.[0], "-rw-------");
    assert.equal(byName.get("etc/config.yaml")?.[0], "hrw-------");
    assert.equal(byName.get("usr/bin/tool")?.[0], "-rwxr-xr-x");
    assert.equal(byName.get("usr/bin/tool")?.[2], String(bigContent.length));
    assert.equal(byName.get("usr/bin/alias")?.[0], "lrwxrwxrwx");
    assert.equal(byName.get("var/empty/")?.[0], "drwx------");
    assert.equal(byName.get("usr/")?.[0], "drwxr-xr-x");
    for (const fields of byName.values()) {
      assert.equal(fields[1], "0/0");
      assert.equal(`${fields[3]} ${fields[4]}`, "1970-01-01 00:00:00");
    }
  });

  it("writes empty user and group names", async () => {
    const out = await build([{ type: "file", path: "x", content: Buffer.from("x") }]);
    // ustar header: uname at 265 and gname at 297, 32 bytes each.
    assert.ok(out.subarray(265, 329).every((b) => b === 0));
    assert.equal(out.subarray(257, 262).toString("latin1"), "ustar");
  });

  it("extracts with the real tar tool to the right content, symlink and hardlink", async () => {
    const tarPath = join(work, "extract.tar");
    writeFileSync(tarPath, await build(entries));
    const dest = join(work, "extracted");
    mkdirSync(dest);
    execFileSync("tar", ["-xf", tarPath, "-C", dest]);
    assert.deepEqual(readFileSync(join(dest, "usr/bin/tool")), bigContent);
    assert.equal(readFileSync(join(dest, "etc/config.yaml"), "utf8"), "key: value\n");
    assert.equal(readlinkSync(join(dest, "usr/bin/alias")), "tool");
    assert.equal(lstatSync(join(dest, "etc/config.yaml")).ino, lstatSync(join(dest, "etc/config-copy.yaml")).ino);
    assert.equal(readFileSync(join(dest, longName), "utf8"), "long");
  });

  it("takes mtime from SOURCE_DATE_EPOCH, and an explicit option over it", async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    try {
      process.env.SOURCE_DATE_EPOCH = "1700000000";
      const tarPath = join(work, "epoch.tar");
      writeFileSync(tarPath, await build([{ type: "file", path: "f", content: Buffer.from("1") }]));
      assert.match(listVerbose(tarPath)[0] as string, / 2023-11-14 22:13:20 f$/);
      writeFileSync(tarPath, await build([{ type: "file", path: "f", content: Buffer.from("1") }], { mtime: 86400 }));
      assert.match(listVerbose(tarPath)[0] as string, / 1970-01-02 00:00:00 f$/);
      process.env.SOURCE_DATE_EPOCH = "yesterday";
      assert.throws(() => createTar([]), /SOURCE_DATE_EPOCH/);
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  it("different content gives different bytes", async () => {
    const a = await build([{ type: "file", path: "f", content: Buffer.from("1") }]);
    const b = await build([{ type: "file", path: "f", content: Buffer.from("2") }]);
    assert.notEqual(sha256(a), sha256(b));
  });
});

describe("tar writer rejections", () => {
  const rows: Array<[rule: string, list: TarEntry[], messagePart: string]> = [
    ["a .. component", [{ type: "file", path: "a/../../x", content: Buffer.from("") }], '"a/../../x"'],
    [
      "duplicate paths (after normalization)",
      [
        { type: "file", path: "a", content: Buffer.from("") },
        { type: "file", path: "./a", content: Buffer.from("") },
      ],
      'duplicate tar entry path "a"',
    ],
    ["hardlink to a missing entry", [{ type: "hardlink", path: "l", target: "nowhere" }], '"l"'],
    [
      "a file used as a parent directory",
      [
        { type: "file", path: "a", content: Buffer.from("") },
        { type: "file", path: "a/b", content: Buffer.from("") },
      ],
      '"a/b"',
    ],
    ["an empty path", [{ type: "directory", path: "/" }], "names no file"],
  ];
  for (const [rule, list, messagePart] of rows) {
    it(rule, () => {
      assert.throws(
        () => createTar(list),
        (err: unknown) => isAppError(err, "BadRequest") && err.message.includes(messagePart),
      );
    });
  }

  it("fails the stream when a source file is not the announced size", async () => {
    await assert.rejects(
      build([{ type: "file", path: "usr/tool", sourcePath: bigSource, size: bigContent.length + 1 }]),
      (err: unknown) => isAppError(err, "Integrity") && err.message.includes('"usr/tool"'),
    );
    await assert.rejects(
      build([{ type: "file", path: "usr/tool", sourcePath: bigSource, size: 10 }]),
      (err: unknown) => isAppError(err, "Integrity") && err.message.includes('"usr/tool"'),
    );
  });
});
