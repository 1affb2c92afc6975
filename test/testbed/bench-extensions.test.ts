// The bench-only extensions of the test bed release (publishTestbedRelease's benchExtensions): names,
// manifests upstream's rules accept, the bulky blob's size and that it does not compress, and that they are
// published (and listed in the catalog) only when asked for.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";
import { isValidExtensionVersion, parseExtensionManifest } from "../../src/talos/extension.ts";
import { benchExtensionImages } from "../../src/testbed/extensions.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";

describe("bench-only test bed extensions", () => {
  let dir: string;
  let store: RegistryStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-ext-"));
    store = await openStore(join(dir, "store"));
  });
  after(async () => {
    await store?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("specs: testbed-bulky carries the blob under /usr/local/share, fillers one small file each", () => {
    const specs = benchExtensionImages({
      talosVersion: "v1.10.3",
      bulkyFile: { path: "/nonexistent/blob", size: 1234 },
      fillers: 3,
    });
    assert.deepEqual(
      specs.map((s) => s.repository),
      [
        "siderolabs/testbed-bulky",
        "siderolabs/testbed-filler-01",
        "siderolabs/testbed-filler-02",
        "siderolabs/testbed-filler-03",
      ],
    );
    for (const spec of specs) {
      assert.ok(spec.compatible, spec.name);
      assert.ok(isValidExtensionVersion(spec.version), spec.version);
      const manifest = spec.entries.find((e) => e.path === "manifest.yaml");
      assert.ok(manifest && manifest.type === "file" && "content" in manifest);
      assert.equal(parseExtensionManifest(manifest.content, spec.name).metadata.name, spec.name);
      for (const entry of spec.entries.filter((e) => e.type === "file" && e.path !== "manifest.yaml"))
        assert.match(entry.path, /^rootfs\/usr\/local\/share\//);
    }
    const blob = specs[0]?.entries.find((e) => e.path === "rootfs/usr/local/share/testbed-bulky/blob");
    assert.ok(blob && blob.type === "file" && "sourcePath" in blob && blob.size === 1234);
    assert.equal(benchExtensionImages({ talosVersion: "v1.8.2", fillers: 0 }).length, 0);
  });

  test("published with the release when asked: the bulky blob is its size and incompressible", async () => {
    const cacheDir = bootAssetsCacheDir();
    const summary = await publishTestbedRelease({
      registry: "registry.test:5000",
      repositoryFor: (name) => store.repository(name),
      versions: ["v1.8.2"],
      benchExtensions: { bulkyBytes: 2 * 1024 * 1024, fillers: 2 },
    });
    const names = summary.versions[0]?.images.filter((i) => i.kind === "extension").map((i) => i.extension?.name);
    for (const name of ["testbed-bulky", "testbed-filler-01", "testbed-filler-02", "testbed-dummy"])
      assert.ok(names?.includes(name), `${name} in ${names?.join(",")}`);
    const blob = await readFile(join(cacheDir, "testbed", "bench", `bulky-${2 * 1024 * 1024}.bin`));
    assert.equal(blob.length, 2 * 1024 * 1024);
    assert.ok(gzipSync(blob).length > blob.length * 0.99, "gzip cannot shrink it");
    await assert.rejects(
      publishTestbedRelease({
        registry: "registry.test:5000",
        repositoryFor: (name) => store.repository(name),
        versions: ["v1.8.2"],
        benchExtensions: { fillers: 1000 },
      }),
      /fillers must be/,
    );
  });
});
