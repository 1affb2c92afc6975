// The source content cache on its own (no registry): entries appear only when complete, a failed fill leaves
// nothing, concurrent requests share one fill, and the size bound evicts least recently used entries but
// never one that is leased.

import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SourceContentCache } from "../../src/factory/sources/content-cache.ts";
import { type Digest, sha256Digest } from "../../src/oci/digest.ts";

const digestOf = (text: string): Digest => sha256Digest(text);

describe("SourceContentCache", () => {
  let root: string;
  let count = 0;
  const freshDir = () => join(root, `cache-${count++}`);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "content-cache-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test("a fill that fails leaves no entry and no temporary directory", async () => {
    const dir = freshDir();
    const cache = new SourceContentCache({ dir });
    await assert.rejects(
      cache.obtain(digestOf("a"), "tree", async (content) => {
        await writeFile(join(content, "half"), "written before the failure");
        throw new Error("pull failed");
      }),
      /pull failed/,
    );
    assert.deepEqual(await readdir(dir), []);
  });

  test("concurrent requests for one digest run one fill and see the same content", async () => {
    const cache = new SourceContentCache({ dir: freshDir() });
    let fills = 0;
    const fill = async (content: string) => {
      fills++;
      await new Promise((r) => setTimeout(r, 20));
      await writeFile(join(content, "file"), "content");
      return { note: "meta" };
    };
    const leases = await Promise.all([1, 2, 3].map(() => cache.obtain(digestOf("b"), "tree", fill)));
    assert.equal(fills, 1);
    assert.equal(new Set(leases.map((l) => l.dir)).size, 1);
    assert.deepEqual(leases[0]?.meta, { note: "meta" });
    assert.equal(await readFile(join(leases[0]?.dir as string, "file"), "utf8"), "content");
    for (const lease of leases) lease.release();
  });

  test("an entry of another kind under the same digest is not used as this kind", async () => {
    const dir = freshDir();
    const cache = new SourceContentCache({ dir });
    (await cache.obtain(digestOf("c"), "tree", async (content) => writeFile(join(content, "t"), "tree"))).release();
    let filled = false;
    const lease = await new SourceContentCache({ dir }).obtain(digestOf("c"), "layers", async (content) => {
      filled = true;
      await writeFile(join(content, "l"), "layers");
    });
    lease.release();
    assert.ok(filled);
    assert.equal(await readFile(join(lease.dir, "l"), "utf8"), "layers");
  });

  test("an entry whose metadata the caller no longer accepts (an older format) is filled again, on disk too", async () => {
    const dir = freshDir();
    (await new SourceContentCache({ dir }).obtain(digestOf("m"), "tree", async () => null)).release();
    const checkMeta = (meta: unknown) => (meta === null ? "cached before labels were kept" : undefined);
    const reasons: string[] = [];
    const fill = async () => ({ selinuxLabels: {} });
    const lease = await new SourceContentCache({ dir }).obtain(digestOf("m"), "tree", fill, {
      checkMeta,
      onDiscard: (reason) => reasons.push(reason),
    });
    lease.release();
    assert.deepEqual(lease.meta, { selinuxLabels: {} });
    assert.deepEqual(reasons, ["cached before labels were kept"]);
    let filled = false;
    const again = await new SourceContentCache({ dir }).obtain(
      digestOf("m"),
      "tree",
      async () => {
        filled = true;
        return null;
      },
      { checkMeta },
    );
    again.release();
    assert.equal(filled, false, "the refilled entry replaced the old one on disk");
    assert.deepEqual(again.meta, { selinuxLabels: {} });
  });

  test("over its size bound, least recently used entries go first; leased ones stay", async () => {
    const dir = freshDir();
    const cache = new SourceContentCache({ dir, maxBytes: 2500, keepRecentMs: 0 });
    const put = (name: string) =>
      cache.obtain(digestOf(name), "tree", async (content) => writeFile(join(content, "data"), Buffer.alloc(1000)));
    const key = (name: string) => `sha256-${digestOf(name).slice("sha256:".length)}`;
    const oldest = await put("one");
    const leased = await put("two");
    oldest.release();
    // Make "two" (leased) the least recently used: it must survive anyway.
    const past = new Date(Date.now() - 60_000);
    await utimes(join(dir, key("two")), past, past);
    await utimes(join(dir, key("one")), new Date(Date.now() - 30_000), new Date(Date.now() - 30_000));
    (await put("three")).release();
    const names = (await readdir(dir)).sort();
    assert.ok(names.includes(key("two")), "the leased entry stays");
    assert.ok(names.includes(key("three")), "the new entry stays");
    assert.ok(!names.includes(key("one")), "the least recently used unleased entry is evicted");
    leased.release();
  });
});
