// The schematic service over a real embedded store: the image shape upstream writes (a Docker schema 2
// manifest with one layer of the schematic media type, tagged with the ID), duplicate creates, the LRU and
// memo of unknown IDs, and single-flight reads. The repository is the real store's, wrapped only to count reads.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { SchematicService } from "../../src/factory/schematics.ts";
import type { Digest } from "../../src/oci/digest.ts";
import type { Repository } from "../../src/oci/repository.ts";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";

const emptyId = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

/** The real repository, with a count of blob reads. */
function counting(repository: Repository): Repository & { blobReads: number } {
  const wrapped = Object.create(repository) as Repository & { blobReads: number };
  wrapped.blobReads = 0;
  wrapped.getBlob = (digest: Digest) => {
    wrapped.blobReads++;
    return repository.getBlob(digest);
  };
  return wrapped;
}

function kernelArgsSchematic(arg: string): { body: string; yaml: string; id: string } {
  const yaml = `customization:\n    extraKernelArgs:\n        - ${arg}\n`;
  return { body: `{"customization":{"extraKernelArgs":["${arg}"]}}`, yaml, id: sha256(yaml) };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

describe("the schematic service", () => {
  let dir: string;
  let store: RegistryStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "schematic-service-"));
    store = await openStore(join(dir, "store"));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("stores a schematic as upstream does: tagged with its ID, one layer of the schematic media type", async () => {
    const repository = store.repository("shape/schematics");
    const service = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 1000 });
    const created = await service.create("{}");
    assert.deepEqual(created, { id: emptyId, yaml: "customization: {}\n", created: true });

    const record = await repository.getManifest(emptyId);
    assert.equal(record.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    const manifest = JSON.parse(record.body.toString("utf8"));
    const configDigest = manifest.config.digest as Digest;
    // go-containerregistry's empty image with one layer appended (upstream's schematic storage).
    assert.deepEqual(manifest, {
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: {
        mediaType: "application/vnd.docker.container.image.v1+json",
        size: manifest.config.size,
        digest: configDigest,
      },
      layers: [{ mediaType: "application/vnd.sidero.dev-image.schematic", size: 18, digest: `sha256:${emptyId}` }],
    });
    const configBlob = await repository.getBlob(configDigest);
    const chunks: Buffer[] = [];
    for await (const chunk of configBlob.stream) chunks.push(chunk as Buffer);
    const config = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    assert.deepEqual(config.rootfs, { type: "layers", diff_ids: [`sha256:${emptyId}`] });
  });

  it("a second create of the same schematic is a duplicate and stores nothing new", async () => {
    const repository = store.repository("dup/schematics");
    const first = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 });
    assert.equal((await first.create("customization: {}")).created, true);
    assert.equal((await first.create("{}")).created, false, "known from the cache");
    const fresh = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 });
    assert.equal((await fresh.create("{}")).created, false, "known from the repository");
    assert.deepEqual(await repository.listTags(), [emptyId]);
  });

  it("reads a schematic once however many ask for it at the same time", async () => {
    const repository = store.repository("flight/schematics");
    const one = kernelArgsSchematic("single.flight=1");
    await new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 }).create(one.body);
    const reads = counting(repository);
    const service = new SchematicService({ repository: reads, memoCapacity: 10, negativeTtlMs: 0 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => service.get(one.id)));
    assert.ok(answers.every((yaml) => yaml === one.yaml));
    assert.equal(reads.blobReads, 1);
    await service.get(one.id);
    assert.equal(reads.blobReads, 1, "then answered from memory");
  });

  it("keeps at most its capacity, dropping the least recently used", async () => {
    const repository = store.repository("lru/schematics");
    const writer = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 });
    const [a, b, c] = ["lru=a", "lru=b", "lru=c"].map(kernelArgsSchematic) as [
      ReturnType<typeof kernelArgsSchematic>,
      ReturnType<typeof kernelArgsSchematic>,
      ReturnType<typeof kernelArgsSchematic>,
    ];
    for (const s of [a, b, c]) await writer.create(s.body);
    const reads = counting(repository);
    const service = new SchematicService({ repository: reads, memoCapacity: 2, negativeTtlMs: 0 });
    await service.get(a.id);
    await service.get(b.id);
    await service.get(a.id); // a is now more recent than b
    await service.get(c.id); // evicts b
    assert.equal(service.memoSize, 2);
    assert.equal(reads.blobReads, 3);
    await service.get(a.id);
    assert.equal(reads.blobReads, 3, "a stayed");
    await service.get(b.id);
    assert.equal(reads.blobReads, 4, "b was dropped and read again");
  });

  it("is bounded by bytes too: a few large schematics cannot pin memory", async () => {
    const repository = store.repository("bytes/schematics");
    // Three schematics of ~300 KB each under a 1 MiB budget (counted as UTF-16 in memory: ~600 KB each).
    const big = ["x", "y", "z"].map((c) => kernelArgsSchematic(`${c}=${c.repeat(300_000)}`));
    const writer = new SchematicService({ repository, memoCapacity: 100, negativeTtlMs: 0 });
    for (const s of big) await writer.create(s.body);
    const service = new SchematicService({
      repository,
      memoCapacity: 100,
      memoMaxBytes: 1024 * 1024,
      negativeTtlMs: 0,
    });
    for (const s of big) await service.get(s.id);
    assert.equal(service.memoSize, 1, "only the newest fits the byte budget");
    assert.ok(service.memoBytes <= 1024 * 1024, `${service.memoBytes} bytes held`);
  });

  it("refuses a schematic whose canonical YAML is over the body limit, so whatever is stored reads back", async () => {
    const repository = store.repository("limit/schematics");
    const service = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 });
    // 800 KB as raw UTF-8; the canonical YAML escapes each astral character as \UXXXXXXXX (4 bytes → 10).
    const body = `{"customization":{"extraKernelArgs":["${"\u{1F600}".repeat(200_000)}"]}}`;
    assert.ok(Buffer.byteLength(body) < 1024 * 1024);
    await assert.rejects(
      service.create(body),
      (err) => isAppError(err, "BadRequest") && /canonical form is larger than 1048576 bytes/.test(err.message),
    );
    await assert.rejects(repository.listTags(), (err) => isAppError(err, "NotFound"), "nothing stored");
  });

  it("remembers an unknown ID for the negative TTL, then looks again", async () => {
    const repository = store.repository("negative/schematics");
    let now = 1_000_000;
    const reads = counting(repository);
    const service = new SchematicService({
      repository: reads,
      memoCapacity: 10,
      negativeTtlMs: 30_000,
      now: () => now,
    });
    const later = kernelArgsSchematic("negative=1");
    await assert.rejects(
      service.get(later.id),
      (err) => isAppError(err, "NotFound") && err.message === "schematic not found",
    );
    // Created by another factory instance sharing the repository.
    await new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 }).create(later.body);
    await assert.rejects(service.get(later.id), (err) => isAppError(err, "NotFound"));
    assert.equal(reads.blobReads, 1, "the second miss was answered from memory");
    now += 30_001;
    assert.equal(await service.get(later.id), later.yaml);
    assert.equal(reads.blobReads, 2);
  });

  it("a create clears the negative entry at once", async () => {
    const repository = store.repository("negative-create/schematics");
    const service = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 60_000 });
    const s = kernelArgsSchematic("create.clears=1");
    await assert.rejects(service.get(s.id));
    await service.create(s.body);
    assert.equal(await service.get(s.id), s.yaml);
  });

  it("answers a malformed ID as not found without reading the repository (as upstream's storage)", async () => {
    const reads = counting(store.repository("malformed/schematics"));
    const service = new SchematicService({ repository: reads, memoCapacity: 10, negativeTtlMs: 0 });
    await assert.rejects(service.get("ABC"), (err) => isAppError(err, "NotFound"));
    assert.equal(reads.blobReads, 0);
  });
});
