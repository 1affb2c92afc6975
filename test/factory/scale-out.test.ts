// Scale-out: three factory processes ("replicas", each with its own data directory) share one external
// registry — the real CNCF distribution (docker-registry) — for the schematic repository, the asset cache
// (signed with one shared cache signing key) and the installers' internal repository, and serve each other's
// builds from it — intermediate results too (an extension's squashfs image made on one replica is fetched, not
// made, by another: docs/caches.md "The intermediate cache"). Sources come from the test bed release (the seed
// command line, service-harness.ts).
//
// Upstream does the same with no coordination between replicas beyond the registry: image-factory
// internal/asset/cache/registry/registry.go (Get: HEAD the tag, verify the signature with the cache key, else
// a miss; Put: push the image tagged with the profile ID, then sign it), internal/schematic/storage/registry
// (schematics by ID), internal/frontend/http/registry.go (an installer tag signed by the cache key is answered
// as is). Concurrent first requests on several replicas may each build; reproducible builds make their pushes
// the same image, so the tag ends at one manifest whichever push comes last.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { type RunningFactory, startFactory } from "../../src/factory/run.ts";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { type KeyFiles, makeKeyFiles } from "./config-fixtures.ts";
import {
  capturingLogger,
  createSchematic,
  metricSum,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";

interface Replica {
  name: string;
  factory: RunningFactory;
  logs: Array<Record<string, unknown>>;
  base: string;
  metrics(): Promise<string>;
}

/** The seed command line with the three shared repositories moved to `shared` (the distribution registry). */
function replicaArgv(testbed: PublishedTestbed, shared: string, keys: KeyFiles, dataDir: string): string[] {
  const argv = seedArgv(testbed, keys, dataDir);
  const moved: Record<string, string> = {
    "-cache-repository": `${shared}/image-factory/cache`,
    "-schematic-service-repository": `${shared}/image-factory/schematics`,
    "-installer-internal-repository": `${shared}/image-factory/installer`,
  };
  return argv.map((arg, i) => {
    const flag = argv[i - 1];
    return flag !== undefined && moved[flag] !== undefined ? moved[flag] : arg;
  });
}

async function builds(replica: Replica, kind?: string): Promise<number> {
  return metricSum(
    await replica.metrics(),
    "image_factory_assets_built_total",
    kind === undefined ? "" : `output_kind="${kind}"`,
  );
}

async function download(replica: Replica, path: string): Promise<{ sha256: string; size: number; etag: string }> {
  const res = await fetch(`${replica.base}${path}`);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, `${replica.name} ${path}: ${body.subarray(0, 500).toString("utf8")}`);
  return {
    sha256: createHash("sha256").update(body).digest("hex"),
    size: body.length,
    etag: res.headers.get("etag") ?? "",
  };
}

