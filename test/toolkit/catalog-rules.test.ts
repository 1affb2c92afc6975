// The catalog merge's rules on hand-made and real upstream-built images, on the CNCF distribution registry:
//   - a real catalog image built by upstream's tooling (two layers, Docker media types, from siderolabs'
//     image-factory integration test data) is extended without changing a byte of what it listed: the new
//     image-digests and descriptions.yaml begin with the upstream files exactly;
//   - a catalog whose files are stored as `./image-digests` is refused, naming the reason (the factory
//     matches bare names: siderolabs/image-factory internal/artifacts/versions.go);
//   - a later layer's whiteout hides a catalog file;
//   - kernel modules are found under rootfs/lib/modules (Talos < 1.10) and rootfs/usr/lib/modules, compressed
//     or not; module metadata alone (modules.dep) is not a module;
//   - merge/diff rules: replacement by name or repository path, order kept, diff by repository path.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { ExtensionCatalog } from "../../src/talos/catalog.ts";
import { diffCatalogs, mergeCatalogEntries } from "../../src/talos/catalog-merge.ts";
import { extensionManifestYaml } from "../../src/testbed/extensions.ts";
import { mergeCatalog, readCatalogImage } from "../../src/toolkit/catalog.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { rawTar } from "../oci/raw-tar.ts";
import { skopeo } from "../realclients/skopeo.ts";
import { parseIndependently, pushExtension, pushRawImage, readWithSkopeoAndTar } from "./catalog-helpers.ts";

const realCatalog = "/work/shared/testdata/real-signatures/extra-extensions/extensions-catalog-image";
const hex = (c: string) => c.repeat(64);

