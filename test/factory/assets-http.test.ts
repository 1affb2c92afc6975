// `/image/:schematic/:version/:path` served by the factory started from the seed command line against the
// test bed release in a real registry: the bytes equal `boot-assets build` of the same request (run as a
// user runs it, with its own cache), upstream's headers (internal/frontend/http/image.go), checksum files
// as upstream's checksummer writes them (enterprise/checksum/checksummer.go), and beyond upstream: Range,
// ETag / If-None-Match, Cache-Control; a second request is a cache hit and 50 concurrent requests for one
// uncached asset make exactly one build (upstream's metric names, internal/asset/metrics.go).

import assert from "node:assert/strict";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { startFactory } from "../../src/factory/run.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { makeKeyFiles } from "./config-fixtures.ts";
import {
  capturingLogger,
  createSchematic,
  type FactoryUnderTest,
  metricSum,
  type PublishedTestbed,
  type SeedBed,
  seedArgv,
  startSeedBed,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const schematicYaml = `customization:
  extraKernelArgs:
    - serve.test=yes
  systemExtensions:
    officialExtensions:
      - siderolabs/testbed-dummy
`;

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest("hex");

describe("/image downloads", () => {
  let bed: SeedBed | undefined;
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base: string;
  let id: string;
  let work: string;

  const metrics = async () => (await fetch(running.factory.metricsUrl as string)).text();
  const postSchematic = (yaml: string) => createSchematic(base, yaml);

  before(async () => {
    bed = await startSeedBed({ schematic: schematicYaml });
    ({ testbed, running, base, id } = bed);
    work = await mkdtemp(join(running.dataDir, "..", "cli-"));
  });
  after(async () => {
    await bed?.stop();
  });

  const assets = ["kernel-amd64", "cmdline-metal-amd64", "initramfs-amd64.xz"];
  const downloaded = new Map<string, Buffer>();

  it("every asset asked for downloads with upstream's headers and the bytes `boot-assets build` writes", async () => {
    for (const asset of assets) {
      const res = await fetch(`${base}/image/${id}/${version}/${asset}`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, body.toString());
      assert.equal(res.headers.get("content-length"), String(body.length));
      assert.equal(res.headers.get("content-disposition"), `attachment; filename="${asset}"`);
      assert.equal(
        res.headers.get("content-type"),
        asset.endsWith(".xz") ? "application/x-xz" : "application/octet-stream",
      );
      assert.equal(res.headers.get("etag"), `"${hex("sha256", body)}"`);
      assert.equal(res.headers.get("cache-control"), "public, max-age=604800, immutable");
      downloaded.set(asset, body);
    }
    const schematicFile = join(work, "schematic.yaml");
    await writeFile(schematicFile, schematicYaml);
    const out = join(work, "out");
    const result = await runCli(
      [
        "build",
        "--image-registry",
        testbed.registry,
        "--insecure",
        "-container-signature-pubkey",
        join(testbed.outDir, "cosign.pub"),
        // the factory's -external-url (the seed's, changed for the test): the schematic extension names it
        "-external-url",
        "https://factory.example.test/",
        "--talos-version",
        version,
        "--schematic",
        schematicFile,
        "--output-dir",
        out,
        "--cache-dir",
        join(work, "cache"),
        ...assets,
      ],
      isolatedEnv(work),
      180_000,
    );
    assert.equal(result.code, 0, result.stderr);
    for (const asset of assets)
      assert.ok((await readFile(join(out, asset))).equals(downloaded.get(asset) as Buffer), `${asset}: same bytes`);
  });

  it("a second request is a cache hit: counted as delivered cached, nothing built", async () => {
    const before = await metrics();
    const res = await fetch(`${base}/image/${id}/${version}/kernel-amd64`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(downloaded.get("kernel-amd64") as Buffer));
    const afterText = await metrics();
    const delta = (name: string) => metricSum(afterText, name) - metricSum(before, name);
    assert.equal(delta("image_factory_assets_delivered_cached_total"), 1);
    assert.equal(delta("image_factory_assets_built_total"), 0);
    assert.equal(delta("image_factory_assets_cached_bytes_total"), downloaded.get("kernel-amd64")?.length);
  });

  it("HEAD: the headers of GET, no body; ?filename= renames the download", async () => {
    const kernel = downloaded.get("kernel-amd64") as Buffer;
    const head = await fetch(`${base}/image/${id}/${version}/kernel-amd64?filename=vmlinuz`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(kernel.length));
    assert.equal(head.headers.get("content-disposition"), 'attachment; filename="vmlinuz"');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const bad = await fetch(`${base}/image/${id}/${version}/kernel-amd64?filename=${encodeURIComponent('a"b')}`);
    assert.equal(bad.status, 400);
  });

  it("customization.diskImage.sectorSize: any value is a schematic (upstream: schematic.go, a uint); a disk image with one no disk has is a 400, nothing built", async () => {
    const odd = await postSchematic("customization:\n  diskImage:\n    sectorSize: 1000\n");
    const before = await metrics();
    const res = await fetch(`${base}/image/${odd}/${version}/metal-amd64.raw.zst`);
    const text = await res.text();
    assert.equal(res.status, 400, text);
    assert.match(
      text,
      /sectorSize 1000 is not supported: disk images are made with 512, 1024, 2048, 4096-byte sectors/,
    );
    assert.equal(
      metricSum(await metrics(), "image_factory_assets_built_total"),
      metricSum(before, "image_factory_assets_built_total"),
    );
  });

  it("Range: 206 with Content-Range, suffix ranges, 416 past the end, If-Range with another ETag → whole", async () => {
    const kernel = downloaded.get("kernel-amd64") as Buffer;
    const url = `${base}/image/${id}/${version}/kernel-amd64`;
    const part = await fetch(url, { headers: { Range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${kernel.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(kernel.subarray(100, 200)));
    const tail = await fetch(url, { headers: { Range: "bytes=-10" } });
    assert.equal(tail.status, 206);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(kernel.subarray(kernel.length - 10)));
    const open = await fetch(url, { headers: { Range: `bytes=${kernel.length - 5}-` } });
    assert.ok(Buffer.from(await open.arrayBuffer()).equals(kernel.subarray(kernel.length - 5)));
    const past = await fetch(url, { headers: { Range: `bytes=${kernel.length}-` } });
    assert.equal(past.status, 416);
    assert.equal(past.headers.get("content-range"), `bytes */${kernel.length}`);
    await past.arrayBuffer();
    const stale = await fetch(url, { headers: { Range: "bytes=0-9", "If-Range": '"0000"' } });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, kernel.length);
  });

  it("ETag: If-None-Match with the asset's digest → 304, no body", async () => {
    const kernel = downloaded.get("kernel-amd64") as Buffer;
    const res = await fetch(`${base}/image/${id}/${version}/kernel-amd64`, {
      headers: { "If-None-Match": `"${hex("sha256", kernel)}"` },
    });
    assert.equal(res.status, 304);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it("<asset>.sha256 and .sha512: `<hex>  <filename>` as upstream's checksummer, named after the asset", async () => {
    const initramfs = downloaded.get("initramfs-amd64.xz") as Buffer;
    for (const algorithm of ["sha256", "sha512"]) {
      const res = await fetch(`${base}/image/${id}/${version}/initramfs-amd64.xz.${algorithm}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("content-disposition"), `attachment; filename="initramfs-amd64.xz.${algorithm}"`);
      assert.equal(await res.text(), `${hex(algorithm, initramfs)}  initramfs-amd64.xz\n`);
    }
  });

  it("50 concurrent requests for one uncached asset: exactly one build, identical bytes for all", async () => {
    const other = await postSchematic(schematicYaml.replace("serve.test=yes", "serve.test=concurrent"));
    const before = await metrics();
    const bodies = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const res = await fetch(`${base}/image/${other}/${version}/initramfs-amd64.xz`);
        assert.equal(res.status, 200);
        return hex("sha256", Buffer.from(await res.arrayBuffer()));
      }),
    );
    assert.equal(new Set(bodies).size, 1);
    const afterText = await metrics();
    assert.equal(
      metricSum(afterText, "image_factory_assets_built_total") - metricSum(before, "image_factory_assets_built_total"),
      1,
    );
  });

  it("/pxe: upstream's standard.ipxe text, URLs under the external URL, the cmdline asset's text", async () => {
    const cmdline = (downloaded.get("cmdline-metal-amd64") as Buffer).toString("utf8").trim();
    const res = await fetch(`${base}/pxe/${id}/${version}/metal-amd64`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    const image = `https://factory.example.test/image/${id}/${version}`;
    // internal/frontend/http/standard.ipxe
    assert.equal(
      await res.text(),
      `#!ipxe\n\nimgfree\nkernel ${image}/kernel-amd64 ${cmdline}\ninitrd ${image}/initramfs-amd64.xz\nboot\n`,
    );
  });

  it("/pxe keeps the platform's case and normalises iPXE's arch names (internal/integration/pxe_test.go)", async () => {
    const res = await fetch(`${base}/pxe/${id}/${version}/equinixMetal-x86_64`);
    assert.equal(res.status, 200, await res.clone().text());
    const image = `https://factory.example.test/image/${id}/${version}`;
    const lines = (await res.text()).split("\n");
    assert.match(
      lines[3] ?? "",
      new RegExp(`^kernel ${image}/kernel-amd64 talos\\.platform=equinixMetal console=ttyS1,115200n8 `),
    );
    assert.equal(lines[4], `initrd ${image}/initramfs-amd64.xz`);
  });

  it("/oci/cosign/signing-key.pub: the cache signing key's public half, PEM (internal/frontend/http/registry.go)", async () => {
    const res = await fetch(`${base}/oci/cosign/signing-key.pub`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-pem-file");
    const expected = createPublicKey(createPrivateKey(await readFile(running.keys.cacheKey))).export({
      type: "spki",
      format: "pem",
    });
    assert.equal(await res.text(), expected);
  });

  it("a source signed by another identity: 502 naming the image and the signature rule; nothing cached", async () => {
    const keys = await makeKeyFiles();
    const dataDir = join(keys.dir, "data");
    const wrongKey = join(keys.dir, "wrong.pub");
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(wrongKey, publicKey.export({ type: "spki", format: "pem" }));
    const argv = seedArgv(testbed, keys, dataDir).map((arg) => (arg.endsWith("cosign.pub") ? wrongKey : arg));
    const logs: Array<Record<string, unknown>> = [];
    const factory = await startFactory(await parseFactoryCommandLine(argv, {}), {
      logger: capturingLogger(logs),
      print: () => {},
      processMetrics: false,
    });
    const cacheTags = async () =>
      (
        await testbed.server.store
          .repository("cache")
          .listTags()
          .catch(() => [])
      ).sort();
    const tagsBefore = await cacheTags();
    try {
      const url = factory.url.replace(/\/$/, "");
      // Once the version list has loaded (else the version is not known yet: 404, not the signature's 502).
      await waitFor200(`${url}/readyz`);
      // The schematic store is the shared registry's: the schematic posted above is known here too.
      const res = await fetch(`${url}/image/${id}/${version}/kernel-amd64`);
      const text = await res.text();
      assert.equal(res.status, 502, text);
      assert.match(text, /signature/);
      assert.match(text, /siderolabs\/imager:v1\.10\.3/);
      // Nothing cached: the cache repository (the seed's, in the shared registry) has no new entry, and no
      // build left anything behind.
      assert.deepEqual(await cacheTags(), tagsBefore);
      assert.deepEqual(await readdir(join(dataDir, "assets", "tmp")).catch(() => []), []);
      assert.ok(
        logs.some((line) => line.level === 50 && JSON.stringify(line).includes("signature")),
        "logged",
      );
    } finally {
      await factory.close();
      await keys.cleanup();
    }
  });
});
