import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { resolveInTree } from "../../src/oci/tree-path.ts";

describe("resolveInTree: symlinks are followed as the image sees them, never out of the tree", () => {
  const base = mkdtempSync(join(tmpdir(), "tree-path-"));
  const root = join(base, "root");
  after(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "sub"), { recursive: true });
  writeFileSync(join(root, "etc", "x"), "inside");
  writeFileSync(join(base, "x"), "outside");
  symlinkSync("/etc/x", join(root, "abs-link"));
  symlinkSync("../../../../etc/x", join(root, "sub", "climb"));
  // Each link alone stays inside; followed by the OS, `sub/e` reaches base/x (outside the root).
  symlinkSync("..", join(root, "sub", "d"));
  symlinkSync("d/../x", join(root, "sub", "e"));
  symlinkSync("loop-b", join(root, "loop-a"));
  symlinkSync("loop-a", join(root, "loop-b"));

  const read = async (path: string) => readFile(await resolveInTree(root, path), "utf8");

  it("an absolute link target is taken from the tree root", async () => {
    assert.equal(await read("abs-link"), "inside");
  });

  it("`..` stops at the tree root", async () => {
    assert.equal(await read("sub/climb"), "inside");
  });

  it("a chain of links that would leave the root through the OS stays inside", async () => {
    assert.equal(await readFile(join(root, "sub", "e"), "utf8").catch(() => "outside?"), "outside");
    await assert.rejects(read("sub/e"), { code: "ENOENT" }); // root/x does not exist: the lookup stayed inside
  });

  it("the last link is kept when followLast is false", async () => {
    assert.equal(await resolveInTree(root, "/abs-link", { followLast: false }), join(root, "abs-link"));
  });

  it("a link loop is refused", async () => {
    await assert.rejects(resolveInTree(root, "loop-a"), (err: unknown) => isAppError(err, "BadRequest"));
  });
});
