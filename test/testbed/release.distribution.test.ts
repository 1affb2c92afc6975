// The test bed release pushed to the real CNCF distribution registry over HTTP: every image and catalog
// arrives, the catalog's digests resolve there, signatures are in place, and the digests equal those of the
// same release in the embedded store (the images do not depend on the registry).

import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { openStore } from "../../src/registry/store.ts";
import { publishTestbedRelease, type ReleaseSummary } from "../../src/testbed/release.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { expectedCoreImages, flattenImage, readText, signatureLayerCount } from "./release-helpers.ts";

const versions = [
  { version: "v1.8.2", installer: "siderolabs/installer" },
  { version: "v1.10.3", installer: "siderolabs/installer-base" },
];

describe("test bed release on CNCF distribution", () => {
  let registry: RunningRegistry;
  let scratch: string;
  let summary: ReleaseSummary;
  const client = new RegistryClient({ insecure: true });
  const repository = (name: string) => client.repository(`${registry.host}/${name}`);

  before(async () => {
    registry = await startDistribution();
    scratch = await mkdtemp(join(tmpdir(), "testbed-release-distribution-"));
    summary = await publishTestbedRelease({
      registry: registry.host,
      client,
      versions: versions.map((v) => v.version),
      keysDir: join(scratch, "keys"),
    });
  });
  after(async () => {
    await client.close();
    await registry?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("every image is there under its tag, signed twice", async () => {
    for (const { version, installer } of versions) {
      for (const ref of expectedCoreImages(version, installer)) {
        const [name, tag] = ref.split(":") as [string, string];
        assert.ok((await repository(name).listTags()).includes(tag), `${ref} on distribution`);
      }
    }
    for (const v of summary.versions)
      for (const image of v.images)
        assert.equal(await signatureLayerCount(repository(image.repository), image.digest), 2, image.reference);
  });

  test("the catalog's digests resolve on the registry", async () => {
    for (const { version } of versions) {
      const dir = join(scratch, `catalog-${version}`);
      await flattenImage(repository("siderolabs/extensions"), version, dir);
      assert.deepEqual((await readdir(dir)).sort(), ["descriptions.yaml", "image-digests"]);
      const lines = (await readText(dir, "image-digests")).split("\n").filter((l) => l !== "");
      assert.equal(lines.length, 5);
      for (const line of lines) {
        const [nameTag, digest] = line.replace(/^ghcr\.io\//, "").split("@") as [string, string];
        const [name, tag] = nameTag.split(":") as [string, string];
        assert.equal((await repository(name).statManifest(tag))?.digest, digest, line);
      }
    }
  });

  test("the digests equal those of the same release in the embedded store", async () => {
    const store = await openStore(join(scratch, "store"));
    try {
      const embedded = await publishTestbedRelease({
        registry: "embedded.test",
        repositoryFor: (name) => store.repository(name),
        versions: versions.map((v) => v.version),
        keysDir: join(scratch, "keys"),
      });
      const digests = (s: ReleaseSummary) =>
        s.versions.flatMap((v) => v.images.map((i) => `${i.repository}:${i.tag}@${i.digest}`));
      assert.deepEqual(digests(embedded), digests(summary));
    } finally {
      await store.close();
    }
  });
});
