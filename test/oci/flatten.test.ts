import assert from "node:assert/strict";
import {
  chmodSync,
  createReadStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, beforeEach, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { type FlattenLimits, flattenLayers } from "../../src/oci/flatten.ts";
import { buildLayer, decompressLayer } from "../../src/oci/layer.ts";
import { type RawEntry, rawTar, rawTarMtimeMs } from "./raw-tar.ts";

const base = mkdtempSync(join(tmpdir(), "flatten-test-"));
after(() => rmSync(base, { recursive: true, force: true }));

let run = 0;
let target = "";
let sentinel = "";
let outside = "";
beforeEach(() => {
  // A fresh target, an empty sentinel directory and a directory holding a secret file, all siblings.
  const dir = join(base, `run-${run++}`);
  target = join(dir, "target");
  sentinel = join(dir, "sentinel");
  outside = join(dir, "outside");
  mkdirSync(sentinel, { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret"), "untouched");
});

function assertNothingOutside(): void {
  assert.deepEqual(readdirSync(sentinel), []);
  assert.deepEqual(readdirSync(outside), ["secret"]);
  assert.equal(readFileSync(join(outside, "secret"), "utf8"), "untouched");
  assert.equal(statSync(join(outside, "secret")).nlink, 1, "no hardlink to the outside file was made");
  assert.deepEqual(readdirSync(join(target, "..")).sort(), ["outside", "sentinel", "target"]);
}

async function flatten(layers: RawEntry[][], limits?: FlattenLimits) {
  const tars = await Promise.all(layers.map(rawTar));
  return flattenLayers(
    tars.map((t) => Readable.from([t])),
    target,
    limits,
  );
}

/** The tree as sorted lines: "path type detail mode". */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`${path} -> ${readlinkSync(join(root, path))}`);
      else if (st.isDirectory()) {
        out.push(`${path}/ ${mode}`);
        walk(path);
      } else out.push(`${path} "${readFileSync(join(root, path), "utf8")}" ${mode}`);
    }
  };
  walk("");
  return out;
}

