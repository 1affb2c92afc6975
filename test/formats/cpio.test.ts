import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  type CpioEntry,
  type CpioRecord,
  cpioEntriesFromDirectory,
  createCpio,
  readCpio,
  readRecordData,
} from "../../src/formats/cpio.ts";

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

interface ReadBack extends Omit<CpioRecord, "data"> {
  content?: string;
}

async function readAll(bytes: Buffer): Promise<ReadBack[]> {
  const out: ReadBack[] = [];
  for await (const record of readCpio(Readable.from([bytes]))) {
    const { data: _data, ...rest } = record;
    const item: ReadBack = { ...rest };
    if (record.type === "file") item.content = (await readRecordData(record)).toString("utf8");
    out.push(item);
  }
  return out;
}

const hasCpio = spawnSync("cpio", ["--version"]).status === 0;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cpio-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sampleEntries = async (): Promise<CpioEntry[]> => {
  const big = join(dir, "big.bin");
  // 100 001 bytes: not a multiple of 4, so data padding is exercised.
  await writeFile(big, Buffer.alloc(100_001, 0x61));
  return [
    { type: "file", path: "init", mode: 0o755, content: Buffer.from("#!/bin/sh\necho hi\n") },
    { type: "file", path: "usr/lib/modules/6.1.0/modules.dep", content: Buffer.from("a.ko:\n") },
    { type: "file", path: "rootfs.sqsh", sourcePath: big, size: 100_001 },
    { type: "symlink", path: "bin/sh", target: "busybox" },
    { type: "directory", path: "dev", mode: 0o755 },
    { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    { type: "file", path: "empty", content: Buffer.alloc(0) },
  ];
};

describe("newc cpio writer", () => {
  test("round-trips every entry type through the reader, with implied parents and sorted order", async () => {
    const bytes = await collect(createCpio(await sampleEntries(), { mtime: 1_700_000_000 }));
    const records = await readAll(bytes);
    assert.deepEqual(
      records.map((r) => r.path),
      [
        "bin",
        "bin/sh",
        "dev",
        "dev/console",
        "empty",
        "init",
        "rootfs.sqsh",
        "usr",
        "usr/lib",
        "usr/lib/modules",
        "usr/lib/modules/6.1.0",
        "usr/lib/modules/6.1.0/modules.dep",
      ],
    );
    const byPath = new Map(records.map((r) => [r.path, r]));
    assert.equal(byPath.get("init")?.content, "#!/bin/sh\necho hi\n");
    assert.equal(byPath.get("init")?.mode, 0o755);
    assert.equal(byPath.get("rootfs.sqsh")?.content, "a".repeat(100_001));
    assert.equal(byPath.get("bin/sh")?.target, "busybox");
    assert.equal(byPath.get("bin/sh")?.type, "symlink");
    assert.deepEqual(
      [byPath.get("dev/console")?.type, byPath.get("dev/console")?.rdevMajor, byPath.get("dev/console")?.rdevMinor],
      ["chardev", 5, 1],
    );
    assert.equal(byPath.get("usr/lib")?.mode, 0o755);
    assert.equal(byPath.get("usr/lib")?.nlink, 2);
    assert.equal(byPath.get("empty")?.content, "");
    for (const r of records) {
      assert.equal(r.uid, 0);
      assert.equal(r.gid, 0);
      assert.equal(r.mtime, 1_700_000_000);
    }
    // Inode numbers are distinct, so the kernel never mistakes two files for hard links.
    assert.equal(new Set(records.map((r) => r.ino)).size, records.length);
  });

  test("layout: 110-byte ASCII header, name padded to 4, data padded to 4, TRAILER!!! last", async () => {
    const bytes = await collect(createCpio([{ type: "file", path: "ab", content: Buffer.from("xyz") }], { mtime: 16 }));
    assert.equal(bytes.toString("ascii", 0, 6), "070701");
    // Fields: ino 1, mode 0100644, uid 0, gid 0, nlink 1, mtime 16, size 3, dev 0/0, rdev 0/0, namesize 3, check 0.
    const fields = ["00000001", "000081A4", "00000000", "00000000", "00000001", "00000010", "00000003"];
    fields.push("00000000", "00000000", "00000000", "00000000", "00000003", "00000000");
    assert.equal(bytes.toString("ascii", 6, 110), fields.join(""));
    assert.equal(bytes.toString("latin1", 110, 113), "ab\0");
    // 110 + 3 = 113 → 3 bytes of padding to 116, then the data "xyz" and 1 byte of padding to 120.
    assert.deepEqual([...bytes.subarray(113, 116)], [0, 0, 0]);
    assert.equal(bytes.toString("ascii", 116, 119), "xyz");
    assert.equal(bytes[119], 0);
    assert.equal(bytes.toString("ascii", 120, 126), "070701");
    assert.equal(bytes.toString("latin1", 230, 241), "TRAILER!!!\0");
    assert.equal(bytes.length % 4, 0);
  });

  test("is deterministic and takes its mtime from SOURCE_DATE_EPOCH when no option is given", async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1234567";
    try {
      const entries = await sampleEntries();
      const a = await collect(createCpio(entries));
      const b = await collect(createCpio([...entries].reverse()));
      assert.deepEqual(a, b);
      const records = await readAll(a);
      assert.ok(records.every((r) => r.mtime === 1234567));
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  test("without implied parents only the given entries are written", async () => {
    const bytes = await collect(
      createCpio([{ type: "file", path: "a/b/c", content: Buffer.from("1") }], { impliedParents: false }),
    );
    assert.deepEqual(
      (await readAll(bytes)).map((r) => r.path),
      ["a/b/c"],
    );
  });

  test("refuses escaping, empty, duplicate and file-parent paths", () => {
    const file = (path: string): CpioEntry => ({ type: "file", path, content: Buffer.alloc(0) });
    for (const bad of [
      [file("../x")],
      [file("a/../../x")],
      [file("./")],
      [file("a"), file("/a")],
      [file("f"), file("f/g")],
    ])
      assert.throws(
        () => createCpio(bad),
        (err: unknown) => isAppError(err, "BadRequest"),
      );
  });

  test("a source file whose size differs from the announced one fails the stream", async () => {
    const path = join(dir, "five");
    await writeFile(path, "12345");
    await assert.rejects(
      collect(createCpio([{ type: "file", path: "x", sourcePath: path, size: 4 }])),
      (err: unknown) => isAppError(err, "Integrity"),
    );
    await assert.rejects(
      collect(createCpio([{ type: "file", path: "x", sourcePath: path, size: 6 }])),
      (err: unknown) => isAppError(err, "Integrity"),
    );
  });

  test("entries from a directory keep modes and symlinks, under a prefix", async () => {
    const tree = join(dir, "tree");
    await mkdir(join(tree, "sub"), { recursive: true });
    await writeFile(join(tree, "sub", "run"), "run", { mode: 0o750 });
    await symlink("sub/run", join(tree, "link"));
    const entries = await cpioEntriesFromDirectory(tree, "root");
    const records = await readAll(await collect(createCpio(entries)));
    assert.deepEqual(
      records.map((r) => `${r.type} ${r.path} ${r.type === "symlink" ? r.target : r.mode.toString(8)}`),
      ["directory root 755", "symlink root/link sub/run", "directory root/sub 755", "file root/sub/run 750"],
    );
  });
});

describe("newc cpio reader", () => {
  test("reads concatenated archives with zero padding between them, and skips unread data", async () => {
    const first = await collect(createCpio([{ type: "file", path: "one", content: Buffer.from("1111") }]));
    const second = await collect(createCpio([{ type: "file", path: "two", content: Buffer.from("22") }]));
    const joined = Buffer.concat([first, Buffer.alloc(512 + 4), second]);
    const paths: string[] = [];
    for await (const record of readCpio(Readable.from([joined]))) paths.push(record.path); // data never read
    assert.deepEqual(paths, ["one", "two"]);
  });

  test("a truncated archive is an Integrity error", async () => {
    const bytes = await collect(createCpio([{ type: "file", path: "x", content: Buffer.alloc(100) }]));
    await assert.rejects(readAll(bytes.subarray(0, 150)), (err: unknown) => isAppError(err, "Integrity"));
    await assert.rejects(readAll(Buffer.from("hello world")), (err: unknown) => isAppError(err, "Integrity"));
  });
});

describe("newc cpio against GNU cpio", {
  skip: hasCpio ? false : "cpio is not installed (apt-get install cpio)",
}, () => {
  test("cpio -t lists our archive and cpio -idm extracts it with the right contents, modes and mtimes", async () => {
    const archive = join(dir, "ours.cpio");
    await writeFile(archive, await collect(createCpio(await sampleEntries(), { mtime: 1_600_000_000 })));
    const listing = execFileSync("cpio", ["-t", "--quiet", "-F", archive], { encoding: "utf8" }).trim().split("\n");
    assert.deepEqual(listing, [
      "bin",
      "bin/sh",
      "dev",
      "dev/console",
      "empty",
      "init",
      "rootfs.sqsh",
      "usr",
      "usr/lib",
      "usr/lib/modules",
      "usr/lib/modules/6.1.0",
      "usr/lib/modules/6.1.0/modules.dep",
    ]);
    const out = join(dir, "extracted");
    await mkdir(out);
    execFileSync("cpio", ["-idm", "--quiet", "--no-absolute-filenames", "-F", archive], { cwd: out });
    assert.equal(await readFile(join(out, "init"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal((await lstat(join(out, "init"))).mode & 0o7777, 0o755);
    assert.equal((await lstat(join(out, "init"))).mtimeMs, 1_600_000_000_000);
    assert.equal((await readFile(join(out, "rootfs.sqsh"))).length, 100_001);
    assert.equal(await readlink(join(out, "bin/sh")), "busybox");
    const consoleNode = await lstat(join(out, "dev/console"));
    assert.ok(consoleNode.isCharacterDevice());
    assert.equal(consoleNode.rdev, (5 << 8) | 1);
  });

  test("our reader reads an archive GNU cpio wrote", async () => {
    const src = join(dir, "gnu-src");
    await mkdir(join(src, "d"), { recursive: true });
    await writeFile(join(src, "d", "f.txt"), "from gnu cpio\n", { mode: 0o640 });
    await symlink("d/f.txt", join(src, "l"));
    const archive = execFileSync("cpio", ["-o", "-H", "newc", "--quiet"], { cwd: src, input: "d\nd/f.txt\nl\n" });
    const records = await readAll(archive);
    assert.deepEqual(
      records.map((r) => [r.path, r.type]),
      [
        ["d", "directory"],
        ["d/f.txt", "file"],
        ["l", "symlink"],
      ],
    );
    assert.equal(records[1]?.content, "from gnu cpio\n");
    assert.equal(records[1]?.mode, 0o640);
    assert.equal(records[2]?.target, "d/f.txt");
  });
});
