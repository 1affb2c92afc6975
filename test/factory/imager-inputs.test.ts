// The imager-input resolver against the test bed release in a real registry (embedded server behind a
// recording HTTP front), with the real client, verifier and catalogs: what it returns (digests from the
// release summary, files checked against their blob digests independently), the content cache (reused by a
// second "process", single-flight under concurrency, a corrupted or partial entry never used), and its
// refusals (unknown extension, wrong key, tampered blob) leaving nothing in the cache.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { SourceContentCache } from "../../src/factory/sources/content-cache.ts";
import { ImagerInputResolver, type SourceProgress } from "../../src/factory/sources/imager-inputs.ts";
import { createSources, type FactorySources } from "../../src/factory/sources/index.ts";
import type { BuildKind } from "../../src/imager/profile.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import type { Schematic } from "../../src/talos/schematic.ts";
import type { HttpFront } from "../oci/http-front.ts";
import { blobGets, openReleaseRegistry, type ReleaseRegistry } from "./imager-inputs-fixture.ts";
import { factoryConfig, RecordingLog } from "./sources-helpers.ts";

const v110 = "v1.10.3";
const v18 = "v1.8.2";
const allKinds: BuildKind[] = ["kernel", "initramfs", "cmdline", "uki", "installer"];
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

function schematicWith(...names: string[]): Schematic {
  return { customization: { systemExtensions: { officialExtensions: names.map((n) => `siderolabs/${n}`) } } };
}

