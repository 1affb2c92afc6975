import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { after, describe, test } from "node:test";
import { AppError } from "../../src/errors.ts";
import { openStore } from "../../src/registry/store.ts";
import { assertStoreConsistent, descriptor, imageIndex, ociManifest, sha256, testBlob, testImage } from "./fixtures.ts";

const nodeBinary = process.execPath;
const storeModule = new URL("../../src/registry/store.ts", import.meta.url).href;

const tempDirs: string[] = [];
async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "store-test-"));
  tempDirs.push(dir);
  return join(dir, "store");
}
after(() => Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

function isCode(code: string, kind?: AppError["kind"]) {
  return (err: unknown) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (kind) assert.equal(err.kind, kind);
    return true;
  };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Starts a node child that opens the store for writing, prints "locked" and waits to be killed. */
async function childHoldingLock(root: string): Promise<ChildProcess> {
  const script = `const { openStore } = await import(${JSON.stringify(storeModule)});
    await openStore(${JSON.stringify(root)});
    process.stdout.write("locked\\n");
    setInterval(() => {}, 1000);`;
  const child = spawn(nodeBinary, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr?.on("data", (chunk) => {
    err += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk) => {
      out += chunk;
      if (out.includes("locked")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`child exited (${code}) before locking: ${err}`)));
  });
  return child;
}

describe("store lock", () => {
  test("a second writer in the same process gets a Conflict naming the lock file and holder pid", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root);
    t.after(() => store.close());
    await assert.rejects(openStore(root), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.kind, "Conflict");
      assert.equal(err.code, "STORE_LOCKED");
      assert.match(err.message, new RegExp(`process ${process.pid} `));
      assert.ok(err.message.includes(join(root, "lock")), err.message);
      return true;
    });
  });

  test("closing releases the lock: the next writer opens the store", async () => {
    const root = await tempRoot();
    const first = await openStore(root);
    await first.close();
    assert.equal(await exists(join(root, "lock")), false);
    const second = await openStore(root);
    await second.close();
  });

  test("a child process holding the lock blocks the parent; once it is killed, its stale lock is taken over", async (t) => {
    const root = await tempRoot();
    const child = await childHoldingLock(root);
    t.after(() => child.kill("SIGKILL"));
    await assert.rejects(openStore(root), (err: unknown) => {
      assert.ok(err instanceof AppError && err.kind === "Conflict");
      assert.match(err.message, new RegExp(`process ${child.pid} on ${hostname()}`));
      return true;
    });
    // SIGKILL: the child cannot release its lock, which stays behind naming a dead pid.
    child.kill("SIGKILL");
    await once(child, "exit");
    const record = JSON.parse(await readFile(join(root, "lock"), "utf8"));
    assert.equal(record.pid, child.pid);
    const store = await openStore(root);
    t.after(() => store.close());
    const now = JSON.parse(await readFile(join(root, "lock"), "utf8"));
    assert.equal(now.pid, process.pid);
  });

  test("a stale lock record from a dead pid on this host is taken over", async (t) => {
    const root = await tempRoot();
    const done = spawn(nodeBinary, ["-e", ""]);
    await once(done, "exit");
    await mkdir(root, { recursive: true });
    const stale = { pid: done.pid, hostname: hostname(), acquiredAt: "2020-01-01T00:00:00.000Z" };
    await writeFile(join(root, "lock"), JSON.stringify(stale));
    const store = await openStore(root);
    t.after(() => store.close());
    assert.equal(JSON.parse(await readFile(join(root, "lock"), "utf8")).pid, process.pid);
  });

  test("a lock held from another host is never judged stale", async () => {
    const root = await tempRoot();
    await mkdir(root, { recursive: true });
    await writeFile(
      join(root, "lock"),
      JSON.stringify({ pid: 1, hostname: "some-other-host", acquiredAt: "2020-01-01T00:00:00.000Z" }),
    );
    await assert.rejects(openStore(root), /locked by process 1 on some-other-host/);
  });

  test("a read-only open needs no lock and refuses writes", async (t) => {
    const root = await tempRoot();
    const writer = await openStore(root);
    t.after(() => writer.close());
    const image = testImage("amd64");
    const repo = writer.repository("app");
    await repo.putBlob(image.config.data);
    await repo.putBlob(image.layer.data);
    await repo.putManifest(image.manifest.data, ociManifest, "v1");

    const reader = await openStore(root, { readOnly: true });
    t.after(() => reader.close());
    assert.deepEqual(await reader.repository("app").listTags(), ["v1"]);
    await assert.rejects(reader.repository("app").putBlob(Buffer.from("x")), isCode("UNSUPPORTED"));
  });
});

