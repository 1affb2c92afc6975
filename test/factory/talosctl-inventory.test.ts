// The talosctl service over a real registry (embedded distribution-compatible server), the real verifier,
// resolver and content cache: the image's inventory is read once per image digest however many downloads
// follow (one after another or at once, every tag verified again with TTL 0), each download still exactly the
// pushed file; when the tag moves to another signed image, the next request reads the new one.
// The reads are counted by a wrapper around the real cache's `inventory`.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FactoryConfig } from "../../src/factory/config/index.ts";
import { SourceContentCache } from "../../src/factory/sources/content-cache.ts";
import { ImagerInputResolver } from "../../src/factory/sources/imager-inputs.ts";
import { createSources, type FactorySources } from "../../src/factory/sources/index.ts";
import { TalosctlService } from "../../src/factory/sources/talosctl.ts";
import { selectTalosVersions, type TalosVersion } from "../../src/factory/sources/version-selection.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { type RegistryServer, startRegistryServer } from "../../src/registry/server.ts";
import { KeySigner } from "../../src/signing/signer.ts";
import { factoryConfig, ImageMaker, RecordingLog, scratchDir } from "./sources-helpers.ts";

const repositoryName = "siderolabs/talosctl-all";
const tag = "v1.12.11";

describe("talosctl service: the image's inventory is read once per digest", () => {
  let scratch: { dir: string; remove: () => Promise<void> };
  let server: RegistryServer;
  let client: RegistryClient;
  let sources: FactorySources;
  let images: FactoryConfig["images"];
  let maker: ImageMaker;
  let signer: KeySigner;
  let version: TalosVersion;
  let cacheCount = 0;

  /** Pushes `files` as the tag's image, signed by the trusted key. */
  const publish = (files: Record<string, string>) =>
    maker.push(server.store.repository(repositoryName), repositoryName, tag, files, {
      signer,
      registry: server.address,
    });

  /** A service on a fresh content cache, its tags verified on every request; `reads()` counts inventory reads. */
  async function service() {
    const cache = new SourceContentCache({ dir: join(scratch.dir, `cache-${cacheCount++}`) });
    const resolver = new ImagerInputResolver({
      verifier: sources.verifier,
      catalogs: sources.catalogs,
      images,
      cache,
      verifiedTtlMs: 0,
    });
    let reads = 0;
    const talosctl = new TalosctlService({
      resolver: {
        pullTree: (...args) => resolver.pullTree(...args),
        cache: {
          inventory: (lease) => {
            reads++;
            return cache.inventory(lease);
          },
        },
      },
      image: images.talosctl,
    });
    return { talosctl, reads: () => reads };
  }

  /** Opens `name` and checks the file against `content` (size, sha256, bytes), then releases it. */
  async function download(talosctl: TalosctlService, name: string, content: string) {
    const file = await talosctl.open(version, name);
    try {
      assert.equal(file.size, Buffer.byteLength(content), name);
      assert.equal(file.sha256, `sha256:${createHash("sha256").update(content).digest("hex")}`, name);
      assert.equal(await readFile(file.path, "utf8"), content, name);
    } finally {
      file.release();
    }
  }

  const first = {
    "talosctl-linux-amd64": "linux amd64 binary\n",
    "talosctl-darwin-arm64": "darwin arm64 binary\n",
    "talosctl-windows-amd64.exe": "windows amd64 binary\n",
  };

  before(async () => {
    scratch = await scratchDir("talosctl-inventory-");
    server = await startRegistryServer({ root: join(scratch.dir, "registry"), listen: "127.0.0.1:0", logger: false });
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    signer = new KeySigner(privateKey);
    const publicKeyFile = join(scratch.dir, "cosign.pub");
    await writeFile(publicKeyFile, publicKey.export({ type: "spki", format: "pem" }));
    maker = new ImageMaker(join(scratch.dir, "layers"));
    await publish(first);
    const dataDir = join(scratch.dir, "data");
    await mkdir(dataDir);
    const config = await factoryConfig(
      ["-image-registry", server.address, "-insecure-image-registry", "-container-signature-pubkey", publicKeyFile],
      dataDir,
    );
    client = new RegistryClient({ insecure: [server.address], retries: 0 });
    sources = createSources(config, { client, log: new RecordingLog() });
    images = config.images;
    version = selectTalosVersions([tag], { minVersion: "1.0.0", brokenVersions: [] })[0] as TalosVersion;
  });
  after(async () => {
    await sources?.stop();
    await client?.close();
    await server?.close();
    await scratch?.remove();
  });

  test("a list and downloads one after another, then at once: each the pushed file, one inventory read", async () => {
    const { talosctl, reads } = await service();
    assert.deepEqual(await talosctl.list(version), Object.keys(first).sort());
    for (const [name, content] of Object.entries(first)) await download(talosctl, name, content);
    await Promise.all(
      Object.entries(first).flatMap(([name, content]) => [1, 2].map(() => download(talosctl, name, content))),
    );
    await assert.rejects(talosctl.open(version, "talosctl-plan9-amd64"), /talosctl-linux-amd64/);
    assert.equal(reads(), 1);
  });

  test("the first requests arrive together: one read shared", async () => {
    const { talosctl, reads } = await service();
    await Promise.all(Object.entries(first).map(([name, content]) => download(talosctl, name, content)));
    assert.equal(reads(), 1);
  });

  test("the tag moves to another signed image: the next request reads the new image's inventory", async () => {
    const { talosctl, reads } = await service();
    await download(talosctl, "talosctl-linux-amd64", first["talosctl-linux-amd64"]);
    const second = { "talosctl-linux-amd64": "linux amd64 binary, rebuilt\n", "talosctl-linux-arm64": "arm64\n" };
    await publish(second);
    assert.deepEqual(await talosctl.list(version), Object.keys(second).sort());
    for (const [name, content] of Object.entries(second)) await download(talosctl, name, content);
    await assert.rejects(talosctl.open(version, "talosctl-darwin-arm64"), /talosctl-linux-arm64/);
    assert.equal(reads(), 2);
  });
});
