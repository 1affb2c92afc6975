// Garbage collection of the embedded store (src/registry/gc.ts): what a manifest of any repository
// references stays, what nothing references goes once older than the grace period, and a blob just pushed
// for a manifest not yet pushed survives inside it.

import assert from "node:assert/strict";
import { mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { collectStoreGarbage, removeDamagedBlob } from "../../src/registry/gc.ts";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";

const image = (config: { digest: string; size: number }, layer: { digest: string; size: number }) => {
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
  };
  return Buffer.from(JSON.stringify(manifest));
};

describe("embedded store garbage collection", () => {
  let dir: string;
  let store: RegistryStore;
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );
  const age = async (path: string) => {
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(path, old, old);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "store-gc-"));
    store = await openStore(dir);
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps referenced and young blobs, frees old unreferenced ones, and blobs shared across repositories while one uses them", async () => {
    const a = store.repository("team/a");
    const b = store.repository("team/b");
    const config = await a.putBlob(Buffer.from("{}"));
    const shared = await a.putBlob(Buffer.from("shared layer"));
    const onlyA = await a.putBlob(Buffer.from("a's layer"));
    const young = await a.putBlob(Buffer.from("pushed, manifest not yet"));
    await b.putBlob(Buffer.from("{}"));
    await b.putBlob(Buffer.from("shared layer"));
    const manifestA = await a.putManifest(image(config, onlyA), "application/vnd.oci.image.manifest.v1+json", "v1");
    await b.putManifest(image(config, shared), "application/vnd.oci.image.manifest.v1+json", "v1");
    await a.putManifest(image(config, shared), "application/vnd.oci.image.manifest.v1+json", "v2");
    await a.deleteManifest(manifestA);
    // Everything but `young` was pushed long ago: its files and its links.
    for (const digest of [config.digest, shared.digest, onlyA.digest, manifestA]) {
      const hex = digest.slice("sha256:".length);
      await age(store.blobFile(digest as `sha256:${string}`));
      for (const repo of ["a", "b"])
        await age(join(dir, "repositories", "team", repo, "_blobs", "sha256", hex)).catch(() => undefined);
    }

    const result = await collectStoreGarbage(store);
    assert.equal(result.blobsRemoved, 2, "a's layer and a's deleted manifest");
    assert.equal(await exists(store.blobFile(onlyA.digest)), false);
    assert.equal(await exists(store.blobFile(manifestA)), false);
    assert.ok(await exists(store.blobFile(shared.digest)));
    assert.ok(await exists(store.blobFile(config.digest)));
    assert.ok(await exists(store.blobFile(young.digest)), "younger than the grace period");
    assert.equal(await a.statBlob(onlyA.digest), undefined, "its link went too");

    await a.deleteManifest("v2");
    const again = await collectStoreGarbage(store);
    assert.equal(again.blobsRemoved, 0, "b's manifest still uses the shared layer");
    const none = await collectStoreGarbage(store, { graceMs: 0 });
    assert.equal(await exists(store.blobFile(young.digest)), false, "without grace the unreferenced young blob goes");
    assert.ok(none.blobsRemoved >= 1);
    assert.ok(await exists(store.blobFile(shared.digest)));
  });

  it("removeDamagedBlob removes a blob file whose bytes no longer hash to its digest, and nothing else", async () => {
    const repository = store.repository("team/c");
    const good = await repository.putBlob(Buffer.from("good bytes"));
    assert.equal(await removeDamagedBlob(store, good.digest), false);
    await writeFile(store.blobFile(good.digest), "bad! bytes");
    assert.equal(await removeDamagedBlob(store, good.digest), true);
    assert.equal(await exists(store.blobFile(good.digest)), false);
  });
});
