import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { type MultiArchLayout, readLayoutBlobs, writeMultiArchLayout } from "./fixture.ts";
import { pushLayout, skopeo } from "./skopeo.ts";

function sha256(data: string | Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

describe("skopeo against the embedded registry", () => {
  let registry: RunningRegistry;
  let workDir: string;
  let source: MultiArchLayout;
  let image: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "skopeo-test-"));
    source = await writeMultiArchLayout(join(workDir, "src"), "v1");
    registry = await startEmbeddedRegistry();
    image = `${registry.host}/ns/img`;
    await pushLayout(source.dir, "v1", `${image}:v1`);
  });
  after(async () => {
    await registry?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  test("copies a multi-arch OCI layout in and back out byte-identical", async () => {
    const outDir = join(workDir, "out");
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-tls-verify=false",
      `docker://${image}:v1`,
      `oci:${outDir}:v1`,
    ]);
    const sourceBlobs = await readLayoutBlobs(source.dir);
    const copiedBlobs = await readLayoutBlobs(outDir);
    assert.deepEqual([...copiedBlobs.keys()], [...sourceBlobs.keys()]);
    for (const [digest, bytes] of copiedBlobs) {
      assert.equal(sha256(bytes), digest, `blob file ${digest} holds other bytes`);
      assert.ok(bytes.equals(sourceBlobs.get(digest) ?? Buffer.alloc(0)), `blob ${digest} differs`);
    }
    const outIndex = JSON.parse(await readFile(join(outDir, "index.json"), "utf8"));
    assert.equal(outIndex.manifests.length, 1);
    assert.equal(outIndex.manifests[0].digest, source.index.digest);
    assert.equal(outIndex.manifests[0].annotations["org.opencontainers.image.ref.name"], "v1");
  });

  test("inspect --raw returns the exact index and platform manifest bytes", async () => {
    const sourceBlobs = await readLayoutBlobs(source.dir);
    const rawIndex = await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${image}:v1`]);
    assert.equal(sha256(rawIndex), source.index.digest);
    assert.equal(rawIndex, sourceBlobs.get(source.index.digest)?.toString("utf8"));
    const arm64 = source.manifests[1];
    assert.equal(arm64?.platform?.architecture, "arm64");
    const rawManifest = await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${image}@${arm64.digest}`]);
    assert.equal(sha256(rawManifest), arm64.digest);
    // skopeo picks the platform itself and reads the config through the registry.
    const inspected = JSON.parse(
      await skopeo(["inspect", "--tls-verify=false", "--override-arch=arm64", `docker://${image}:v1`]),
    );
    assert.equal(inspected.Architecture, "arm64");
    // skopeo reports the digest of what the tag names (the index), and the chosen platform's config.
    assert.equal(inspected.Digest, source.index.digest);
    assert.deepEqual(inspected.Env, ["PATH=/usr/bin"]);
    assert.deepEqual(inspected.Layers, [source.layers[1]?.digest]);
  });

  test("copies between repositories and lists tags", async () => {
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      `docker://${image}:v1`,
      `docker://${image}:v2`,
    ]);
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      `docker://${image}:v1`,
      `docker://${registry.host}/other/copy:latest`,
    ]);
    const tags = JSON.parse(await skopeo(["list-tags", "--tls-verify=false", `docker://${image}`]));
    assert.equal(tags.Repository, image);
    assert.deepEqual([...tags.Tags].sort(), ["v1", "v2"]);
    const otherTags = JSON.parse(
      await skopeo(["list-tags", "--tls-verify=false", `docker://${registry.host}/other/copy`]),
    );
    assert.deepEqual(otherTags.Tags, ["latest"]);
    const copiedIndex = await skopeo([
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${registry.host}/other/copy:latest`,
    ]);
    assert.equal(sha256(copiedIndex), source.index.digest);
  });
});
