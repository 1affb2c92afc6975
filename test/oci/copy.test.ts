// copyImage between an OCI image layout and the embedded store (in-process), and the CLI's mapping of the
// shared registry options onto the client.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { registryClientOptionsFrom } from "../../src/cli/registry-options.ts";
import { isAppError } from "../../src/errors.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { copyImage } from "../../src/oci/copy.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { OciLayout } from "../../src/oci/layout.ts";
import { OciLayoutImageStore } from "../../src/oci/layout-image.ts";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";
import { type MultiArchLayout, readLayoutBlobs, writeMultiArchLayout } from "../realclients/fixture.ts";

let work: string;
let fixture: MultiArchLayout;
let sourceLayout: OciLayoutImageStore;
let store: RegistryStore;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "copy-test-"));
  fixture = await writeMultiArchLayout(join(work, "source"), "v1");
  sourceLayout = new OciLayoutImageStore(await OciLayout.open(fixture.dir));
  store = await openStore(join(work, "store"));
});

after(async () => {
  await store?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const blobCount = () => fixture.configs.length + fixture.layers.length;

describe("copyImage", () => {
  it("copies an index with every child layout → embedded → layout, byte for byte, skipping blobs present", async () => {
    const repository = store.repository("copy/all");
    const first = await copyImage(sourceLayout, repository, { reference: "v1", tag: "v1", all: true });
    assert.equal(first.digest, fixture.index.digest);
    assert.equal(first.manifests, 1 + fixture.manifests.length);
    assert.equal(first.blobsCopied, blobCount());
    assert.equal(first.blobsSkipped, 0);
    assert.equal((await repository.statManifest("v1"))?.digest, fixture.index.digest);

    const second = await copyImage(sourceLayout, repository, { reference: "v1", tag: "v1", all: true });
    assert.equal(second.digest, fixture.index.digest);
    assert.equal(second.blobsCopied, 0);
    assert.equal(second.bytesCopied, 0);
    assert.equal(second.blobsSkipped, blobCount());

    const outDir = join(work, "round-trip");
    const out = new OciLayoutImageStore(await OciLayout.create(outDir));
    const back = await copyImage(repository, out, { reference: fixture.index.digest, tag: "again", all: true });
    assert.equal(back.digest, fixture.index.digest);
    assert.deepEqual(await readLayoutBlobs(outDir), await readLayoutBlobs(fixture.dir));
    assert.deepEqual(await out.listTags(), ["again"]);
    assert.equal((await out.getManifest("again")).digest, fixture.index.digest);
  });

  it("copies only the chosen platform's manifest when not asked for all", async () => {
    const repository = store.repository("copy/one");
    const [amd64, arm64] = fixture.manifests;
    assert.ok(amd64 && arm64);
    const byDefault = await copyImage(sourceLayout, repository, { reference: "v1", tag: "default" });
    assert.equal(byDefault.digest, amd64.digest);
    assert.equal(byDefault.manifests, 1);
    const chosen = await copyImage(sourceLayout, repository, {
      reference: "v1",
      tag: "arm",
      platform: { os: "linux", architecture: "arm64" },
    });
    assert.equal(chosen.digest, arm64.digest);
    assert.equal(
      (await repository.getManifest("arm")).body.toString("hex"),
      (await readFile(join(fixture.dir, "blobs", "sha256", arm64.digest.slice(7)))).toString("hex"),
    );
    // The index itself was never copied.
    assert.equal(await repository.statManifest(fixture.index.digest), undefined);
  });

  it("fails with Integrity on a corrupted source blob and leaves nothing of it at the destination", async () => {
    const brokenDir = join(work, "broken");
    await cp(fixture.dir, brokenDir, { recursive: true });
    const layer = fixture.layers[0];
    assert.ok(layer);
    const layerFile = join(brokenDir, "blobs", "sha256", layer.digest.slice("sha256:".length));
    const original = await readFile(layerFile);
    // Same size, different bytes: only the digest check can notice.
    await writeFile(layerFile, Buffer.from(original.map((b, i) => (i === original.length - 1 ? b ^ 0xff : b))));
    const broken = new OciLayoutImageStore(await OciLayout.open(brokenDir));
    const repository = store.repository("copy/broken");
    await assert.rejects(
      copyImage(broken, repository, { reference: "v1", tag: "v1", all: true }),
      (err) => isAppError(err, "Integrity") && err.message.includes(layer.digest),
    );
    assert.equal(await repository.statBlob(layer.digest as Digest), undefined);
    assert.equal(await repository.statManifest("v1"), undefined);
  });

  it("refuses a destination digest the source does not resolve to before writing anything", async () => {
    const repository = store.repository("copy/pinned");
    await assert.rejects(
      copyImage(sourceLayout, repository, { reference: "v1", all: true, expectedDigest: `sha256:${"1".repeat(64)}` }),
      (err) => isAppError(err, "BadRequest") && err.message.includes(fixture.index.digest),
    );
    for (const digest of [...fixture.configs, ...fixture.layers].map((d) => d.digest as Digest))
      assert.equal(await repository.statBlob(digest), undefined);
  });
});

describe("registry client options from the command line", () => {
  it("--insecure covers only the registries named on the command line", () => {
    const options = registryClientOptionsFrom({ insecure: true, timeout: 2.5, certsDir: ["/a", "/b"] }, [
      "127.0.0.1:5000",
      "docker.io",
    ]);
    const client = new RegistryClient(options);
    assert.equal(client.isInsecure("127.0.0.1:5000"), true);
    assert.equal(client.isInsecure("registry-1.docker.io"), true);
    assert.equal(client.isInsecure("127.0.0.1:5001"), false);
    assert.equal(client.isInsecure("ghcr.io"), false);
    assert.equal(options.timeoutMs, 2500);
    assert.deepEqual(options.certsDirs, ["/a", "/b"]);

    const secure = new RegistryClient(registryClientOptionsFrom({}, ["127.0.0.1:5000"]));
    assert.equal(secure.isInsecure("127.0.0.1:5000"), false);
  });
});