describe("store format", () => {
  test("a store written by a newer format version is refused with a clear message", async () => {
    const root = await tempRoot();
    await mkdir(root, { recursive: true });
    await writeFile(
      join(root, "store-format.json"),
      JSON.stringify({ format: "boot-assets-registry-store", version: 2 }),
    );
    await assert.rejects(openStore(root), (err: unknown) => {
      assert.ok(err instanceof AppError && err.kind === "Unsupported");
      assert.match(err.message, /format version 2; this boot-assets reads version 1/);
      return true;
    });
    // Refused before anything was touched: no lock file left behind.
    assert.deepEqual(await readdir(root), ["store-format.json"]);
  });

  test("a non-empty directory that is not a store is refused", async () => {
    const root = await tempRoot();
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "precious.txt"), "keep me");
    await assert.rejects(openStore(root), /not a registry store/);
    assert.deepEqual(await readdir(root), ["precious.txt"]);
  });

  test("a new store records its format and version", async () => {
    const root = await tempRoot();
    const store = await openStore(root);
    await store.close();
    assert.deepEqual(JSON.parse(await readFile(join(root, "store-format.json"), "utf8")), {
      format: "boot-assets-registry-store",
      version: 1,
    });
  });

  test("leftovers of interrupted writes in tmp/ are removed at open", async () => {
    const root = await tempRoot();
    await (await openStore(root)).close();
    await writeFile(join(root, "tmp", "upload-crashed"), "half a blob");
    const store = await openStore(root);
    await store.close();
    assert.deepEqual(await readdir(join(root, "tmp")), []);
  });
});