describe("flatten: hostile layers are refused and nothing is written outside", () => {
  // Each row: a rule, its layers (lowest first; built lazily, as they name this test's sentinel and
  // outside directories), the entry the error must name, and limits when the rule is about one.
  const rows: Array<
    [rule: string, layers: () => RawEntry[][], entry: string | (() => string), limits?: FlattenLimits]
  > = [
    ["a .. path", () => [[{ name: "../sentinel/escape", content: "x" }]], "../sentinel/escape"],
    ["a .. hidden inside the path", () => [[{ name: "a/../../sentinel/x", content: "x" }]], "a/../../sentinel/x"],
    ["an absolute path", () => [[{ name: `${sentinel}/abs`, content: "x" }]], () => `${sentinel}/abs`],
    [
      "a relative symlink that climbs out",
      () => [[{ name: "link", type: "symlink", linkname: "../sentinel" }]],
      "link",
    ],
    [
      "a nested relative symlink that climbs out",
      () => [[{ name: "a/b/link", type: "symlink", linkname: "../../../outside/secret" }]],
      "a/b/link",
    ],
    [
      "an absolute symlink that climbs above /",
      () => [[{ name: "link", type: "symlink", linkname: "/../../../sentinel" }]],
      "link",
    ],
    [
      "writing through a symlink planted in the same layer",
      () => [
        [
          { name: "dir", type: "symlink", linkname: sentinel },
          { name: "dir/pwned", content: "x" },
        ],
      ],
      "dir/pwned",
    ],
    [
      "writing through a symlink planted by a lower layer",
      () => [[{ name: "etc", type: "symlink", linkname: sentinel }], [{ name: "etc/passwd", content: "x" }]],
      "etc/passwd",
    ],
    [
      "a directory entry through a symlink",
      () => [[{ name: "d", type: "symlink", linkname: sentinel }], [{ name: "d/sub/", type: "directory" }]],
      "d/sub/",
    ],
    [
      "a symlink planted through a symlink",
      () => [[{ name: "d", type: "symlink", linkname: sentinel }], [{ name: "d/l", type: "symlink", linkname: "/" }]],
      "d/l",
    ],
    [
      "a hardlink to a file outside (relative)",
      () => [[{ name: "h", type: "link", linkname: "../outside/secret" }]],
      "h",
    ],
    ["a hardlink to an absolute path", () => [[{ name: "h", type: "link", linkname: `${outside}/secret` }]], "h"],
    [
      "a hardlink through a planted symlink",
      () => [[{ name: "s", type: "symlink", linkname: outside }], [{ name: "h", type: "link", linkname: "s/secret" }]],
      "h",
    ],
    [
      "a hardlink to a symlink",
      () => [
        [
          { name: "s", type: "symlink", linkname: `${outside}/secret` },
          { name: "h", type: "link", linkname: "s" },
        ],
      ],
      "h",
    ],
    [
      "a hardlink to an entry not yet extracted",
      () => [
        [
          { name: "h", type: "link", linkname: "later" },
          { name: "later", content: "x" },
        ],
      ],
      "h",
    ],
    [
      "an opaque marker through a symlink",
      () => [[{ name: "s", type: "symlink", linkname: outside }], [{ name: "s/.wh..wh..opq" }]],
      "s/.wh..wh..opq",
    ],
    ["a character device", () => [[{ name: "dev/null", type: "character-device" }]], "dev/null"],
    ["a block device", () => [[{ name: "dev/sda", type: "block-device" }]], "dev/sda"],
    ["a fifo", () => [[{ name: "run/pipe", type: "fifo" }]], "run/pipe"],
    [
      "a file over the single-file limit",
      () => [[{ name: "big", content: "x".repeat(2000) }]],
      "big",
      { maxFileBytes: 1000 },
    ],
    [
      "total bytes over the limit across layers",
      () => [[{ name: "a", content: "x".repeat(600) }], [{ name: "b", content: "x".repeat(600) }]],
      "b",
      { maxTotalBytes: 1000 },
    ],
    [
      "too many entries",
      () => [Array.from({ length: 11 }, (_, i) => ({ name: `f${i}`, content: "" }))],
      "f10",
      { maxEntries: 10 },
    ],
    [
      "a path over the length limit",
      () => [[{ name: `${"p".repeat(70)}/x`, content: "" }]],
      `${"p".repeat(70)}/x`,
      {
        maxPathLength: 64,
      },
    ],
    ["a path over the depth limit", () => [[{ name: "a/b/c/d/e/f", content: "" }]], "a/b/c/d/e/f", { maxDepth: 5 }],
    ["a whiteout name used as a directory", () => [[{ name: ".wh.x/y", content: "" }]], ".wh.x/y"],
  ];

  for (const [rule, layers, entryName, limits] of rows) {
    it(rule, async () => {
      const entry = typeof entryName === "function" ? entryName() : entryName;
      await assert.rejects(flatten(layers(), limits), (err: unknown) => {
        assert.ok(isAppError(err, "BadRequest"), `expected a BadRequest, got ${String(err)}`);
        assert.ok(err.message.includes(`"${entry}"`), `"${err.message}" should name ${entry}`);
        assert.deepEqual(err.detail, { entry });
        return true;
      });
      assertNothingOutside();
    });
  }

  it("a whiteout through a planted symlink deletes nothing outside", async () => {
    await flatten([[{ name: "s", type: "symlink", linkname: outside }], [{ name: "s/.wh.secret" }]]);
    assertNothingOutside();
    assert.deepEqual(tree(target), [`s -> ${outside}`]);
  });

  it("a file replacing a planted symlink replaces the link, not its target", async () => {
    await flatten([
      [{ name: "f", type: "symlink", linkname: `${outside}/secret` }],
      [{ name: "f", content: "new", mode: 0o644 }],
    ]);
    assertNothingOutside();
    assert.deepEqual(tree(target), ['f "new" 644']);
  });

  it("absolute symlinks are kept as they are (rooted inside the tree)", async () => {
    await flatten([[{ name: "bin/sh", type: "symlink", linkname: "/bin/busybox" }]]);
    assert.deepEqual(tree(target), ["bin/ 755", "bin/sh -> /bin/busybox"]);
  });

  it("a malformed tar archive is a BadRequest naming the layer, not a bare parser error", async () => {
    const good = await rawTar([{ name: "a", content: "x".repeat(600) }]);
    const broken = Buffer.from(good);
    broken.fill(0x41, 100, 160); // scribble over mode/uid/gid/size/checksum of the first header
    await assert.rejects(
      flattenLayers([Readable.from([good]), Readable.from([broken])], target),
      (err: unknown) => isAppError(err, "BadRequest") && /layer 2 is not a valid tar archive/.test(err.message),
    );
    assertNothingOutside();
  });

  it("refuses a non-empty target", async () => {
    mkdirSync(target);
    writeFileSync(join(target, "old"), "");
    await assert.rejects(flatten([[{ name: "a", content: "" }]]), (err: unknown) => isAppError(err, "BadRequest"));
  });
});