describe("three replicas sharing one distribution registry", () => {
  let testbed: PublishedTestbed;
  let registry: RunningRegistry;
  let keys: KeyFiles;
  let work: string;
  const replicas: Replica[] = [];
  let id: string;

  before(async () => {
    testbed = await publishTestbed();
    registry = await startDistribution();
    // One cache signing key (and Secure Boot keys) for all replicas: each must verify the others' entries.
    keys = await makeKeyFiles();
    work = await mkdtemp(join(tmpdir(), "scale-out-"));
    for (const name of ["A", "B", "C"]) {
      const logs: Array<Record<string, unknown>> = [];
      const config = await parseFactoryCommandLine(
        replicaArgv(testbed, registry.host, keys, join(work, `data-${name}`)),
        {},
      );
      const factory = await startFactory(config, {
        logger: capturingLogger(logs),
        print: () => {},
        processMetrics: false,
      });
      const metricsUrl = factory.metricsUrl as string;
      replicas.push({
        name,
        factory,
        logs,
        base: factory.url,
        metrics: async () => (await fetch(metricsUrl)).text(),
      });
    }
    for (const replica of replicas) await waitFor200(`${replica.base}/readyz`);
  });
  after(async () => {
    for (const replica of replicas) await replica.factory.close();
    await registry?.stop();
    await testbed?.stop();
    await keys?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const a = () => replicas[0] as Replica;
  const b = () => replicas[1] as Replica;
  const c = () => replicas[2] as Replica;

  it("a schematic created on A is readable on B and C, and a duplicate create on C stores nothing new", async () => {
    const yaml = "customization:\n  extraKernelArgs:\n    - scale.out=yes\n";
    id = await createSchematic(a().base, yaml);
    const canonical = await (await fetch(`${a().base}/schematics/${id}`)).text();
    for (const replica of [b(), c()]) {
      const res = await fetch(`${replica.base}/schematics/${id}`);
      assert.equal(res.status, 200, `${replica.name}: ${await res.clone().text()}`);
      assert.equal(await res.text(), canonical);
    }
    // Stored once in the shared repository, tagged with the ID.
    const repo = new RegistryClient({ insecure: [registry.host], certsDirs: [] }).repository(
      `${registry.host}/image-factory/schematics`,
    );
    assert.deepEqual(await repo.listTags(), [id]);
    const again = await fetch(`${c().base}/schematics`, {
      method: "POST",
      headers: { "Content-Type": "application/yaml" },
      body: yaml,
    });
    assert.equal(again.status, 201);
    assert.equal(((await again.json()) as { id: string }).id, id);
    assert.equal(metricSum(await c().metrics(), "image_factory_schematic_duplicate_create_total"), 1);
  });

  it("an asset built on A is a cache hit on B and C: same bytes, no build there", async () => {
    const path = `/image/${id}/${version}/kernel-amd64`;
    const built = await download(a(), path);
    assert.equal(await builds(a(), "kernel"), 1);
    for (const replica of [b(), c()]) {
      const got = await download(replica, path);
      assert.deepEqual(got, built, replica.name);
      assert.equal(await builds(replica), 0, `${replica.name} built nothing`);
      assert.equal(
        metricSum(await replica.metrics(), "image_factory_assets_delivered_cached_total", 'output_kind="kernel"'),
        1,
        `${replica.name} answered from the shared cache`,
      );
    }
  });

  it("concurrent first requests on the three replicas leave one signed entry and identical bytes", async (t) => {
    const path = `/image/${id}/${version}/initramfs-amd64.xz`;
    const before = await Promise.all(replicas.map((r) => builds(r, "initramfs")));
    const got = await Promise.all(replicas.map((r) => download(r, path)));
    for (const other of got.slice(1)) assert.deepEqual(other, got[0], "identical bytes on every replica");
    const after = await Promise.all(replicas.map((r) => builds(r, "initramfs")));
    const total = after.reduce((sum, n, i) => sum + n - (before[i] as number), 0);
    assert.ok(total >= 1 && total <= 3, `between one and three builds (${total})`);
    t.diagnostic(`builds for three concurrent first requests: ${total}`);

    // One tag in the cache repository for this asset, whose layer is the bytes served, signed by the cache key.
    const client = new RegistryClient({ insecure: [registry.host], certsDirs: [] });
    const cache = client.repository(`${registry.host}/image-factory/cache`);
    const tags = (await cache.listTags()).filter((tag) => /^[0-9a-f]{64}$/.test(tag));
    const withLayer: string[] = [];
    for (const tag of tags) {
      const record = await cache.getManifest(tag);
      const manifest = JSON.parse(record.body.toString("utf8")) as { layers: Array<{ digest: string; size: number }> };
      if (manifest.layers.some((layer) => layer.digest === `sha256:${got[0]?.sha256}`)) withLayer.push(tag);
    }
    assert.equal(withLayer.length, 1, `one cache entry holds the initramfs (${withLayer.join(", ")})`);
    const tag = withLayer[0] as string;

    const publicKey = await (await fetch(`${b().base}/oci/cosign/signing-key.pub`)).text();
    assert.equal(publicKey, await (await fetch(`${a().base}/oci/cosign/signing-key.pub`)).text());
    const keyFile = join(work, "cache.pub");
    await writeFile(keyFile, publicKey);
    const home = await mkdtemp(join(work, "home-"));
    const verified = await runCli(
      ["verify", "--insecure", "--key", keyFile, `${registry.host}/image-factory/cache:${tag}`],
      isolatedEnv(home),
      120_000,
    );
    assert.equal(verified.code, 0, verified.stderr);

    // A fourth request on each replica is a hit.
    for (const replica of replicas) assert.deepEqual(await download(replica, path), got[0]);
    const final = await Promise.all(replicas.map((r) => builds(r, "initramfs")));
    assert.deepEqual(final, after, "no build after the entry exists");
  });

  it("an installer built through A is answered by B from the shared repository without a rebuild", async () => {
    const manifestPath = `/v2/installer/${id}/manifests/${version}`;
    const first = await fetch(`${a().base}${manifestPath}`, { redirect: "manual" });
    assert.equal(first.status, 307, await first.text());
    const location = first.headers.get("location");
    assert.equal(a().logs.filter((l) => l.msg === "installer image built, signed and tagged").length, 1);
    const installerBuildsOnB = await builds(b(), "installer");
    const second = await fetch(`${b().base}${manifestPath}`, { redirect: "manual" });
    assert.equal(second.status, 307, await second.text());
    assert.equal(second.headers.get("location"), location, "the same index digest");
    assert.equal(b().logs.filter((l) => l.msg === "installer image built, signed and tagged").length, 0);
    assert.equal(await builds(b(), "installer"), installerBuildsOnB, "B built no installer tarball");
  });

  it("an extension image made on A is fetched by B for another schematic, not made again; bytes as a cold build", async (t) => {
    // The intermediate cache's second level (docs/caches.md): signed entries in the cache repository.
    const withExtension = (arg: string) =>
      `customization:\n  extraKernelArgs:\n    - ${arg}\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/testbed-dummy\n`;
    const squashfs = async (replica: Replica, outcome: string) =>
      metricSum(
        await replica.metrics(),
        "boot_assets_intermediate_cache_lookups_total",
        `kind="squashfs",outcome="${outcome}"`,
      );
    const client = new RegistryClient({ insecure: [registry.host], certsDirs: [] });
    const cache = client.repository(`${registry.host}/image-factory/cache`);
    const entryTags = async () => (await cache.listTags()).filter((tag) => /^[0-9a-f]{64}$/.test(tag));
    const layerOf = async (tag: string) =>
      (JSON.parse((await cache.getManifest(tag)).body.toString("utf8")) as { layers: Array<{ digest: string }> })
        .layers[0]?.digest;

    const tagsBefore = new Set(await entryTags());
    const first = await createSchematic(a().base, withExtension("share=a"));
    const fromA = await download(a(), `/image/${first}/${version}/initramfs-amd64.xz`);
    assert.equal(await squashfs(a(), "made"), 1, "A made the extension's image");
    // Two new entries: the initramfs and the extension image (a tag of its own, signed like an asset).
    const added = (await entryTags()).filter((tag) => !tagsBefore.has(tag));
    const intermediate: string[] = [];
    for (const tag of added) if ((await layerOf(tag)) !== `sha256:${fromA.sha256}`) intermediate.push(tag);
    assert.equal(intermediate.length, 1, `one intermediate entry among ${added.join(", ")}`);
    const intermediateTag = intermediate[0] as string;
    const intermediateLayer = await layerOf(intermediateTag);

    const second = withExtension("share=b");
    const secondId = await createSchematic(b().base, second);
    const path = `/image/${secondId}/${version}/initramfs-amd64.xz`;
    const fromB = await download(b(), path);
    assert.equal(await squashfs(b(), "made"), 0, "B ran no mksquashfs for the extension");
    assert.equal(await squashfs(b(), "remote"), 1, "B fetched A's image");

    // A cold build of B's schematic: a factory of its own (embedded stores, empty data directory).
    const coldLogs: Array<Record<string, unknown>> = [];
    const cold = await startFactory(await parseFactoryCommandLine(seedArgv(testbed, keys, join(work, "data-E")), {}), {
      logger: capturingLogger(coldLogs),
      print: () => {},
      processMetrics: false,
    });
    try {
      const e: Replica = {
        name: "E",
        factory: cold,
        logs: coldLogs,
        base: cold.url,
        metrics: async () => (await fetch(cold.metricsUrl as string)).text(),
      };
      await waitFor200(`${e.base}/readyz`);
      assert.equal(await createSchematic(e.base, second), secondId);
      const fromCold = await download(e, path);
      assert.equal(await squashfs(e, "made"), 1, "the cold build made the image");
      assert.equal(fromB.sha256, fromCold.sha256, "B's initramfs is byte for byte the cold build's");
      assert.equal(fromB.size, fromCold.size);
    } finally {
      await cold.close();
    }

    // Tampered: the tag re-pushed, unsigned, with other bytes. C (no local copy) ignores it and makes the image.
    const junk = await cache.putBlob(Buffer.from("not a squashfs image"));
    const config = await cache.putBlob(Buffer.from("{}"));
    await cache.putManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.docker.distribution.manifest.v2+json",
          config: {
            mediaType: "application/vnd.docker.container.image.v1+json",
            size: config.size,
            digest: config.digest,
          },
          layers: [{ mediaType: "application/data", size: junk.size, digest: junk.digest }],
        }),
      ),
      "application/vnd.docker.distribution.manifest.v2+json",
      intermediateTag,
    );
    const third = await createSchematic(c().base, withExtension("share=c"));
    await download(c(), `/image/${third}/${version}/initramfs-amd64.xz`);
    assert.equal(await squashfs(c(), "remote"), 0, "the tampered entry was not used");
    assert.equal(await squashfs(c(), "made"), 1, "C made the image");
    assert.ok(
      c().logs.some((l) => String(l.msg).includes(intermediateTag) && String(l.msg).includes("does not verify")),
      "C says why",
    );
    assert.equal(await layerOf(intermediateTag), intermediateLayer, "C pushed the image again, as A made it");
    t.diagnostic(`intermediate entry ${intermediateTag}`);
    await client.close();
  });

  it("a replica without the shared cache signing key warns at start and cannot use the others' entries", async () => {
    const argv = replicaArgv(testbed, registry.host, keys, join(work, "data-D"));
    const at = argv.indexOf("-cache-signing-key-path");
    argv.splice(at, 2);
    const logs: Array<Record<string, unknown>> = [];
    const factory = await startFactory(await parseFactoryCommandLine(argv, {}), {
      logger: capturingLogger(logs),
      print: () => {},
      processMetrics: false,
    });
    try {
      const d: Replica = {
        name: "D",
        factory,
        logs,
        base: factory.url,
        metrics: async () => (await fetch(factory.metricsUrl as string)).text(),
      };
      assert.ok(
        logs.some((l) => l.level === 40 && String(l.msg).includes("-cache-signing-key-path")),
        "a warning names the flag",
      );
      await waitFor200(`${d.base}/readyz`);
      const path = `/image/${id}/${version}/kernel-amd64`;
      const expected = await download(a(), path);
      assert.deepEqual(await download(d, path), expected);
      assert.equal(await builds(d, "kernel"), 1, "A's entry does not verify with D's key: D built it");
      // D's signature is added beside A's (cosign appends), so A still reads its entry.
      const aBuilds = await builds(a(), "kernel");
      assert.deepEqual(await download(a(), path), expected);
      assert.equal(await builds(a(), "kernel"), aBuilds);
    } finally {
      await factory.close();
    }
  });

  it("with the shared registry down: known schematics still read, the rest is a 502/503 naming the repository", async (t) => {
    await registry.stop();
    const replica = b();
    // The schematic memo answers what this replica has read.
    const known = await fetch(`${replica.base}/schematics/${id}`);
    assert.equal(known.status, 200, await known.clone().text());
    const created = await fetch(`${replica.base}/schematics`, {
      method: "POST",
      headers: { "Content-Type": "application/yaml" },
      body: "customization:\n  extraKernelArgs:\n    - registry.down=yes\n",
    });
    const createdText = await created.text();
    // A registry outage is the upstream side's fault: 502 or 503 (src/errors.ts), never a bare 500.
    assert.ok([502, 503].includes(created.status), `${created.status} ${createdText}`);
    t.diagnostic(`schematic create: ${created.status}`);
    const unknown = await fetch(`${replica.base}/schematics/${"ab".repeat(32)}`);
    const unknownText = await unknown.text();
    assert.ok([502, 503].includes(unknown.status), `an ID not in memory: ${unknown.status} ${unknownText}`);
    t.diagnostic(`schematic read, not in memory: ${unknown.status}`);
    assert.match(createdText, /image-factory\/schematics/);
    // Every asset request looks the entry up in the shared cache first, even one this replica has a copy of.
    for (const asset of ["kernel-amd64", "cmdline-metal-amd64"]) {
      const res = await fetch(`${replica.base}/image/${id}/${version}/${asset}`);
      const text = await res.text();
      assert.ok([502, 503].includes(res.status), `${asset}: ${res.status} ${text}`);
      assert.match(text, /image-factory\/cache/, asset);
      t.diagnostic(`${asset}: ${res.status} ${res.headers.get("retry-after") ?? "(no Retry-After)"}`);
    }
    assert.equal(await builds(replica, "cmdline"), 0, "nothing built while the cache cannot be read");
    const installer = await fetch(`${replica.base}/v2/installer/${id}/manifests/${version}`, { redirect: "manual" });
    const installerText = await installer.text();
    assert.ok([502, 503].includes(installer.status), `installer: ${installer.status} ${installerText}`);
    t.diagnostic(`installer manifest: ${installer.status}`);
    // Readiness probes the shared repositories: a load balancer takes the replica out.
    const ready = await fetch(`${replica.base}/readyz`);
    const readyText = await ready.text();
    assert.equal(ready.status, 503, readyText);
    assert.match(readyText, new RegExp(registry.host.replace(/\./g, "\\.")));
    const healthy = await fetch(`${replica.base}/healthz`);
    assert.equal(healthy.status, 200, "alive: nothing to restart");
  });
});