describe("catalog merge rules on a real registry", () => {
  let registry: RunningRegistry;
  let scratch: string;
  const client = new RegistryClient({ insecure: true });
  let verifier: SignatureVerifier;
  let extension: { ref: string; digest: string };

  before(async () => {
    registry = await startDistribution();
    scratch = await mkdtemp(join(tmpdir(), "catalog-rules-"));
    verifier = await SignatureVerifier.create(client, { disabled: true, identities: [] });
    const manifest = extensionManifestYaml({
      name: "acme-tool",
      version: "0.1.0",
      description: "A tool.\n",
      constraint: ">= v1.5.0",
    });
    const ref = `${registry.host}/acme/acme-tool:0.1.0`;
    extension = {
      ref,
      digest: await pushExtension(
        client,
        ref,
        "0.1.0",
        manifest,
        [{ type: "file", path: "usr/local/bin/tool", content: Buffer.from("tool\n") }],
        scratch,
      ),
    };
  });
  after(async () => {
    await client.close();
    await registry?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("a real upstream-built catalog is extended without changing what it listed", async () => {
    const from = `${registry.host}/extension-testing/extensions:v1.0.0`;
    await skopeo(["copy", "--preserve-digests", "--dest-tls-verify=false", `oci:${realCatalog}`, `docker://${from}`]);
    const dir = join(scratch, "real.oci");
    const result = await mergeCatalog({
      verifier,
      from,
      add: [`${extension.ref}@${extension.digest}`],
      tag: `${registry.host}/acme/extensions:v1.0.0-acme`,
      output: { kind: "layout", dir },
      extensionsRegistry: null,
    });
    assert.equal(result.kept.length, 1);
    assert.equal(result.added.length, 1);
    assert.equal(result.scanned, false);
    // The upstream files, read independently from the upstream layout with GNU tar.
    const upstream = await readWithSkopeoAndTar(from, join(scratch, "upstream"));
    const mergedFiles = await readWithSkopeoAndTar(`${registry.host}/acme/extensions:v1.0.0-acme`, scratch).catch(
      () => undefined,
    );
    assert.equal(mergedFiles, undefined, "a layout output pushes nothing");
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}:v1.0.0-acme`,
      `docker://${registry.host}/acme/extensions:v1.0.0-acme`,
    ]);
    const merged = await readWithSkopeoAndTar(`${registry.host}/acme/extensions:v1.0.0-acme`, join(scratch, "merged"));
    assert.ok(merged.imageDigests.startsWith(upstream.imageDigests), merged.imageDigests);
    assert.ok(merged.descriptions.startsWith(upstream.descriptions), merged.descriptions);
    const { lines, entries } = parseIndependently(merged.imageDigests, merged.descriptions);
    assert.deepEqual(lines, [upstream.imageDigests.trim(), `${extension.ref}@${extension.digest}`]);
    assert.equal(entries[1]?.description, "A tool.\n");
  });

  test("a kept entry the registry lacks stops the merge, naming it and the way out; nothing is written", async () => {
    const dir = join(scratch, "unreachable.oci");
    await assert.rejects(
      mergeCatalog({
        verifier,
        from: `${registry.host}/extension-testing/extensions:v1.0.0`,
        add: [`${extension.ref}@${extension.digest}`],
        tag: `${registry.host}/acme/extensions:unreachable`,
        output: { kind: "layout", dir },
      }),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            `^kept extension-testing/my-extension:v1\\.0\\.0: looking for kernel modules in ${registry.host.replace(/\./g, "\\.")}/extension-testing/my-extension@sha256:dd89b46b`,
          ),
        );
        assert.match(err.message, /--extensions-registry, or skip with --no-module-check\)$/);
        return true;
      },
    );
    assert.equal(existsSync(dir), false);
  });

  test("catalog files stored as ./image-digests are refused, saying why", async () => {
    const layer = await rawTar([
      { name: "./image-digests", content: `ghcr.io/siderolabs/x:1@sha256:${hex("a")}\n` },
      { name: "./descriptions.yaml", content: "{}\n" },
    ]);
    const ref = `${registry.host}/bad/extensions:dot`;
    await pushRawImage(client, ref, "dot", [layer]);
    await assert.rejects(
      readCatalogImage(verifier, ref),
      /stored as \.\/image-digests, which the image factory does not read/,
    );
  });

  test("a whiteout in a later layer hides a catalog file", async () => {
    const ref = `${registry.host}/bad/extensions:whiteout`;
    await pushRawImage(client, ref, "whiteout", [
      await rawTar([{ name: "image-digests", content: `ghcr.io/siderolabs/x:1@sha256:${hex("a")}\n` }]),
      await rawTar([
        { name: "descriptions.yaml", content: "{}\n" },
        { name: ".wh.image-digests", content: "" },
      ]),
    ]);
    await assert.rejects(readCatalogImage(verifier, ref), /no image-digests file at the root$/);
  });

  test("a later layer's file replaces an earlier one", async () => {
    const ref = `${registry.host}/bad/extensions:override`;
    await pushRawImage(client, ref, "override", [
      await rawTar([
        { name: "image-digests", content: `ghcr.io/siderolabs/old:1@sha256:${hex("a")}\n` },
        { name: "descriptions.yaml", content: "{}\n" },
      ]),
      await rawTar([{ name: "image-digests", content: `ghcr.io/siderolabs/new:2@sha256:${hex("b")}\n` }]),
    ]);
    const read = await readCatalogImage(verifier, ref);
    assert.deepEqual(
      read.catalog.entries.map((e) => `${e.name}:${e.tag}`),
      ["siderolabs/new:2"],
    );
  });

  test("kernel modules are found in kept entries under lib/modules and usr/lib/modules only", async () => {
    const manifest = (name: string) =>
      extensionManifestYaml({ name, version: "1.0.0", description: "x\n", constraint: ">= v1.5.0" });
    const images = [
      { name: "old-layout", files: ["rootfs/lib/modules/6.1.0/extra/foo.ko.xz"], module: true },
      { name: "new-layout", files: ["rootfs/usr/lib/modules/6.18.0/kernel/drivers/bar.ko"], module: true },
      { name: "metadata-only", files: ["rootfs/usr/lib/modules/6.18.0/modules.dep"], module: false },
      { name: "elsewhere", files: ["rootfs/usr/local/share/foo.ko"], module: false },
    ];
    const lines: string[] = [];
    for (const image of images) {
      const layer = await rawTar([
        { name: "manifest.yaml", content: manifest(image.name) },
        ...image.files.map((name) => ({ name, content: "\x7fELF" })),
      ]);
      const digest = await pushRawImage(client, `${registry.host}/siderolabs/${image.name}:1.0.0`, "1.0.0", [layer]);
      lines.push(`ghcr.io/siderolabs/${image.name}:1.0.0@${digest}`);
    }
    const catalog = new ExtensionCatalog(
      lines.map((ref) => {
        const parsed = ExtensionCatalog.parse(`${ref}\n`).entries[0];
        assert.ok(parsed);
        return parsed;
      }),
    );
    const from = `${registry.host}/siderolabs/extensions:modules`;
    await pushRawImage(client, from, "modules", [
      await rawTar([
        { name: "image-digests", content: catalog.imageDigestsText() },
        { name: "descriptions.yaml", content: catalog.descriptionsYamlText() },
      ]),
    ]);
    const result = await mergeCatalog({
      verifier,
      from,
      add: [`${extension.ref}@${extension.digest}`],
      tag: `${registry.host}/acme/extensions:modules`,
      output: { kind: "layout", dir: join(scratch, "modules.oci") },
      concurrency: 2,
    });
    assert.equal(result.scanned, true);
    assert.deepEqual(
      result.keptWithModules.map((k) => [k.entry.name, k.module]),
      [
        ["siderolabs/old-layout", "/lib/modules/6.1.0/extra/foo.ko.xz"],
        ["siderolabs/new-layout", "/usr/lib/modules/6.18.0/kernel/drivers/bar.ko"],
      ],
    );
    const index = JSON.parse(await readFile(join(scratch, "modules.oci", "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    assert.equal(index.manifests[0]?.digest, result.digest);
  });
});

describe("merge and diff rules", () => {
  const entry = (path: string, tag: string, c: string, host = "ghcr.io") => {
    const parsed = ExtensionCatalog.parse(`${host}/${path}:${tag}@sha256:${hex(c)}\n`).entries[0];
    assert.ok(parsed);
    return { ...parsed, author: "a", description: "d" };
  };
  const base = new ExtensionCatalog([
    entry("siderolabs/amd-ucode", "20240115", "1"),
    entry("siderolabs/glibc", "2.41", "2"),
    entry("siderolabs/zfs", "2.2.2", "3"),
  ]);

  test("an added extension of a listed name takes its place; new names are appended in order", () => {
    const glibc = entry("acme/glibc", "2.40", "4", "registry.example.com");
    const nvidia = entry("acme/nvidia-driver-production", "550.90.07-v1.8.2", "5", "registry.example.com");
    const out = mergeCatalogEntries(base, [
      { extensionName: "nvidia-driver-production", entry: nvidia },
      { extensionName: "glibc", entry: glibc },
    ]);
    assert.deepEqual(
      out.entries.map((e) => e.name),
      ["siderolabs/amd-ucode", "acme/glibc", "siderolabs/zfs", "acme/nvidia-driver-production"],
    );
    assert.deepEqual(
      out.replaced.map((r) => [r.old.name, r.by.name]),
      [["siderolabs/glibc", "acme/glibc"]],
    );
    assert.deepEqual(
      out.kept.map((e) => e.name),
      ["siderolabs/amd-ucode", "siderolabs/zfs"],
    );
  });

  test("the same repository path replaces even under another manifest name", () => {
    const zfs = entry("siderolabs/zfs", "2.3.0", "6");
    const out = mergeCatalogEntries(base, [{ extensionName: "zfs-custom", entry: zfs }]);
    assert.equal(out.replaced.length, 1);
    assert.equal(out.entries.length, 3);
    assert.equal(out.entries[2]?.tag, "2.3.0");
  });

  test("two added images of one name are refused", () => {
    assert.throws(
      () =>
        mergeCatalogEntries(base, [
          { extensionName: "x", entry: entry("a/x", "1", "7") },
          { extensionName: "x", entry: entry("b/x", "1", "8") },
        ]),
      /two added images are the extension "x"/,
    );
  });

  test("diff: by repository path, with the fields that changed", () => {
    const after = new ExtensionCatalog([
      entry("siderolabs/amd-ucode", "20240115", "1"),
      entry("siderolabs/zfs", "2.3.0", "9"),
      entry("acme/glibc", "2.40", "4"),
    ]);
    const d = diffCatalogs(base, after);
    assert.deepEqual(
      d.added.map((e) => e.name),
      ["acme/glibc"],
    );
    assert.deepEqual(
      d.removed.map((e) => e.name),
      ["siderolabs/glibc"],
    );
    assert.deepEqual(
      d.changed.map((c) => [c.name, c.fields]),
      [["siderolabs/zfs", ["tag", "digest"]]],
    );
    assert.equal(d.unchanged, 1);
  });
});