// Talos pkg/archiver/untar.go: a PAX SCHILY.xattr.security.selinux record gives the path its label; nothing
// is set on disk, and other xattr records are ignored.
describe("flatten: SELinux labels from PAX records", () => {
  const label = (type: string) => ({ "SCHILY.xattr.security.selinux": `system_u:object_r:${type}:s0` });

  it("collects the topmost entry's label per path, drops removed paths, ignores other xattrs", async () => {
    const stats = await flatten([
      [
        { name: "rootfs/", type: "directory", pax: label("root_t") },
        { name: "rootfs/usr/bin/a", content: "a", pax: { ...label("bin_t"), "SCHILY.xattr.user.foo": "bar" } },
        { name: "rootfs/usr/bin/b", content: "b", pax: label("bin_t") },
        { name: "rootfs/usr/bin/c", content: "c", pax: label("bin_t") },
        { name: "rootfs/etc/d/e", content: "e", pax: label("etc_t") },
        { name: "rootfs/only-user", content: "u", pax: { "SCHILY.xattr.user.foo": "bar" } },
      ],
      [
        { name: "rootfs/usr/bin/b", content: "B" }, // replaced without a label: it has none now
        { name: "rootfs/usr/bin/c", type: "symlink", linkname: "a", pax: { "SCHILY.xattr.security.selinux": "x_t\0" } },
        { name: "rootfs/etc/.wh.d", content: "" },
      ],
    ]);
    assert.deepEqual([...stats.selinuxLabels].sort(), [
      ["rootfs", "system_u:object_r:root_t:s0"],
      ["rootfs/usr/bin/a", "system_u:object_r:bin_t:s0"],
      ["rootfs/usr/bin/c", "x_t"],
    ]);
    assert.equal(readFileSync(join(target, "rootfs/usr/bin/b"), "utf8"), "B");
  });

  it("keeps a label mksquashfs could not take (only Talos ≥ 1.13 builds use labels); refuses one over 64 KiB", async () => {
    const stats = await flatten([[{ name: "f", content: "x", pax: { "SCHILY.xattr.security.selinux": "a\nb" } }]]);
    assert.deepEqual([...stats.selinuxLabels], [["f", "a\nb"]]);
    rmSync(target, { recursive: true, force: true });
    await assert.rejects(
      flatten([[{ name: "g", content: "x", pax: { "SCHILY.xattr.security.selinux": "x".repeat(64 * 1024 + 1) } }]]),
      (err: unknown) => isAppError(err, "BadRequest") && /SELinux label is over/.test((err as Error).message),
    );
  });
});