describe("ImagerInputResolver against the test bed release", () => {
  let release: ReleaseRegistry;
  const clients: RegistryClient[] = [];
  const sourcesList: FactorySources[] = [];
  let caches = 0;

  /** Sources reading the registry through `front` with the release key (or `publicKeyFile`). */
  async function sourcesVia(front: HttpFront, publicKeyFile = join(release.outDir, "cosign.pub")) {
    const config = await factoryConfig(
      ["-image-registry", front.host, "-insecure-image-registry", "-container-signature-pubkey", publicKeyFile],
      join(release.dir, "data"),
    );
    const client = new RegistryClient({ insecure: [front.host], retries: 0 });
    clients.push(client);
    const sources = createSources(config, { client, log: new RecordingLog() });
    sourcesList.push(sources);
    return { sources, images: config.images };
  }

  function cacheDir(): string {
    return join(release.dir, `cache-${caches++}`);
  }

  async function resolverVia(front: HttpFront, dir: string, publicKeyFile?: string, verifiedTtlMs?: number) {
    const { sources, images } = await sourcesVia(front, publicKeyFile);
    return new ImagerInputResolver({
      verifier: sources.verifier,
      catalogs: sources.catalogs,
      images,
      cache: new SourceContentCache({ dir }),
      ...(verifiedTtlMs !== undefined ? { verifiedTtlMs } : {}),
    });
  }

  /** Every layer digest of the images a v1.10.3 build with testbed-dummy and testbed-hello pulls. */
  async function sourceLayers(version = v110): Promise<string[]> {
    const images = [
      release.image(version, (i) => i.kind === "imager"),
      release.image(version, (i) => i.kind === "installer"),
      release.image(version, (i) => i.extension?.name === "testbed-dummy"),
      release.image(version, (i) => i.extension?.name === "testbed-hello"),
    ];
    return (await Promise.all(images.map((i) => release.layerDigests(i)))).flat();
  }

  before(async () => {
    release = await openReleaseRegistry([v110, v18]);
  });
  after(async () => {
    for (const s of sourcesList) await s.stop();
    for (const c of clients) await c.close();
    await release?.close();
  });

  test("a release's images are verified once for requests that arrive together or within the TTL; with TTL 0 every time", async () => {
    const imager = release.image(v110, (i) => i.kind === "imager");
    const signatureReads = (front: HttpFront) =>
      front.requests.filter((r) => r.url.endsWith(`/manifests/sha256-${imager.digest.slice(7)}.sig`)).length;
    const request = {
      talosVersion: v110,
      arch: "amd64" as const,
      schematic: schematicWith(),
      kinds: ["initramfs"] as BuildKind[],
    };
    const front = await release.frontWith({});
    const resolver = await resolverVia(front, cacheDir());
    const together = await Promise.all(Array.from({ length: 8 }, () => resolver.resolve(request)));
    for (const r of together) r.release();
    assert.equal(signatureReads(front), 1, "eight requests at once: one verification");
    (await resolver.resolve(request)).release();
    assert.equal(signatureReads(front), 1, "within the TTL: none more");
    const every = await resolverVia(front, cacheDir(), undefined, 0);
    (await every.resolve(request)).release();
    (await every.resolve(request)).release();
    assert.equal(signatureReads(front), 3, "TTL 0: each request verifies");
  });

  test("resolves, verifies and pulls the imager, installer-base and the schematic's extensions by digest", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    const events: SourceProgress[] = [];
    const resolved = await resolver.resolve({
      talosVersion: v110,
      arch: "amd64",
      schematic: schematicWith("testbed-dummy", "testbed-hello"),
      kinds: allKinds,
      progress: (e) => events.push(e),
    });
    try {
      const imager = release.image(v110, (i) => i.kind === "imager");
      const installer = release.image(v110, (i) => i.kind === "installer");
      assert.equal(installer.repository, "siderolabs/installer-base");
      const dummy = release.image(v110, (i) => i.extension?.name === "testbed-dummy");
      const hello = release.image(v110, (i) => i.extension?.name === "testbed-hello");
      assert.deepEqual(resolved.sources, {
        imager: imager.digest,
        installerBase: installer.digest,
        extensions: [
          { name: "siderolabs/testbed-dummy", digest: dummy.digest },
          { name: "siderolabs/testbed-hello", digest: hello.digest },
        ],
      });
      // The imager tree holds its boot assets; the extensions their manifest and rootfs.
      for (const asset of ["vmlinuz", "initramfs.xz", "systemd-boot.efi", "systemd-stub.efi"])
        assert.ok((await readFile(join(resolved.inputs.imagerDir, "usr/install/amd64", asset))).length > 0, asset);
      assert.deepEqual(
        resolved.inputs.extensions.map((e) => [e.name, e.digest]),
        resolved.sources.extensions.map((e) => [e.name, e.digest]),
      );
      for (const extension of resolved.inputs.extensions) {
        assert.deepEqual((await readdir(extension.dir)).sort(), ["manifest.yaml", "rootfs"]);
        // The test bed's tars carry no SELinux PAX records: none known, and the entry says so beside the tree.
        assert.deepEqual(extension.selinuxLabels, new Map());
        const entry = JSON.parse(await readFile(join(extension.dir, "..", "entry.json"), "utf8")) as { meta: unknown };
        assert.deepEqual(entry.meta, { selinuxLabels: {} });
      }
      assert.match(
        await readFile(join(resolved.inputs.extensions[0]?.dir as string, "manifest.yaml"), "utf8"),
        /name: testbed-dummy/,
      );
      // The installer base as blobs: each file hashes to its digest, in the manifest's order.
      const base = resolved.inputs.installerBase;
      assert.ok(base !== undefined);
      assert.deepEqual(
        base.layers.map((l) => l.digest),
        await release.layerDigests(installer),
      );
      for (const layer of base.layers) assert.equal(`sha256:${sha256(await readFile(layer.path))}`, layer.digest);
      assert.ok(
        Array.isArray(
          (JSON.parse(Buffer.from(base.config).toString()) as { rootfs: { diff_ids: unknown } }).rootfs.diff_ids,
        ),
      );
      // Signatures were all verified before the first byte was pulled.
      const firstPull = events.findIndex((e) => e.step === "pull");
      const lastVerified = events.findLastIndex((e) => e.step === "verified");
      assert.equal(events.filter((e) => e.step === "verified").length, 4);
      assert.ok(lastVerified < firstPull, "every signature is verified before pulling");
    } finally {
      resolved.release();
    }
  });

  test("before 1.10 the installer base is installer:<v>", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    const resolved = await resolver.resolve({
      talosVersion: v18,
      arch: "amd64",
      schematic: schematicWith(),
      kinds: ["installer"],
    });
    resolved.release();
    const installer = release.image(v18, (i) => i.kind === "installer");
    assert.equal(installer.repository, "siderolabs/installer");
    assert.equal(resolved.sources.installerBase, installer.digest);
    assert.deepEqual(resolved.inputs.extensions, []);
  });

  test("only what the outputs need is fetched: cmdline pulls nothing, kernel only the imager", async () => {
    const dir = cacheDir();
    const resolver = await resolverVia(release.front, dir);
    const layers = await sourceLayers();
    release.front.requests.length = 0;
    const schematic = schematicWith("testbed-dummy", "testbed-hello");
    const cmdline = await resolver.resolve({ talosVersion: v110, arch: "amd64", schematic, kinds: ["cmdline"] });
    cmdline.release();
    assert.equal(cmdline.inputs.imagerDir, "");
    assert.deepEqual(blobGets(release.front, layers), []);
    const kernel = await resolver.resolve({ talosVersion: v110, arch: "amd64", schematic, kinds: ["kernel"] });
    kernel.release();
    const imagerLayers = await release.layerDigests(release.image(v110, (i) => i.kind === "imager"));
    assert.deepEqual(blobGets(release.front, layers).sort(), [...imagerLayers].sort());
    assert.deepEqual(kernel.sources.extensions, []);
  });

  test("ISOs and disk images get the schematic's extensions, as the initramfs does", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    const schematic = schematicWith("testbed-dummy", "testbed-hello");
    for (const kind of ["iso", "disk"] as const) {
      const media = await resolver.resolve({ talosVersion: v110, arch: "amd64", schematic, kinds: [kind] });
      media.release();
      assert.deepEqual(
        media.sources.extensions.map((e) => e.name),
        ["siderolabs/testbed-dummy", "siderolabs/testbed-hello"],
        kind,
      );
      assert.equal(media.inputs.extensions.length, 2, kind);
    }
  });

  test("a second process reuses the content cache: no layer blob is fetched again", async () => {
    const dir = cacheDir();
    const layers = await sourceLayers();
    const request = {
      talosVersion: v110,
      arch: "amd64" as const,
      schematic: schematicWith("testbed-dummy", "testbed-hello"),
      kinds: allKinds,
    };
    release.front.requests.length = 0;
    const first = await (await resolverVia(release.front, dir)).resolve(request);
    first.release();
    assert.equal(blobGets(release.front, layers).length, layers.length, "the first resolve pulls every layer once");

    release.front.requests.length = 0;
    const events: SourceProgress[] = [];
    const second = await (await resolverVia(release.front, dir)).resolve({
      ...request,
      progress: (e) => events.push(e),
    });
    second.release();
    assert.deepEqual(blobGets(release.front, layers), []);
    assert.equal(events.filter((e) => e.step === "cached").length, 4);
    assert.equal(second.inputs.imagerDir, first.inputs.imagerDir);
  });

  test("concurrent resolves of the same digests share one pull (single-flight)", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    const layers = await sourceLayers();
    release.front.requests.length = 0;
    const request = {
      talosVersion: v110,
      arch: "amd64" as const,
      schematic: schematicWith("testbed-dummy", "testbed-hello"),
      kinds: allKinds,
    };
    const results = await Promise.all([
      resolver.resolve(request),
      resolver.resolve(request),
      resolver.resolve(request),
    ]);
    for (const r of results) r.release();
    const gets = blobGets(release.front, layers);
    assert.equal(gets.length, layers.length, "each layer fetched once");
    assert.equal(new Set(gets).size, new Set(layers).size);
    assert.equal(new Set(results.map((r) => r.inputs.imagerDir)).size, 1);
  });

  test("a corrupted or partial cache entry is never used: it is set aside and pulled again", async () => {
    const dir = cacheDir();
    const request = {
      talosVersion: v110,
      arch: "amd64" as const,
      schematic: schematicWith(),
      kinds: ["kernel" as const],
    };
    const first = await (await resolverVia(release.front, dir)).resolve(request);
    first.release();
    const vmlinuz = join(first.inputs.imagerDir, "usr/install/amd64/vmlinuz");
    const original = await readFile(vmlinuz);
    const imagerLayers = await release.layerDigests(release.image(v110, (i) => i.kind === "imager"));

    // Same size, one byte changed: only a content check notices.
    const corrupted = Buffer.from(original);
    corrupted[corrupted.length >> 1] = (corrupted[corrupted.length >> 1] as number) ^ 0xff;
    await writeFile(vmlinuz, corrupted);
    release.front.requests.length = 0;
    const events: SourceProgress[] = [];
    const second = await (await resolverVia(release.front, dir)).resolve({
      ...request,
      progress: (e) => events.push(e),
    });
    second.release();
    assert.ok(events.some((e) => e.step === "discard" && /differs at usr\/install\/amd64\/vmlinuz/.test(e.reason)));
    assert.equal(blobGets(release.front, imagerLayers).length, imagerLayers.length, "pulled again");
    assert.ok((await readFile(join(second.inputs.imagerDir, "usr/install/amd64/vmlinuz"))).equals(original));

    // An entry without its entry.json (a fill that never completed) is not used either.
    const entry = join(second.inputs.imagerDir, "..");
    await rm(join(entry, "entry.json"));
    release.front.requests.length = 0;
    const third = await (await resolverVia(release.front, dir)).resolve(request);
    third.release();
    assert.equal(blobGets(release.front, imagerLayers).length, imagerLayers.length, "pulled again");
    assert.ok((await readFile(join(third.inputs.imagerDir, "usr/install/amd64/vmlinuz"))).equals(original));
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.startsWith(".")),
      [],
      "no temporary or set-aside directory is left",
    );
  });

  test("an unknown extension is refused by name before anything is pulled", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    release.front.requests.length = 0;
    await assert.rejects(
      resolver.resolve({
        talosVersion: v110,
        arch: "amd64",
        schematic: schematicWith("testbed-dummy", "no-such-extension"),
        kinds: ["initramfs"],
      }),
      (err: unknown) =>
        isAppError(err, "BadRequest") &&
        err.message === 'extension "siderolabs/no-such-extension" is not available for Talos version v1.10.3',
    );
    assert.deepEqual(blobGets(release.front, await sourceLayers()), []);
  });

  test("an extension whose constraint excludes the version is refused with its name", async () => {
    const resolver = await resolverVia(release.front, cacheDir());
    await assert.rejects(
      resolver.resolve({
        talosVersion: v110,
        arch: "amd64",
        schematic: schematicWith("testbed-legacy"),
        kinds: ["initramfs"],
      }),
      (err: unknown) =>
        isAppError(err, "BadRequest") && /testbed-legacy/.test(err.message) && /not compatible/.test(err.message),
    );
  });

  test("a signature by another key is refused (Integrity, naming the image) and nothing is pulled", async () => {
    const wrongKey = join(release.dir, "wrong.pub");
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(wrongKey, publicKey.export({ type: "spki", format: "pem" }));
    const dir = cacheDir();
    const resolver = await resolverVia(release.front, dir, wrongKey);
    release.front.requests.length = 0;
    await assert.rejects(
      resolver.resolve({ talosVersion: v110, arch: "amd64", schematic: schematicWith(), kinds: ["kernel"] }),
      (err: unknown) =>
        isAppError(err, "Integrity") &&
        /siderolabs\/imager:v1\.10\.3/.test(err.message) &&
        /signature/.test(err.message),
    );
    assert.deepEqual(blobGets(release.front, await sourceLayers()), []);
    assert.deepEqual(await readdir(dir).catch(() => []), []);
  });

  test("a tampered blob fails as Integrity and nothing of it is cached", async () => {
    const hello = release.image(v110, (i) => i.extension?.name === "testbed-hello");
    const [target] = await release.layerDigests(hello);
    const tampering = await release.frontWith({
      rewriteBody: (req, status, body) => {
        if (req.method !== "GET" || status !== 200 || !req.url.endsWith(`/blobs/${target}`)) return body;
        const changed = Buffer.from(body);
        changed[changed.length >> 1] = (changed[changed.length >> 1] as number) ^ 0x01;
        return changed;
      },
    });
    const dir = cacheDir();
    const resolver = await resolverVia(tampering, dir);
    await assert.rejects(
      resolver.resolve({
        talosVersion: v110,
        arch: "amd64",
        schematic: schematicWith("testbed-hello"),
        kinds: ["initramfs"],
      }),
      (err: unknown) => isAppError(err, "Integrity"),
    );
    assert.ok(blobGets(tampering, [target as string]).length > 0, "the tampered blob was fetched");
    const names = await readdir(dir);
    assert.ok(!names.includes(`sha256-${hello.digest.slice("sha256:".length)}`), "no entry for the extension");
    assert.deepEqual(
      names.filter((n) => n.startsWith(".")),
      [],
      "no temporary directory is left",
    );
  });
});
