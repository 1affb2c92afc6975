// The factory's asset cache in a registry (the seed's -cache-repository, here the test bed's registry):
// upstream's entry layout (image-factory internal/asset/cache/registry/registry.go: one image per asset,
// tagged by the profile hash, Docker schema 2, one `application/data` layer holding the raw bytes, signed
// with the cache key as cosign's `sha256-<hex>.sig`), verifiable with `boot-assets verify --key` and the key
// /oci/cosign/signing-key.pub publishes; an unsigned or replaced entry is a miss and is rebuilt, and so is
// every entry under a new signing key (upstream's acceptance tests generate a key per run for exactly that:
// internal/integration/integration_test.go setupCacheSigningKey).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { retryAfterSeconds } from "../../src/errors.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { type ImageManifest, parseManifest } from "../../src/oci/manifest.ts";
import { signatureTag } from "../../src/signing/cosign-format.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import {
  type FactoryUnderTest,
  metricSum,
  type PublishedTestbed,
  type SeedBed,
  startSeedBed,
  startSeedFactory,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const schematicYaml = `customization:
  extraKernelArgs:
    - cache.test=yes
`;
const asset = "cmdline-metal-amd64";

const sha256 = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

describe("asset cache entries in the cache repository", () => {
  let bed: SeedBed | undefined;
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base: string;
  let id: string;
  let original: Buffer;

  const cacheRepository = () => testbed.server.store.repository("cache");
  const built = async (factory: FactoryUnderTest) =>
    metricSum(await (await fetch(factory.factory.metricsUrl as string)).text(), "image_factory_assets_built_total");
  const download = async (url: string) => {
    const res = await fetch(`${url}/image/${id}/${version}/${asset}`);
    assert.equal(res.status, 200, await res.clone().text());
    return Buffer.from(await res.arrayBuffer());
  };
  /** The entry whose layer holds `bytes`: its tag (the key), manifest digest and manifest. */
  const entryHolding = async (bytes: Buffer) => {
    const repository = cacheRepository();
    for (const tag of await repository.listTags()) {
      if (!/^[0-9a-f]{64}$/.test(tag)) continue;
      const record = await repository.getManifest(tag);
      const manifest = parseManifest(record.body, record.mediaType).manifest as ImageManifest;
      if (manifest.layers?.[0]?.digest === sha256(bytes)) return { key: tag, digest: record.digest, record, manifest };
    }
    throw new Error("no cache entry holds the downloaded bytes");
  };

  before(async () => {
    bed = await startSeedBed({ schematic: schematicYaml });
    ({ testbed, running, base, id } = bed);
    original = await download(base);
  });
  after(async () => {
    await bed?.stop();
  });

  it("is one image tagged by the key: Docker schema 2, one application/data layer of the raw bytes, upstream's config", async () => {
    const entry = await entryHolding(original);
    assert.equal(entry.record.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    assert.equal(entry.manifest.config.mediaType, "application/vnd.docker.container.image.v1+json");
    assert.equal(entry.manifest.layers.length, 1);
    assert.deepEqual(
      { ...entry.manifest.layers[0] },
      { mediaType: "application/data", size: original.length, digest: sha256(original) },
    );
    const config = JSON.parse(
      await new Response(
        (await cacheRepository().getBlob(entry.manifest.config.digest as Digest)).stream as unknown as ReadableStream,
      ).text(),
    );
    assert.deepEqual(config, {
      architecture: "",
      created: "0001-01-01T00:00:00Z",
      history: [{ created: "0001-01-01T00:00:00Z" }],
      os: "",
      rootfs: { type: "layers", diff_ids: [sha256(original)] },
      config: {},
    });
  });

  it("is signed with the cache key: `boot-assets verify --key` with /oci/cosign/signing-key.pub accepts it", async () => {
    const entry = await entryHolding(original);
    const home = await mkdtemp(join(running.dataDir, "..", "verify-"));
    const keyFile = join(home, "signing-key.pub");
    const res = await fetch(`${base}/oci/cosign/signing-key.pub`);
    await writeFile(keyFile, Buffer.from(await res.arrayBuffer()));
    const result = await runCli(
      ["verify", "--insecure", "--key", keyFile, `${testbed.registry}/cache@${entry.digest}`],
      isolatedEnv(home),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.toString().includes(entry.digest), result.stdout.toString());
  });

  it("a second request is served from the entry: nothing built", async () => {
    const before = await built(running);
    assert.deepEqual(await download(base), original);
    assert.equal(await built(running), before);
  });

  it("an entry replaced by an unsigned image is a miss: rebuilt, the right bytes served, the tag signed again", async () => {
    const entry = await entryHolding(original);
    const repository = cacheRepository();
    const evil = Buffer.from("not the asset\n");
    const layer = await repository.putBlob(evil);
    const config = await repository.putBlob(Buffer.from("{}"));
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.size, digest: config.digest },
      layers: [{ mediaType: "application/data", size: layer.size, digest: layer.digest }],
    };
    await repository.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, entry.key);
    const before = await built(running);
    assert.deepEqual(await download(base), original);
    assert.equal(await built(running), before + 1, "the unsigned entry was rebuilt");
    assert.ok(
      running.logs.some((line) => String(line.msg).includes("signature does not verify with the cache signing key")),
    );
    const again = await entryHolding(original);
    assert.equal(again.key, entry.key, "the same key, pointing at a good entry again");
    assert.deepEqual(await download(base), original);
    assert.equal(await built(running), before + 1, "and then it is a hit");
  });

  it("a factory with another signing key rebuilds what the first cached (entries it cannot verify are misses)", async () => {
    const other = await startSeedFactory(testbed);
    try {
      await waitFor200(`${other.factory.url}/readyz`);
      assert.deepEqual(await download(other.factory.url), original);
      assert.equal(await built(other), 1);
      assert.deepEqual(await download(other.factory.url), original);
      assert.equal(await built(other), 1, "its own signature verifies: a hit");
    } finally {
      await other.stop();
    }
  });

  it("a cache repository that cannot be reached: 503 naming it (a registry outage, not the client's fault)", async () => {
    const down = await startSeedFactory(testbed, ["-cache-repository", "127.0.0.1:9/cache"]);
    try {
      const versions = `${down.factory.url}/versions`;
      await waitFor200(versions);
      const res = await fetch(`${down.factory.url}/image/${id}/${version}/${asset}`);
      assert.equal(res.status, 503);
      // An outage: the client is told when to try again (src/errors.ts retryAfterSeconds).
      assert.equal(res.headers.get("retry-after"), String(retryAfterSeconds));
      assert.match(await res.text(), /^asset cache 127\.0\.0\.1:9\/cache: looking up [0-9a-f]{64}: .*unreachable/);
    } finally {
      await down.stop();
    }
  });

  it("garbage collection removes entries from the repository: their tags, manifests and signatures, and the spool copies", async () => {
    const entry = await entryHolding(original);
    const repository = cacheRepository();
    const result = await running.factory.assets.collectGarbage({ maxSizeBytes: 1 });
    assert.ok(result.removed.some((removed) => removed.key === entry.key));
    assert.equal(result.inUse, 0);
    const tags = await repository.listTags();
    assert.equal(tags.filter((tag) => /^[0-9a-f]{64}$/.test(tag)).length, 0, "no entry is left");
    assert.equal(await repository.statManifest(entry.digest), undefined, "the manifest is gone");
    assert.equal(await repository.statManifest(signatureTag(entry.digest)), undefined, "and its signature");
    assert.deepEqual(await readdir(join(running.dataDir, "assets", "spool")), [], "the spool copies are freed");
    assert.ok(result.sweptBytes >= original.length);
    // And the asset is built again on demand.
    assert.deepEqual(await download(base), original);
  });
});