describe("embedded repository (library face)", () => {
  test("blob and manifest round trip, tags, delete", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root);
    t.after(() => store.close());
    const repo = store.repository("team/app");
    const image = testImage("arm64");

    const streamed = await repo.putBlob(
      Readable.from([image.layer.data.subarray(0, 10), image.layer.data.subarray(10)]),
    );
    assert.deepEqual(streamed, { digest: image.layer.digest, size: image.layer.size });
    await repo.putBlob(image.config.data, { digest: image.config.digest, size: image.config.size });
    assert.deepEqual(await repo.statBlob(image.layer.digest), { digest: image.layer.digest, size: image.layer.size });
    const reader = await repo.getBlob(image.layer.digest);
    assert.equal(await text(reader.stream), image.layer.data.toString());

    const digest = await repo.putManifest(image.manifest.data, ociManifest, "v1");
    assert.equal(digest, image.manifest.digest);
    const record = await repo.getManifest("v1");
    assert.deepEqual(record.body, image.manifest.data);
    assert.equal(record.mediaType, ociManifest);
    assert.deepEqual(await repo.statManifest(image.manifest.digest), {
      digest: image.manifest.digest,
      mediaType: ociManifest,
      size: image.manifest.size,
    });
    await repo.putManifest(image.manifest.data, ociManifest, "latest");
    assert.deepEqual(await repo.listTags(), ["latest", "v1"]);

    await repo.deleteManifest("latest");
    assert.deepEqual(await repo.listTags(), ["v1"]);
    await repo.deleteManifest(image.manifest.digest);
    assert.deepEqual(await repo.listTags(), [], "deleting by digest removes the tags pointing at it");
    assert.equal(await repo.statManifest(image.manifest.digest), undefined);
    await assert.rejects(repo.getManifest("v1"), isCode("MANIFEST_UNKNOWN", "NotFound"));
    await assertStoreConsistent(root);
  });

  test("a blob is visible only in the repository it was pushed or mounted to", async (t) => {
    const store = await openStore(await tempRoot());
    t.after(() => store.close());
    const blob = testBlob("shared layer");
    await store.repository("a").putBlob(blob.data);
    assert.equal(await store.repository("b").statBlob(blob.digest), undefined);
    await assert.rejects(store.repository("b").getBlob(blob.digest), isCode("BLOB_UNKNOWN", "NotFound"));
    // A mount needs no content.
    const mounted = await store.repository("b").putBlob(Readable.from([]), { digest: blob.digest, mountFrom: "a" });
    assert.deepEqual(mounted, { digest: blob.digest, size: blob.size });
    assert.deepEqual(await store.repository("b").statBlob(blob.digest), { digest: blob.digest, size: blob.size });
  });

  test("content that does not match its digest or size is refused and nothing is stored", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root);
    t.after(() => store.close());
    const repo = store.repository("app");
    const claimed = testBlob("the real content");
    await assert.rejects(
      repo.putBlob(Buffer.from("other content"), { digest: claimed.digest }),
      isCode("DIGEST_INVALID"),
    );
    await assert.rejects(repo.putBlob(claimed.data, { digest: claimed.digest, size: 3 }), isCode("SIZE_INVALID"));
    assert.equal(await repo.statBlob(claimed.digest), undefined);
    assert.deepEqual(await assertStoreConsistent(root), []);
  });

  test("manifests must reference blobs and child manifests present in the repository", async (t) => {
    const store = await openStore(await tempRoot());
    t.after(() => store.close());
    const repo = store.repository("app");
    const image = testImage("amd64");
    await repo.putBlob(image.config.data);
    await assert.rejects(repo.putManifest(image.manifest.data, ociManifest, "v1"), (err: unknown) => {
      assert.ok(err instanceof AppError && err.code === "MANIFEST_BLOB_UNKNOWN");
      assert.ok(err.message.includes(image.layer.digest));
      return true;
    });
    const index = imageIndex([{ manifest: image.manifest, architecture: "amd64" }]);
    await assert.rejects(
      repo.putManifest(index.data, "application/vnd.oci.image.index.v1+json", "v1"),
      isCode("MANIFEST_BLOB_UNKNOWN"),
    );
    await repo.putBlob(image.layer.data);
    await repo.putManifest(image.manifest.data, ociManifest);
    assert.equal(await repo.putManifest(index.data, "application/vnd.oci.image.index.v1+json", "v1"), index.digest);
    // A descriptor whose size disagrees with the stored blob is invalid.
    const wrongSize = testBlob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: ociManifest,
        config: descriptor("application/vnd.oci.image.config.v1+json", image.config, { size: 1 }),
        layers: [],
      }),
    );
    await assert.rejects(repo.putManifest(wrongSize.data, ociManifest), isCode("MANIFEST_INVALID"));
    await assert.rejects(repo.putManifest(image.manifest.data, ociManifest, "bad/tag"), isCode("TAG_INVALID"));
  });

  test("referrers: listed by subject with artifactType and annotations, filtered, and removed on delete", async (t) => {
    const store = await openStore(await tempRoot());
    t.after(() => store.close());
    const repo = store.repository("app");
    const image = testImage("amd64");
    await repo.putBlob(image.config.data);
    await repo.putBlob(image.layer.data);
    await repo.putManifest(image.manifest.data, ociManifest, "v1");

    const empty = testBlob("{}");
    await repo.putBlob(empty.data);
    const makeReferrer = (artifactType: string, note: string) =>
      testBlob(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: ociManifest,
          artifactType,
          config: descriptor("application/vnd.oci.empty.v1+json", empty),
          layers: [],
          subject: descriptor(ociManifest, image.manifest),
          annotations: { note },
        }),
      );
    const signature = makeReferrer("application/vnd.dev.sigstore.bundle.v0.3+json", "sig");
    const sbom = makeReferrer("application/spdx+json", "sbom");
    await repo.putManifest(signature.data, ociManifest);
    await repo.putManifest(sbom.data, ociManifest);

    const all = await repo.referrers(image.manifest.digest);
    assert.deepEqual(
      all.map((d) => [d.digest, d.artifactType, d.annotations?.note, d.size]).sort(),
      [
        [signature.digest, "application/vnd.dev.sigstore.bundle.v0.3+json", "sig", signature.size],
        [sbom.digest, "application/spdx+json", "sbom", sbom.size],
      ].sort(),
    );
    const filtered = await repo.referrers(image.manifest.digest, "application/spdx+json");
    assert.deepEqual(
      filtered.map((d) => d.digest),
      [sbom.digest],
    );
    await repo.deleteManifest(sbom.digest);
    assert.deepEqual(
      (await repo.referrers(image.manifest.digest)).map((d) => d.digest),
      [signature.digest],
    );
    assert.deepEqual(await store.repository("other").referrers(image.manifest.digest), []);
  });

  test("8 concurrent puts of the same blob all succeed and leave one intact file", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root);
    t.after(() => store.close());
    const blob = testBlob(Buffer.alloc(3 * 1024 * 1024, 7));
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.repository(`r${i % 2}`).putBlob(Readable.from([blob.data]))),
    );
    for (const result of results) assert.deepEqual(result, { digest: blob.digest, size: blob.size });
    assert.deepEqual(await assertStoreConsistent(root), [blob.digest]);
    assert.deepEqual(await readdir(join(root, "tmp")), []);
  });

  test("an idle upload session expires and its temp file is removed", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root, { uploadIdleTimeoutMs: 200 });
    t.after(() => store.close());
    const { id } = await store.startUpload("app");
    await store.appendUpload("app", id, Readable.from([Buffer.from("partial")]));
    assert.equal(store.uploadStatus("app", id).size, 7);
    assert.equal((await readdir(join(root, "tmp"))).length, 1);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.throws(() => store.uploadStatus("app", id), isCode("BLOB_UPLOAD_UNKNOWN"));
    assert.deepEqual(await readdir(join(root, "tmp")), []);
  });

  test("a blob damaged on disk fails the reader instead of being served as good", async (t) => {
    const root = await tempRoot();
    const store = await openStore(root);
    t.after(() => store.close());
    const blob = testBlob("original bytes of the blob");
    await store.repository("app").putBlob(blob.data);
    await writeFile(join(root, "blobs", "sha256", blob.digest.slice(7)), "corrupted bytes of the blob");
    const reader = await store.repository("app").getBlob(blob.digest);
    await assert.rejects(text(reader.stream), isCode("DIGEST_INVALID"));
  });

  test("uploads in progress are bounded per client, and past the global bound the oldest idle one gives way", async (t) => {
    const store = await openStore(await tempRoot(), { maxUploads: 3, maxUploadsPerClient: 2 });
    t.after(() => store.close());
    const first = await store.startUpload("app", "a");
    const second = await store.startUpload("app", "a");
    await assert.rejects(store.startUpload("app", "a"), isCode("TOOMANYREQUESTS"));
    await store.cancelUpload("app", first.id);
    await store.startUpload("app", "a");
    const oldest = await store.startUpload("app", "b");
    // The global bound (3) is reached: the oldest idle session (a's second) gives way to c's.
    await new Promise((resolve) => setTimeout(resolve, 5));
    store.uploadStatus("app", oldest.id); // b's is touched, so a's second is the least recently active
    await store.startUpload("app", "c");
    assert.throws(() => store.uploadStatus("app", second.id), isCode("BLOB_UPLOAD_UNKNOWN"));
    assert.equal(store.uploadStatus("app", oldest.id).size, 0, "b's session stays");
  });

  test("in-process writers past the per-client bound wait for a slot instead of being refused", async (t) => {
    // A burst of schematic POSTs is many putBlob calls at once from the factory itself (bench/factory found
    // them refused at 64): they queue, every blob lands, and HTTP clients' bounds are unchanged.
    const store = await openStore(await tempRoot(), { maxUploads: 8, maxUploadsPerClient: 2 });
    t.after(() => store.close());
    const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from(`blob ${i}`));
    const infos = await Promise.all(bodies.map((body) => store.putBlob("app", body)));
    assert.deepEqual(
      infos.map((info) => info.digest),
      bodies.map((body) => sha256(body.toString())),
    );
    for (const info of infos) assert.ok(await store.statBlob("app", info.digest));
    await store.startUpload("app", "a");
    await store.startUpload("app", "a");
    await assert.rejects(store.startUpload("app", "a"), isCode("TOOMANYREQUESTS"));
  });

  test("repository names are validated", async (t) => {
    const store = await openStore(await tempRoot());
    t.after(() => store.close());
    for (const name of ["../escape", "a/../b", "Upper", "a//b", "x".repeat(256), "/abs", "_hidden"])
      assert.throws(() => store.repository(name), isCode("NAME_INVALID"), name);
    await assert.rejects(store.statBlob("../x", sha256("x")), isCode("NAME_INVALID"));
  });
});