describe("flatten: whiteouts and merging", () => {
  const lower: RawEntry[] = [
    { name: "etc/", type: "directory" },
    { name: "etc/keep", content: "lower" },
    { name: "etc/remove-me", content: "lower" },
    { name: "opt/", type: "directory" },
    { name: "opt/tool/", type: "directory" },
    { name: "opt/tool/bin", content: "lower" },
    { name: "opt/tool/lib/old.so", content: "lower" },
    { name: "var/", type: "directory" },
    { name: "var/lib/", type: "directory" },
    { name: "var/lib/old", content: "lower" },
    { name: "var/lib/sub/older", content: "lower" },
    { name: "replaced/", type: "directory" },
    { name: "replaced/child", content: "lower" },
  ];

  it("whiteouts remove lower files and directories and never appear themselves", async () => {
    await flatten([
      lower,
      [
        { name: "etc/.wh.remove-me" },
        { name: ".wh.opt" },
        { name: "etc/added", content: "upper" },
        { name: "replaced", content: "now a file" },
      ],
    ]);
    assert.deepEqual(tree(target), [
      "etc/ 755",
      'etc/added "upper" 644',
      'etc/keep "lower" 644',
      'replaced "now a file" 644',
      "var/ 755",
      "var/lib/ 755",
      'var/lib/old "lower" 644',
      "var/lib/sub/ 755",
      'var/lib/sub/older "lower" 644',
    ]);
  });

  for (const order of ["marker first", "marker last"] as const) {
    it(`an opaque directory hides lower contents but keeps its own layer's (${order})`, async () => {
      const own: RawEntry[] = [
        { name: "var/lib/new", content: "upper" },
        { name: "var/lib/sub/newer", content: "upper" },
      ];
      const marker: RawEntry = { name: "var/lib/.wh..wh..opq" };
      await flatten([lower, order === "marker first" ? [marker, ...own] : [...own, marker]]);
      const varTree = tree(target).filter((l) => l.startsWith("var/"));
      assert.deepEqual(varTree, [
        "var/ 755",
        "var/lib/ 755",
        'var/lib/new "upper" 644',
        "var/lib/sub/ 755",
        'var/lib/sub/newer "upper" 644',
      ]);
    });
  }

  it("an opaque directory in a later layer does not hide the layer above it", async () => {
    await flatten([lower, [{ name: "etc/.wh..wh..opq" }], [{ name: "etc/top", content: "top" }]]);
    assert.deepEqual(
      tree(target).filter((l) => l.startsWith("etc")),
      ["etc/ 755", 'etc/top "top" 644'],
    );
  });

  it("a whiteout in the same layer as the file does not hide it", async () => {
    await flatten([[{ name: "a", content: "same layer" }, { name: ".wh.a" }]]);
    assert.deepEqual(tree(target), ['a "same layer" 644']);
  });

  it("keeps modes (minus setuid/setgid), directory modes and mtimes; hardlinks share an inode", async () => {
    await flatten([
      [
        { name: "ro/", type: "directory", mode: 0o555 },
        { name: "ro/file", content: "data", mode: 0o640 },
        { name: "bin/su", content: "su", mode: 0o4755 },
        { name: "tmp/", type: "directory", mode: 0o1777 },
        { name: "ro/link", type: "link", linkname: "ro/file" },
      ],
    ]);
    assert.equal(statSync(join(target, "ro")).mode & 0o7777, 0o555);
    assert.equal(statSync(join(target, "ro/file")).mode & 0o7777, 0o640);
    assert.equal(statSync(join(target, "bin/su")).mode & 0o7777, 0o755);
    assert.equal(statSync(join(target, "tmp")).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(target, "ro/file")).mtimeMs, rawTarMtimeMs);
    assert.equal(statSync(join(target, "ro")).mtimeMs, rawTarMtimeMs);
    assert.equal(statSync(join(target, "ro/link")).ino, statSync(join(target, "ro/file")).ino);
    // Let the cleanup (when not root) remove the read-only directory's contents.
    chmodSync(join(target, "ro"), 0o755);
  });

  it("allowSetuid keeps setuid bits", async () => {
    await flatten([[{ name: "su", content: "su", mode: 0o4755 }]], { allowSetuid: true });
    assert.equal(statSync(join(target, "su")).mode & 0o7777, 0o4755);
  });

  it("flattens compressed layers built by buildLayer through decompressLayer, opened lazily", async () => {
    const blobDir = join(target, "..", "blobs");
    mkdirSync(blobDir);
    const l1 = await buildLayer(
      [
        { type: "file", path: "usr/share/a", content: Buffer.from("A") },
        { type: "file", path: "usr/share/b", content: Buffer.from("B") },
      ],
      join(blobDir, "1"),
      { compression: "gzip" },
    );
    const l2 = await buildLayer(
      [
        { type: "file", path: "usr/share/.wh.a", content: Buffer.alloc(0) },
        { type: "symlink", path: "usr/share/c", target: "b" },
      ],
      join(blobDir, "2"),
      { compression: "zstd" },
    );
    const stats = await flattenLayers(
      [
        async () => decompressLayer(createReadStream(join(blobDir, "1")), l1.descriptor.mediaType),
        async () => decompressLayer(createReadStream(join(blobDir, "2")), l2.descriptor.mediaType),
      ],
      target,
    );
    assert.deepEqual(tree(target), ["usr/ 755", "usr/share/ 755", 'usr/share/b "B" 644', "usr/share/c -> b"]);
    assert.equal(stats.layers, 2);
    assert.equal(stats.files, 2);
  });
});
