import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { findTool } from "../../src/tools/run.ts";
import { listSquashfs, mksquashfs, mksquashfsArgs, mksquashfsTool, unsquashfs } from "../../src/tools/squashfs.ts";

const installed = findTool(mksquashfsTool) !== undefined;
let dir: string;
let tree: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "squashfs-test-"));
  tree = join(dir, "tree");
  await mkdir(join(tree, "usr/lib/modules/6.1.0"), { recursive: true });
  await writeFile(join(tree, "usr/lib/modules/6.1.0/modules.dep"), "kernel/a.ko:\n");
  await writeFile(join(tree, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
  await symlink("run.sh", join(tree, "link"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("mksquashfs arguments", () => {
  test("upstream's extension flags: -all-root -noappend -no-progress -comp zstd -Xcompression-level 18", () => {
    const args = mksquashfsArgs("in", "out.sqsh", { compression: "zstd", level: 18 });
    for (const flag of ["-all-root", "-noappend", "-no-progress"]) assert.ok(args.includes(flag), flag);
    assert.deepEqual(args.slice(args.indexOf("-comp"), args.indexOf("-comp") + 2), ["-comp", "zstd"]);
    assert.deepEqual(args.slice(args.indexOf("-Xcompression-level"), args.indexOf("-Xcompression-level") + 2), [
      "-Xcompression-level",
      "18",
    ]);
  });
  test("before Talos 1.8 upstream's flags are -comp xz -Xdict-size 100% (internal/pkg/extensions/compress.go)", () => {
    const args = mksquashfsArgs("in", "out.sqsh", { compression: "xz", xzDictSize: "100%" });
    assert.deepEqual(args.slice(args.indexOf("-comp"), args.indexOf("-comp") + 2), ["-comp", "xz"]);
    assert.deepEqual(args.slice(args.indexOf("-Xdict-size"), args.indexOf("-Xdict-size") + 2), ["-Xdict-size", "100%"]);
    assert.throws(() => mksquashfsArgs("in", "out", { compression: "zstd", xzDictSize: "100%" }), /xz option/);
    assert.throws(() => mksquashfsArgs("in", "out", { compression: "xz", xzDictSize: "100%; rm" }), /invalid xz/);
  });
  test("from Talos 1.13: -xattrs-exclude '.*' and one `<path> x security.selinux=<label>` pseudo definition per label (compress.go xattrPseudoFlags)", () => {
    const labels = new Map([
      ["usr/bin/b", "system_u:object_r:bin_t:s0"],
      ["/", "system_u:object_r:root_t:s0"],
      ["usr/a dir/f", "x_t"],
    ]);
    const args = mksquashfsArgs("in", "out.sqsh", { compression: "zstd", level: 18, selinuxLabels: labels });
    assert.deepEqual(args.slice(args.indexOf("-xattrs-exclude")), [
      "-xattrs-exclude",
      ".*",
      "-p",
      "/ x security.selinux=system_u:object_r:root_t:s0",
      "-p",
      "usr/a\\ dir/f x security.selinux=x_t",
      "-p",
      "usr/bin/b x security.selinux=system_u:object_r:bin_t:s0",
    ]);
    // No labels known still excludes every xattr on disk; no map at all (before 1.13) passes no xattr flag.
    assert.deepEqual(mksquashfsArgs("in", "out", { compression: "zstd", selinuxLabels: new Map() }).slice(-2), [
      "-xattrs-exclude",
      ".*",
    ]);
    assert.ok(!mksquashfsArgs("in", "out", { compression: "zstd" }).some((a) => a.includes("xattr") || a === "-p"));
    const refused: Array<[string, string]> = [
      ["../x", "a"],
      ["/etc/x", "a"],
      ["x", "a\nb"],
      ["x", ""],
    ];
    for (const [path, label] of refused)
      assert.throws(
        () => mksquashfsArgs("in", "out", { compression: "zstd", selinuxLabels: new Map([[path, label]]) }),
        /BadRequest|not a path inside|invalid SELinux label/,
      );
  });
  test("xz takes no level, block sizes must be powers of two", () => {
    assert.throws(() => mksquashfsArgs("in", "out", { compression: "xz", level: 5 }), /no compression level/);
    assert.throws(() => mksquashfsArgs("in", "out", { compression: "zstd", blockSize: 3000 }), /power of two/);
  });
});

describe("mksquashfs / unsquashfs", { skip: installed ? false : "squashfs-tools is not installed" }, () => {
  test("zstd image with a pinned time is reproducible, root-owned, and lists as written", async () => {
    const a = join(dir, "a.sqsh");
    const b = join(dir, "b.sqsh");
    await mksquashfs(tree, a, { compression: "zstd", level: 18, mtime: 1_700_000_000 });
    await mksquashfs(tree, b, { compression: "zstd", level: 18, mtime: 1_700_000_000 });
    assert.deepEqual(await readFile(a), await readFile(b));
    const superblock = execFileSync("unsquashfs", ["-s", a], { encoding: "utf8" });
    assert.match(superblock, /Compression zstd/);
    assert.match(superblock, /compression-level 18/);
    const listing = await listSquashfs(a);
    assert.deepEqual(
      listing.map((e) => e.path),
      [
        "/",
        "/link",
        "/run.sh",
        "/usr",
        "/usr/lib",
        "/usr/lib/modules",
        "/usr/lib/modules/6.1.0",
        "/usr/lib/modules/6.1.0/modules.dep",
      ],
    );
    assert.ok(listing.every((e) => e.owner === "root/root"));
    const link = listing.find((e) => e.path === "/link");
    assert.equal(link?.target, "run.sh");
    assert.equal(listing.find((e) => e.path === "/run.sh")?.mode, "-rwxr-xr-x");
  });

  test("SOURCE_DATE_EPOCH in the environment does not clash with a pinned time", async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "12345";
    try {
      await mksquashfs(tree, join(dir, "c.sqsh"), { compression: "xz", mtime: 0 });
      assert.match(execFileSync("unsquashfs", ["-s", join(dir, "c.sqsh")], { encoding: "utf8" }), /Compression xz/);
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  test("unsquashfs extracts everything, or only the paths asked for", async () => {
    const image = join(dir, "a.sqsh");
    const all = join(dir, "all");
    await unsquashfs(image, all);
    assert.equal(await readFile(join(all, "usr/lib/modules/6.1.0/modules.dep"), "utf8"), "kernel/a.ko:\n");
    assert.equal(await readlink(join(all, "link")), "run.sh");
    const some = join(dir, "some");
    await unsquashfs(image, some, { paths: ["/usr/lib/modules"] });
    assert.ok((await stat(join(some, "usr/lib/modules/6.1.0/modules.dep"))).isFile());
    await assert.rejects(stat(join(some, "run.sh")));
  });

  test("a failure carries unsquashfs's own message", async () => {
    await writeFile(join(dir, "not.sqsh"), "garbage");
    await assert.rejects(
      unsquashfs(join(dir, "not.sqsh"), join(dir, "x")),
      /unsquashfs exited with code 1: .*superblock/is,
    );
  });
});
