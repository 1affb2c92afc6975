// The intermediate cache's second level in a cache repository (src/factory/assets/intermediate-remote.ts) on
// the real CNCF distribution registry: an entry one data directory makes is fetched by another instead of being
// made; an entry re-pushed unsigned with other bytes is ignored and made again (and pushed, signed, again); the
// asset cache's garbage collection collects these entries like assets; and with the registry down a build
// makes its entry locally and says so. The entry format is the asset cache's (upstream image-factory
// internal/asset/cache/registry/registry.go: one application/data layer, signed with the cache key).

import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { collectCacheGarbage } from "../../src/factory/assets/gc.ts";
import { registryIntermediateRemote, remoteIntermediateKey } from "../../src/factory/assets/intermediate-remote.ts";
import { RegistryAssetCache } from "../../src/factory/assets/registry-cache.ts";
import { IntermediateCache } from "../../src/imager/intermediate-cache.ts";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { KeySigner } from "../../src/signing/signer.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { verificationByKey } from "../../src/signing/verify-options.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";

describe("intermediate cache entries shared through a cache repository", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let work: string;
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const key = randomBytes(32).toString("hex");
  const bytes = randomBytes(200_000);
  const repository = () => client.repository(`${registry.host}/image-factory/cache`);

  /** One replica's view: its own data directory, the shared repository, the shared key. */
  const replica = async (name: string) => {
    const dir = join(work, name);
    const logs: string[] = [];
    const repo = repository();
    const assets = new RegistryAssetCache({
      repository: repo,
      dockerReference: `${registry.host}/image-factory/cache`,
      signer: new KeySigner(privateKey),
      verifier: new SignatureVerifier(() => repo, verificationByKey(privateKey, "the cache signing key")),
      dir: join(dir, "assets"),
      log: (line) => logs.push(line),
    });
    const errors: string[] = [];
    const cache = new IntermediateCache(join(dir, "intermediate"), {
      remote: registryIntermediateRemote(assets),
      log: (line) => logs.push(line),
      onRemoteError: (kind, operation) => errors.push(`${kind} ${operation}`),
    });
    let makes = 0;
    // A build ends once its entries are kept and pushed (builders.ts build awaits settled()).
    const provide = async (dest: string) => {
      const hit = await cache.provide("squashfs", key, dest, async (out) => {
        makes++;
        await writeFile(out, bytes);
      });
      await cache.settled();
      return hit;
    };
    return { assets, cache, logs, errors, provide, makes: () => makes, dir };
  };

  before(async () => {
    registry = await startDistribution();
    client = new RegistryClient({ insecure: [registry.host], certsDirs: [] });
    work = await mkdtemp(join(tmpdir(), "intermediate-remote-"));
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("made on one replica, fetched (not made) by another, identical bytes; then a local hit there", async () => {
    const a = await replica("a");
    assert.equal(await a.provide(join(work, "a.out")), false);
    assert.equal(a.makes(), 1);
    assert.deepEqual(a.errors, []);
    // Stored under its own tag, not the intermediate key itself (asset keys never meet it).
    const tags = await repository().listTags();
    assert.ok(tags.includes(remoteIntermediateKey("squashfs", key)), tags.join(", "));
    assert.ok(!tags.includes(key));

    const b = await replica("b");
    assert.equal(await b.provide(join(work, "b.out")), true, "a hit");
    assert.equal(b.makes(), 0, "nothing made on b");
    assert.deepEqual(b.cache.stats, { hits: 0, remoteHits: 1, misses: 0 });
    assert.deepEqual(await readFile(join(work, "b.out")), bytes);
    assert.equal(await b.provide(join(work, "b2.out")), true);
    assert.deepEqual(b.cache.stats, { hits: 1, remoteHits: 1, misses: 0 }, "the second time from b's own disk");
  });

  it("an entry re-pushed unsigned with other bytes is ignored, made again and pushed signed again", async () => {
    const tag = remoteIntermediateKey("squashfs", key);
    const repo = repository();
    const junk = randomBytes(1000);
    const layer = await repo.putBlob(junk);
    const config = await repo.putBlob(Buffer.from("{}"));
    await repo.putManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.dockerManifest,
          config: { mediaType: MediaType.dockerConfig, size: config.size, digest: config.digest },
          layers: [{ mediaType: "application/data", size: layer.size, digest: layer.digest }],
        }),
      ),
      MediaType.dockerManifest,
      tag,
    );
    const c = await replica("c");
    assert.equal(await c.provide(join(work, "c.out")), false, "a miss");
    assert.equal(c.makes(), 1, "made on c");
    assert.deepEqual(await readFile(join(work, "c.out")), bytes);
    assert.ok(
      c.logs.some((line) => line.includes(tag) && line.includes("signature does not verify")),
      c.logs.join("\n"),
    );
    // c pushed its entry, signed: the next replica fetches the right bytes.
    const d = await replica("d");
    assert.equal(await d.provide(join(work, "d.out")), true);
    assert.equal(d.makes(), 0);
    assert.deepEqual(await readFile(join(work, "d.out")), bytes);
  });

  it("the asset cache's garbage collection lists and removes these entries like assets", async () => {
    const d = await replica("d");
    const tag = remoteIntermediateKey("squashfs", key);
    const entries = await d.assets.list();
    assert.deepEqual(
      entries.map((entry) => [entry.key, entry.size]),
      [[tag, bytes.length]],
    );
    const result = await collectCacheGarbage(d.assets, { maxSizeBytes: 0 });
    assert.deepEqual(
      result.removed.map((entry) => entry.key),
      [tag],
    );
    assert.ok(!(await repository().listTags()).includes(tag));
    // Gone from the registry: a replica with an empty disk makes it again.
    const e = await replica("e");
    assert.equal(await e.provide(join(work, "e.out")), false);
    assert.equal(e.makes(), 1);
  });

  it("with the registry down, a build makes its entry locally and logs the outage", async () => {
    await registry.stop();
    const f = await replica("f");
    assert.equal(await f.provide(join(work, "f.out")), false);
    assert.equal(f.makes(), 1);
    assert.deepEqual(await readFile(join(work, "f.out")), bytes);
    assert.deepEqual(f.errors, ["squashfs get", "squashfs put"]);
    assert.ok(
      f.logs.some((line) => line.includes("making it here")),
      f.logs.join("\n"),
    );
    assert.ok(f.logs.some((line) => line.includes("kept here only")));
    // The entry is on f's disk: the next build takes it from there, the registry still down.
    assert.equal(await f.provide(join(work, "f2.out")), true);
    assert.equal(f.makes(), 1);
  });
});
