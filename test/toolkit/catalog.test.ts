// `boot-assets catalog merge | show | diff` against the real CNCF distribution registry and the test bed
// release: custom extensions (one new; one replacing a test bed extension of the same name, built by
// `extension build` as a two-platform index) merged into the test bed's catalog, pushed and signed, then
// read back three ways — the project's catalog reader, the factory's catalog image reader, and an
// independent parse written here from upstream's rules:
//   - the image's layer holds exactly `image-digests` and `descriptions.yaml` under bare names
//     (siderolabs/extensions internal/extensions/pkg.yaml finalizes both to `/`; siderolabs/image-factory
//     internal/artifacts/versions.go matches `hdr.Name == "image-digests"`);
//   - `image-digests`: one `<host>/<path>:<tag>@sha256:<hex>` per line, each cut at "@" by the factory;
//   - `descriptions.yaml`: one YAML mapping whose keys are exactly those lines, each `{author, description}`
//     taken from the extension's manifest.yaml (siderolabs/extensions Makefile, descriptions.yaml target).
// skopeo inspects the pushed image, `boot-assets verify` checks its signature, and the same inputs give the
// same digest.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createSources } from "../../src/factory/sources/index.ts";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { ExtensionCatalog } from "../../src/talos/catalog.ts";
import { readCatalogFiles } from "../../src/talos/catalog-image.ts";
import { extensionManifestYaml } from "../../src/testbed/extensions.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { factoryConfig, RecordingLog, sourcesApp } from "../factory/sources-helpers.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { skopeo } from "../realclients/skopeo.ts";
import { parseIndependently, pushExtension, readWithSkopeoAndTar } from "./catalog-helpers.ts";

const version = "v1.10.3";

