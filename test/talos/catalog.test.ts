import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { after, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { isAppError } from "../../src/errors.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { flattenLayers } from "../../src/oci/flatten.ts";
import { decompressLayer } from "../../src/oci/layer.ts";
import { OciLayout } from "../../src/oci/layout.ts";
import {
  catalogImageRef,
  ExtensionCatalog,
  maxCatalogEntries,
  parseCatalogLine,
  parseOverlaysCatalog,
  writeOverlaysCatalog,
} from "../../src/talos/catalog.ts";

const realCatalog = "/work/shared/testdata/real-signatures/extra-extensions/extensions-catalog-image";
const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function flattenRealCatalog(): Promise<string> {
  const layout = await OciLayout.open(realCatalog);
  const index = await layout.readIndex();
  const manifest = JSON.parse(await text(await layout.getBlob(index.manifests[0]?.digest as Digest))) as {
    layers: { digest: Digest; mediaType: string }[];
  };
  const dir = await mkdtemp(join(tmpdir(), "catalog-test-"));
  temps.push(dir);
  await flattenLayers(
    manifest.layers.map((layer) => async () => decompressLayer(await layout.getBlob(layer.digest), layer.mediaType)),
    join(dir, "root"),
  );
  return join(dir, "root");
}

const hex = (c: string) => c.repeat(64);

describe("extensions catalog", () => {
  test("the real upstream catalog image parses, and both files are written back byte for byte", async () => {
    const root = await flattenRealCatalog();
    const digests = await readFile(join(root, "image-digests"), "utf8");
    const descriptions = await readFile(join(root, "descriptions.yaml"), "utf8");
    const catalog = ExtensionCatalog.parse(digests, descriptions);
    assert.equal(catalog.entries.length, 1);
    const entry = catalog.entries[0];
    assert.equal(entry?.name, "extension-testing/my-extension");
    assert.equal(entry?.host, "localhost:5100");
    assert.equal(entry?.tag, "v1.0.0");
    assert.equal(entry?.digest, "sha256:dd89b46bbdbaf327dbce29901c7ec8e4927b9db04a9774ed5b7cb34931150274");
    assert.equal(entry?.author, "TEST");
    assert.equal(entry?.description, "[core] TESTESTEST\n");
    assert.equal(catalog.imageDigestsText(), digests);
    assert.equal(catalog.descriptionsYamlText(), descriptions);
  });

  test("lines without @ are skipped; the host is ignored and replaced by the configured registry", () => {
    const catalog = ExtensionCatalog.parse(
      `# comment\nghcr.io/siderolabs/amd-ucode:20240115@sha256:${hex("a")}\n\nsiderolabs/zfs:2.2.4-v1.8.2@sha256:${hex("b")}\n`,
    );
    assert.deepEqual(
      catalog.entries.map((e) => [e.name, e.host, e.tag]),
      [
        ["siderolabs/amd-ucode", "ghcr.io", "20240115"],
        ["siderolabs/zfs", "", "2.2.4-v1.8.2"],
      ],
    );
    const ucode = catalog.find("siderolabs/amd-ucode");
    assert.ok(ucode);
    assert.equal(
      catalogImageRef(ucode, "127.0.0.1:5000"),
      `127.0.0.1:5000/siderolabs/amd-ucode:20240115@sha256:${hex("a")}`,
    );
    assert.equal(catalog.find("amd-ucode"), undefined);
  });

  test("descriptions.yaml: one mapping keyed by the full line, literal blocks for multi-line text", () => {
    const line1 = `ghcr.io/siderolabs/amd-ucode:20231111@sha256:${hex("e")}`;
    const line2 = `ghcr.io/siderolabs/hello-world-service:v1.8.2@sha256:${hex("f")}`;
    const catalog = ExtensionCatalog.parse(`${line1}\n${line2}\n`);
    const written = new ExtensionCatalog(
      catalog.entries.map((e, i) => ({
        ...e,
        author: "Sidero Labs",
        description: i === 0 ? "This system extension provides AMD microcode binaries.\n" : "Hello world service.\n",
      })),
    ).descriptionsYamlText();
    assert.equal(
      written,
      `${line1}:\n  author: Sidero Labs\n  description: |\n    This system extension provides AMD microcode binaries.\n` +
        `${line2}:\n  author: Sidero Labs\n  description: |\n    Hello world service.\n`,
    );
    assert.ok(!written.includes("---"));
    assert.deepEqual(Object.keys(parseYaml(written)), [line1, line2]);
  });

  test("a bad digest is refused", () => {
    assert.throws(
      () => ExtensionCatalog.parse("ghcr.io/siderolabs/x:1@sha256:abc\n"),
      (err: unknown) => isAppError(err, "BadRequest"),
    );
    assert.equal(parseCatalogLine("no at sign here"), undefined);
  });

  test("a catalog of more than maxCatalogEntries lines is refused; that many is read (reliability: absurd counts)", () => {
    const line = (i: number) => `ghcr.io/siderolabs/e${i}:v1@sha256:${String(i).padStart(64, "0")}`;
    const lines = (n: number) => Array.from({ length: n }, (_, i) => line(i)).join("\n");
    assert.equal(ExtensionCatalog.parse(lines(maxCatalogEntries)).entries.length, maxCatalogEntries);
    assert.throws(
      () => ExtensionCatalog.parse(lines(maxCatalogEntries + 1)),
      (err: unknown) => isAppError(err, "BadRequest") && /more than 10000 entries/.test(err.message),
    );
    const overlays = (n: number) =>
      `overlays:\n${Array.from({ length: n }, (_, i) => `  - {name: o${i}, image: x, digest: "sha256:${"0".repeat(64)}"}\n`).join("")}`;
    assert.throws(
      () => parseOverlaysCatalog(overlays(maxCatalogEntries + 1)),
      (err: unknown) => isAppError(err, "BadRequest") && /more than 10000 entries/.test(err.message),
    );
  });
});

describe("overlays catalog", () => {
  test("overlays: [{name, image, digest}] round-trips", () => {
    const overlays = [
      { name: "rpi_generic", image: "siderolabs/sbc-raspberrypi", digest: `sha256:${hex("1")}` },
      { name: "rock5b", image: "ghcr.io/siderolabs/sbc-rockchip", digest: `sha256:${hex("2")}` },
    ];
    const text = writeOverlaysCatalog(overlays);
    assert.ok(text.startsWith("overlays:\n  - name: rpi_generic\n    image: siderolabs/sbc-raspberrypi\n"));
    assert.deepEqual(parseOverlaysCatalog(text), overlays);
    assert.throws(() => parseOverlaysCatalog("overlays:\n  - name: x\n"), /needs string name/);
  });
});