describe("boot-assets catalog against distribution and the test bed", () => {
  let registry: RunningRegistry;
  let scratch: string;
  let env: NodeJS.ProcessEnv;
  const client = new RegistryClient({ insecure: true });
  let from: string;
  let testbedPub: string;
  let otherPub: string;
  let releaseKey: string;
  let hello: { ref: string; digest: string; description: string };
  let glibc: { ref: string; digest: string; description: string };
  let merged: { stdout: string; stderr: string; digest: string };
  const target = () => `${registry.host}/acme/extensions:${version}`;

  before(async () => {
    registry = await startDistribution();
    scratch = await mkdtemp(join(tmpdir(), "catalog-merge-test-"));
    env = isolatedEnv(scratch);
    const out = join(scratch, "testbed");
    await publishTestbedRelease({ registry: registry.host, client, versions: [version], out });
    testbedPub = join(out, "cosign.pub");
    from = `${registry.host}/siderolabs/extensions:${version}`;

    // A test bed-style extension under another name, and one named like a test bed extension (replaces it).
    const helloDescription = "The acme hello service (test).\nSecond line.\n";
    const helloManifest = extensionManifestYaml({
      name: "acme-hello",
      version: "1.2.3",
      description: helloDescription,
      constraint: ">= v1.5.0",
    });
    const helloRef = `${registry.host}/acme/acme-hello`;
    const helloDigest = await pushExtension(
      client,
      `${helloRef}:1.2.3`,
      "1.2.3",
      helloManifest,
      [{ type: "file", path: "usr/local/share/acme-hello/README", content: Buffer.from("hello\n") }],
      scratch,
    );
    hello = { ref: `${helloRef}:1.2.3`, digest: helloDigest, description: helloDescription };
    // The replacement is built the way the release workflow builds it: `extension build` from a source folder
    // (a manifest template, a rootfs), both platforms, pushed and signed.
    const glibcDescription = "Acme's glibc build.\n";
    const glibcRef = `${registry.host}/acme/testbed-glibc`;
    const source = join(scratch, "glibc-source");
    await mkdir(join(source, "rootfs", "usr", "local", "glibc"), { recursive: true });
    await writeFile(join(source, "rootfs", "usr", "local", "glibc", "README"), "glibc\n");
    await writeFile(
      join(source, "manifest.yaml.tmpl"),
      extensionManifestYaml({
        name: "testbed-glibc",
        version: "{{ .VERSION }}",
        description: glibcDescription,
        constraint: ">= v1.5.0",
      }).replace('"{{ .VERSION }}"', "{{ .VERSION }}"),
    );
    const built = await runCli(
      [
        "extension",
        "build",
        source,
        "--tag",
        `${glibcRef}:2.40`,
        "--talos-version",
        version,
        "--platform",
        "linux/amd64,linux/arm64",
        "--push",
        "--sign",
        "--key",
        join(out, "cosign.key"),
        "--insecure",
      ],
      { ...env, COSIGN_PASSWORD: "" },
      120_000,
    );
    assert.equal(built.code, 0, built.stderr);
    const glibcDigest = new RegExp(`^pushed ${glibcRef.replace(/\./g, "\\.")}:2\\.40@(sha256:[0-9a-f]{64})$`, "m").exec(
      built.stdout.toString("utf8"),
    )?.[1];
    assert.ok(glibcDigest, built.stdout.toString("utf8"));
    const glibcIndex = await client.repository(`${glibcRef}@${glibcDigest}`).getManifest(glibcDigest);
    assert.equal(glibcIndex.mediaType, "application/vnd.oci.image.index.v1+json", "a two-platform index");
    glibc = { ref: `${glibcRef}:2.40`, digest: glibcDigest, description: glibcDescription };

    // The custom extensions are signed as the release workflow signs them (here with the test bed's key).
    for (const image of [hello]) {
      const signed = await runCli(
        ["sign", `${image.ref}@${image.digest}`, "--key", join(out, "cosign.key"), "--insecure"],
        { ...env, COSIGN_PASSWORD: "" },
      );
      assert.equal(signed.code, 0, signed.stderr);
    }

    // The merged catalog is signed with the test bed's key (as the workflow signs what it publishes), so one
    // public key verifies every image a factory reads; another key must not verify it.
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    otherPub = join(scratch, "other.pub");
    await writeFile(otherPub, pair.publicKey.export({ type: "spki", format: "pem" }));
    releaseKey = join(out, "cosign.key");

    const result = await runCli(
      [
        "catalog",
        "merge",
        "--from",
        from,
        "--add",
        `${hello.ref}@${hello.digest}`,
        "--add",
        `${glibc.ref}@${glibc.digest}`,
        "--tag",
        target(),
        "--push",
        "--sign",
        "--key",
        releaseKey,
        "--verify-key",
        testbedPub,
        "--insecure",
      ],
      { ...env, COSIGN_PASSWORD: "" },
      180_000,
    );
    const stdout = result.stdout.toString("utf8");
    assert.equal(result.code, 0, `${stdout}\n${result.stderr}`);
    const digest = /^wrote \S+ (sha256:[0-9a-f]{64}) /m.exec(stdout)?.[1];
    assert.ok(digest, stdout);
    merged = { stdout, stderr: result.stderr, digest };
  });
  after(async () => {
    await client.close();
    await registry?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("the merge says what it replaced and added, and tallies the entries", () => {
    const glibcLine = `${glibc.ref}@${glibc.digest}`;
    assert.match(
      merged.stdout,
      new RegExp(
        `^replaced ghcr\\.io/siderolabs/testbed-glibc:2\\.36-${version}@sha256:[0-9a-f]{64}\\n {5}by ${glibcLine.replace(/[.]/g, "\\.")}$`,
        "m",
      ),
    );
    assert.match(merged.stdout, new RegExp(`^added ${`${hello.ref}@${hello.digest}`.replace(/[.]/g, "\\.")}$`, "m"));
    // The test bed catalog lists 5 extensions (src/testbed/extensions.ts): 4 kept, 1 replaced, 1 added.
    assert.match(merged.stdout, /\(6 entries: 4 kept, 1 replaced, 1 added\)/);
    assert.match(merged.stdout, /wrote signature sha256-[0-9a-f]{64}\.sig/);
  });

  test("a kept extension carrying kernel modules is warned about, and only that one", () => {
    const warnings = merged.stderr.split("\n").filter((l) => l.startsWith("warning:"));
    assert.equal(warnings.length, 1, merged.stderr);
    // testbed-dummy is the test bed's module extension (dummy.ko under usr/lib/modules on 1.10).
    assert.match(
      warnings[0] ?? "",
      /^warning: kept siderolabs\/testbed-dummy:\S+ carries kernel modules \(\/usr\/lib\/modules\/[^)]+\.ko\); they will not load on a custom kernel/,
    );
  });

  test("read back independently (skopeo + GNU tar + upstream's rules)", async () => {
    const { layerCount, names, imageDigests, descriptions } = await readWithSkopeoAndTar(
      target(),
      join(scratch, "skopeo-layout"),
    );
    assert.equal(layerCount, 1);
    assert.deepEqual(names.sort(), ["descriptions.yaml", "image-digests"], "bare names, nothing else");
    const { lines, entries } = parseIndependently(imageDigests, descriptions);
    assert.equal(lines.length, 6);
    assert.ok(lines.includes(`${hello.ref}@${hello.digest}`));
    assert.ok(lines.includes(`${glibc.ref}@${glibc.digest}`));
    assert.ok(!lines.some((l) => l.includes("siderolabs/testbed-glibc")), "the replaced entry is gone");
    const helloEntry = entries.find((e) => e.path === "acme/acme-hello");
    assert.equal(helloEntry?.author, "boot-assets test bed");
    assert.equal(helloEntry?.description, hello.description);
    assert.equal(entries.find((e) => e.path === "acme/testbed-glibc")?.description, glibc.description);
    // Upstream entries keep their lines, authors and descriptions.
    const original = await readWithSkopeoAndTar(from, join(scratch, "skopeo-from"));
    const before = parseIndependently(original.imageDigests, original.descriptions);
    for (const entry of before.entries.filter((e) => e.path !== "siderolabs/testbed-glibc"))
      assert.deepEqual(
        entries.find((e) => e.path === entry.path),
        entry,
      );
  });

  test("read back by the project's catalog reader and the factory's catalog image reader", async () => {
    const verifier = await SignatureVerifier.create(client, {
      disabled: false,
      publicKeyFile: testbedPub,
      identities: [],
    });
    const image = await verifier.verify(target());
    assert.equal(image.digest, merged.digest);
    const files = await readCatalogFiles(image, ["image-digests", "descriptions.yaml"]);
    const catalog = ExtensionCatalog.parse(files.get("image-digests") ?? "", files.get("descriptions.yaml"));
    assert.equal(catalog.entries.length, 6);
    const entry = catalog.find("acme/acme-hello");
    assert.equal(entry?.tag, "1.2.3");
    assert.equal(entry?.digest, hello.digest);
    assert.equal(entry?.host, registry.host);
    assert.equal(entry?.description, hello.description);
    assert.equal(catalog.find("siderolabs/testbed-glibc"), undefined);
  });

  test("the factory's sources, pointed at the merged catalog, list upstream and custom extensions (verified)", async () => {
    const config = await factoryConfig(
      [
        "-image-registry",
        registry.host,
        "-insecure-image-registry",
        "-container-signature-pubkey",
        testbedPub,
        "-extension-manifest-image",
        "acme/extensions",
      ],
      join(scratch, "factory-data"),
    );
    const sources = createSources(config, { client, log: new RecordingLog() });
    await sources.start();
    const app = await sourcesApp(sources);
    try {
      const res = await app.inject({ method: "GET", url: `/version/${version}/extensions/official` });
      assert.equal(res.statusCode, 200, res.body);
      const listed = res.json() as { name: string; digest: string; description: string }[];
      assert.deepEqual(listed.map((e) => e.name).sort(), [
        "acme/acme-hello",
        "acme/testbed-glibc",
        "siderolabs/testbed-dummy",
        "siderolabs/testbed-hello",
        "siderolabs/testbed-legacy",
        "siderolabs/testbed-ucode",
      ]);
      assert.equal(listed.find((e) => e.name === "acme/acme-hello")?.digest, hello.digest);
      assert.equal(listed.find((e) => e.name === "acme/acme-hello")?.description, hello.description);
    } finally {
      await app.close();
      await sources.stop();
    }
  });

  test("skopeo inspect of the pushed catalog", async () => {
    const info = JSON.parse(await skopeo(["inspect", "--tls-verify=false", `docker://${target()}`])) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
      Os: string;
    };
    assert.equal(info.Digest, merged.digest);
    assert.equal(info.Layers.length, 1);
    assert.equal(info.Architecture, "amd64");
    assert.equal(info.Os, "linux");
  });

  test("the signature verifies with boot-assets verify, and not with another key", async () => {
    const ok = await runCli(["verify", target(), "--key", testbedPub, "--insecure"], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout.toString("utf8"), new RegExp(merged.digest));
    const wrong = await runCli(["verify", target(), "--key", otherPub, "--insecure"], env);
    assert.notEqual(wrong.code, 0);
  });

  test("same inputs, same digest: a second merge written to an OCI layout", async () => {
    const dir = join(scratch, "again.oci");
    const again = await runCli(
      [
        "catalog",
        "merge",
        "--from",
        from,
        "--add",
        `${hello.ref}@${hello.digest}`,
        "--add",
        `${glibc.ref}@${glibc.digest}`,
        "--tag",
        target(),
        "--output",
        dir,
        "--no-module-check",
        "--insecure",
      ],
      env,
      120_000,
    );
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout.toString("utf8"), new RegExp(`^wrote oci:${dir}:${version} ${merged.digest} `, "m"));
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]?.digest, merged.digest);
    assert.match(again.stderr, /not scanned for kernel modules/);
  });

  test("sources verified keylessly against the test Sigstore, or by key; an unsigned-by-either image is refused", async () => {
    const out = join(scratch, "testbed");
    const identity = JSON.parse(await readFile(join(out, "identity.json"), "utf8")) as {
      issuer: string;
      subject: string;
    };
    const quoteRe = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    const keyless = [
      "--verify-trusted-root",
      join(out, "trusted_root.json"),
      "--verify-certificate-identity-regexp",
      quoteRe(identity.subject),
      "--verify-certificate-oidc-issuer-regexp",
      quoteRe(identity.issuer),
    ];
    const merge = (dir: string, extra: string[]) =>
      runCli(
        [
          "catalog",
          "merge",
          "--from",
          from,
          "--add",
          `${hello.ref}@${hello.digest}`,
          "--tag",
          target(),
          "--output",
          join(scratch, dir),
          "--insecure",
          ...extra,
        ],
        env,
        120_000,
      );
    // The test bed's images carry keyless signatures too; acme-hello only the key's.
    const both = await merge("keyless-and-key.oci", [...keyless, "--verify-key", testbedPub]);
    assert.equal(both.code, 0, both.stderr);
    const keylessOnly = await merge("keyless-only.oci", keyless);
    assert.equal(keylessOnly.code, 6, keylessOnly.stderr);
    assert.match(keylessOnly.stderr, /acme\/acme-hello/);
    assert.equal(existsSync(join(scratch, "keyless-only.oci")), false, "nothing written");
    const unpaired = await merge("unpaired.oci", keyless.slice(0, 4));
    assert.equal(unpaired.code, 2);
    assert.match(unpaired.stderr, /in pairs/);
  });

  test("catalog show prints a table of the merged catalog", async () => {
    const shown = await runCli(["catalog", "show", target(), "--insecure", "--verify-key", testbedPub], env);
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stdout.toString("utf8").trimEnd().split("\n");
    assert.match(lines[0] ?? "", new RegExp(`@${merged.digest}: 6 entries$`));
    assert.match(lines[1] ?? "", /^NAME\s+TAG\s+DIGEST\s+AUTHOR\s+DESCRIPTION$/);
    assert.equal(lines.length, 2 + 6);
    const row = lines.find((l) => l.startsWith("acme/acme-hello "));
    assert.ok(row, shown.stdout.toString());
    const cells = row.split(/\s{2,}/);
    assert.deepEqual(cells, [
      "acme/acme-hello",
      "1.2.3",
      hello.digest,
      "boot-assets test bed",
      "The acme hello service (test). Second line.",
    ]);
  });

  test("catalog diff lists added, removed and changed entries", async () => {
    const diffed = await runCli(["catalog", "diff", from, target(), "--insecure"], env);
    assert.equal(diffed.code, 0, diffed.stderr);
    const text = diffed.stdout.toString("utf8");
    assert.match(text, /^- siderolabs\/testbed-glibc:2\.36-v1\.10\.3 sha256:[0-9a-f]{64}$/m);
    assert.match(text, new RegExp(`^\\+ acme/acme-hello:1\\.2\\.3 ${hello.digest}$`, "m"));
    assert.match(text, new RegExp(`^\\+ acme/testbed-glibc:2\\.40 ${glibc.digest}$`, "m"));
    assert.match(text, /^2 added, 1 removed, 0 changed, 4 unchanged$/m);
  });

  test("bad input: an image without manifest.yaml is refused, naming it, and nothing is written", async () => {
    const ref = `${registry.host}/acme/not-an-extension:1`;
    const digest = await pushExtension(
      client,
      ref,
      "1",
      undefined,
      [{ type: "file", path: "usr/local/share/x", content: Buffer.from("x\n") }],
      scratch,
    );
    const badTag = `${registry.host}/acme/extensions:bad`;
    const result = await runCli(
      ["catalog", "merge", "--from", from, "--add", `${ref}@${digest}`, "--tag", badTag, "--push", "--insecure"],
      env,
      120_000,
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`acme/not-an-extension@${digest}: no manifest.yaml: not a system extension image`),
    );
    assert.ok(!(await client.repository(badTag).listTags()).includes("bad"));
  });

  test("bad input: two added images of one extension name", async () => {
    const result = await runCli(
      [
        "catalog",
        "merge",
        "--from",
        from,
        "--add",
        `${glibc.ref}@${glibc.digest}`,
        "--add",
        `${glibc.ref.replace(":2.40", ":again")}@${glibc.digest}`,
        "--tag",
        `${registry.host}/acme/extensions:twice`,
        "--output",
        join(scratch, "twice.oci"),
        "--no-module-check",
        "--insecure",
      ],
      env,
      120_000,
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /two added images are the extension "testbed-glibc"/);
  });
});
