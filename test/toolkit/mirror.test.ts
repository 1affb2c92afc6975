// `boot-assets mirror` between two real registries (Debian's docker-registry, CNCF distribution 2.8, which has
// no referrers API: bundles travel through the `sha256-<hex>` fallback tag). The test bed release of one
// version is published, signed, into the source; one extension is re-signed with a Sigstore bundle only (its
// legacy `.sig` deleted), so both signature kinds must travel. The mirror is then checked with skopeo (tags,
// raw manifests byte for byte), a second run must copy nothing, the factory started against the mirror with
// verification on must serve the version, the catalog and an initramfs with the bundle-signed extension,
// and a tampered source image must be refused by name with nothing copied.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { RegistryClient } from "../../src/oci/client/index.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { signatureTag } from "../../src/signing/cosign-format.ts";
import { signImage } from "../../src/signing/sign.ts";
import { findBundleReferrers, readReferrerBundle } from "../../src/signing/signature-sources.ts";
import { testbedArches } from "../../src/testbed/debian.ts";
import { publishTestbedRelease, type ReleaseImage, type ReleaseSummary } from "../../src/testbed/release.ts";
import { loadOrCreateReleaseKeys } from "../../src/testbed/release-keys.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  startSeedFactory,
  waitFor200,
} from "../factory/service-harness.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { skopeo } from "../realclients/skopeo.ts";

// 1.12: installer-base (not installer), overlays, talosctl-all (src/talos/version-rules.ts).
const version = "v1.12.11";
const bundleOnly = "siderolabs/testbed-dummy";

/** RE2 source matching exactly `text`. */
const literal = (text: string) => text.replace(/[\\^$.|?*+()[\]{}]/g, "\\$&");

function figure(stdout: string, pattern: RegExp): number {
  const match = pattern.exec(stdout);
  assert.ok(match, `${pattern} in:\n${stdout}`);
  return Number(match[1]);
}

describe("boot-assets mirror", () => {
  let dir: string;
  let source: RunningRegistry;
  let mirror: RunningRegistry;
  let client: RegistryClient;
  let summary: ReleaseSummary;
  let images: ReleaseImage[];
  let outDir: string;
  let env: NodeJS.ProcessEnv;
  let verification: string[];
  let bundleDigest: Digest;

  const run = (args: string[]) => runCli(["mirror", ...args, ...verification], env, 300_000);
  const mirrorArgs = (to: string) => [
    "--talos-version",
    version,
    "--from",
    source.host,
    "--to",
    to,
    "--extensions",
    "all",
    "--overlays",
    "all",
  ];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mirror-"));
    [source, mirror] = await Promise.all([startDistribution(), startDistribution()]);
    client = new RegistryClient({ insecure: [source.host, mirror.host], retries: 0 });
    outDir = join(dir, "out");
    // Both architectures, as `testbed release` publishes them: the imager, installers and extensions are
    // linux/amd64 + linux/arm64 indexes, copied whole.
    summary = await publishTestbedRelease({
      registry: source.host,
      client,
      out: outDir,
      versions: [version],
      arches: testbedArches,
    });
    images = (summary.versions[0] as { images: ReleaseImage[] }).images;
    // One extension signed by a bundle referrer only: the legacy `.sig` removed after the bundle is added.
    const keys = await loadOrCreateReleaseKeys(join(bootAssetsCacheDir(), "testbed", "keys"));
    const dummy = images.find((i) => i.repository === bundleOnly) as ReleaseImage;
    const repository = client.repository(`${source.host}/${bundleOnly}`);
    await signImage(repository, dummy.digest, keys.keylessSigner, {
      dockerReference: `${source.host}/${bundleOnly}`,
      bundle: true,
    });
    const sig = await repository.statManifest(signatureTag(dummy.digest));
    await repository.deleteManifest((sig as { digest: Digest }).digest);
    const [bundle] = await findBundleReferrers(repository, dummy.digest);
    bundleDigest = (bundle as { digest: Digest }).digest;
    env = isolatedEnv(join(dir, "home"));
    verification = [
      "-container-signature-pubkey",
      join(outDir, "cosign.pub"),
      "-container-signature-trusted-root",
      join(outDir, "trusted_root.json"),
      "-container-signature-subject-regexp",
      literal(summary.identity.subject),
      "-container-signature-issuer",
      summary.identity.issuer,
    ];
  });
  after(async () => {
    await client?.close();
    await Promise.all([source?.stop(), mirror?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let firstStdout = "";

  it("reports every command-line problem at once, before reaching any registry", async () => {
    const result = await runCli(
      ["mirror", "--talos-version", "1.x", "--to", "not a registry", "--concurrency", "0", "extra"],
      env,
    );
    assert.equal(result.code, 2, result.stderr);
    for (const problem of [
      "-from is required",
      "--talos-version: ",
      '--to "not a registry": expected registry[/namespace]',
      "--concurrency: expected a whole number from 1 to 32, not 0",
      "unexpected argument(s): extra",
    ])
      assert.ok(result.stderr.includes(problem), `${problem} in:\n${result.stderr}`);
  });

  it("picks the images by the version rules: for 1.8 the installer, overlays, no talosctl-all (all named when missing)", async () => {
    // The source holds no v1.8.2. Upstream picks installer-base only from 1.10 (image-factory
    // internal/artifacts/fetch.go InstallerImageName, talos quirks SupportsUnifiedInstaller), overlays exist from
    // 1.7 (quirks SupportsOverlay) and talosctl-all from 1.11 (quirks SupportsFactoryTalosctlDownload).
    const args = mirrorArgs(`${mirror.host}/old`);
    args[1] = "v1.8.2";
    const result = await run(args.slice(0, 6));
    assert.equal(result.code, 3, result.stderr);
    const named = [...result.stderr.matchAll(/^ {2}\S+\/(siderolabs\/[a-z-]+):v1\.8\.2: /gm)].map((m) => m[1]).sort();
    assert.deepEqual(named, [
      "siderolabs/extensions",
      "siderolabs/imager",
      "siderolabs/installer",
      "siderolabs/overlays",
    ]);
  });

  it("refuses an extension the catalog does not list, naming what it lists, and copies nothing", async () => {
    const args = mirrorArgs(`${mirror.host}/unknown`);
    args.splice(args.indexOf("all"), 1, "testbed-dummy,no-such-extension");
    const result = await run(args);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /extension\(s\) not in the Talos v1\.12\.11 catalog: no-such-extension \(it lists: .*siderolabs\/testbed-dummy/,
    );
    const catalog = (await (await fetch(`${mirror.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, []);
  });

  it("resumes: a destination already holding the imager (copied by skopeo) gets only the rest", async (t) => {
    const imager = images.find((i) => i.kind === "imager") as ReleaseImage;
    assert.ok((imager.platforms ?? []).length === 2, "the imager is a two-platform index");
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      `docker://${source.host}/${imager.repository}:${imager.tag}`,
      `docker://${mirror.host}/partial/${imager.repository}:${imager.tag}`,
    ]);
    // What skopeo stored: the blobs of each platform's image (shared ones once).
    const repository = client.repository(`${source.host}/${imager.repository}`);
    const blobs = new Map<string, number>();
    for (const child of imager.platforms ?? []) {
      const record = await repository.getManifest(child.digest);
      const manifest = JSON.parse(record.body.toString("utf8")) as {
        config: { digest: string; size: number };
        layers: Array<{ digest: string; size: number }>;
      };
      for (const d of [manifest.config, ...manifest.layers]) blobs.set(d.digest, d.size);
    }
    const present = [...blobs.values()].reduce((a, b) => a + b, 0);

    const args = mirrorArgs(`${mirror.host}/partial`).slice(0, 6);
    const result = await run(args);
    assert.equal(result.code, 0, result.stderr);
    const stdout = result.stdout.toString();
    t.diagnostic(`partial run: ${stdout.trim().replaceAll("\n", "; ")}`);
    assert.match(
      result.stderr,
      new RegExp(`^present ${literal(`${mirror.host}/partial/${imager.repository}:${imager.tag}`)} `, "m"),
    );
    assert.equal(figure(stdout, /\((\d+) already present\)/), 1);
    assert.equal(figure(stdout, /^blobs \d+ copied, (\d+) present/m), blobs.size);
    assert.equal(figure(stdout, /^bytes \d+ copied \([^)]*\), (\d+) present/m), present);
    // Its signature came anyway.
    const sig = await client
      .repository(`${mirror.host}/partial/${imager.repository}`)
      .statManifest(signatureTag(imager.digest));
    assert.ok(sig !== undefined);
  });

  it("copies every image of the release by digest, under its tag, with progress and a summary", async (t) => {
    const result = await run(mirrorArgs(mirror.host));
    assert.equal(result.code, 0, result.stderr);
    firstStdout = result.stdout.toString();
    t.diagnostic(`first run: ${firstStdout.trim().replaceAll("\n", "; ")}`);
    // The test bed's own list of what it published for the version: every kind the factory reads.
    assert.deepEqual([...new Set(images.map((i) => i.kind))].sort(), [
      "extension",
      "extensions-catalog",
      "imager",
      "installer",
      "overlay",
      "overlays-catalog",
      "talosctl-all",
    ]);
    for (const image of images) {
      const at = await client.repository(`${mirror.host}/${image.repository}`).statManifest(image.tag);
      assert.equal(at?.digest, image.digest, `${image.repository}:${image.tag}`);
      for (const child of image.platforms ?? []) {
        const stored = await client.repository(`${mirror.host}/${image.repository}`).statManifest(child.digest);
        assert.equal(stored?.digest, child.digest, `${image.repository} ${child.arch}`);
      }
      assert.match(result.stderr, new RegExp(`copied  ${literal(`${mirror.host}/${image.repository}:${image.tag}`)} `));
    }
    assert.equal(figure(firstStdout, /^images (\d+) /m), images.length);
    assert.ok(figure(firstStdout, /^bytes (\d+) copied/m) > 0);
    assert.equal(figure(firstStdout, /^blobs \d+ copied, (\d+) present/m), 0);
    // The installer-base of 1.12, not the installer (src/talos/version-rules.ts).
    assert.ok(images.some((i) => i.repository === "siderolabs/installer-base"));
    const installer = await client.repository(`${mirror.host}/siderolabs/installer`).statManifest(version);
    assert.equal(installer, undefined);
  });

  it("copies the signatures: skopeo lists the .sig tags and reads them byte for byte as at the source", async () => {
    for (const image of images) {
      const tag = signatureTag(image.digest);
      const listed = JSON.parse(
        await skopeo(["list-tags", "--tls-verify=false", `docker://${mirror.host}/${image.repository}`]),
      ) as { Tags: string[] };
      if (image.repository === bundleOnly) {
        assert.ok(!listed.Tags.includes(tag), "the bundle-only extension has no .sig");
        continue;
      }
      assert.ok(listed.Tags.includes(tag), `${image.repository}: ${listed.Tags.join(", ")}`);
      const [atSource, atMirror] = await Promise.all(
        [source.host, mirror.host].map((host) =>
          skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${host}/${image.repository}:${tag}`]),
        ),
      );
      assert.equal(atMirror, atSource);
      const layers = (JSON.parse(atMirror as string) as { layers: Array<{ annotations?: Record<string, string> }> })
        .layers;
      assert.equal(layers.length, 2, "the key and the keyless signature");
      for (const layer of layers) assert.ok(layer.annotations?.["dev.cosignproject.cosign/signature"] !== undefined);
    }
  });

  it("copies the bundle referrer and lists it in the mirror's fallback index", async () => {
    const dummy = images.find((i) => i.repository === bundleOnly) as ReleaseImage;
    const repository = client.repository(`${mirror.host}/${bundleOnly}`);
    const referrers = await findBundleReferrers(repository, dummy.digest);
    assert.deepEqual(
      referrers.map((r) => r.digest),
      [bundleDigest],
    );
    const atMirror = await readReferrerBundle(repository, referrers[0] as (typeof referrers)[0], dummy.digest);
    const sourceRepository = client.repository(`${source.host}/${bundleOnly}`);
    const [atSource] = await findBundleReferrers(sourceRepository, dummy.digest);
    assert.ok(
      atMirror.equals(await readReferrerBundle(sourceRepository, atSource as (typeof referrers)[0], dummy.digest)),
    );
    const fallback = await skopeo([
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${mirror.host}/${bundleOnly}:${dummy.digest.replace(":", "-")}`,
    ]);
    assert.ok(fallback.includes(bundleDigest));
  });

  it("a second run copies nothing", async (t) => {
    const result = await run(mirrorArgs(mirror.host));
    assert.equal(result.code, 0, result.stderr);
    const stdout = result.stdout.toString();
    t.diagnostic(`second run: ${stdout.trim().replaceAll("\n", "; ")}`);
    assert.equal(figure(stdout, /^bytes (\d+) copied/m), 0);
    assert.equal(figure(stdout, /^blobs (\d+) copied/m), 0);
    assert.equal(figure(stdout, /^manifests (\d+) written/m), 0);
    assert.equal(figure(stdout, /\((\d+) already present\)/), images.length);
    // Everything the first run copied is now found present.
    assert.equal(
      figure(stdout, /^bytes \d+ copied \([^)]*\), (\d+) present/m),
      figure(firstStdout, /^bytes (\d+) copied/m),
    );
  });

  describe("the factory against the mirror, verification on", () => {
    let running: FactoryUnderTest;
    let base: string;
    before(async () => {
      // The seed command line with the mirror as its image registry (its cache and schematic repositories
      // land there too), plus the test bed's keyless identity so bundle signatures verify.
      const testbed = { registry: mirror.host, outDir } as PublishedTestbed;
      running = await startSeedFactory(testbed, verification.slice(2));
      base = running.factory.url.replace(/\/$/, "");
      await waitFor200(`${base}/readyz`);
    });
    after(async () => {
      await running?.stop();
    });

    it("serves the version and its extension catalog from the mirror", async () => {
      const versions = (await (await fetch(`${base}/versions`)).json()) as string[];
      assert.ok(versions.includes(version), versions.join(", "));
      const res = await fetch(`${base}/version/${version}/extensions/official`);
      assert.equal(res.status, 200);
      const listed = ((await res.json()) as Array<{ name: string; digest: string }>).map(
        (e) => `${e.name}@${e.digest}`,
      );
      const published = images.filter((i) => i.kind === "extension").map((i) => `${i.repository}@${i.digest}`);
      assert.deepEqual(listed.sort(), published.sort());
    });

    it("builds an initramfs with the bundle-signed extension pulled from the mirror", async () => {
      const id = await createSchematic(
        base,
        `customization:\n  systemExtensions:\n    officialExtensions:\n      - ${bundleOnly}\n`,
      );
      const res = await fetch(`${base}/image/${id}/${version}/initramfs-amd64.xz`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, body.toString().slice(0, 500));
      assert.ok(body.length > 0);
    });
  });

  it("refuses a source image whose signature does not verify, naming it, and copies nothing", async () => {
    // talosctl-all:<version> replaced by a different manifest (same blobs, one annotation more), given the
    // genuine image's signatures: they sign the old digest, not this one.
    const talosctl = images.find((i) => i.kind === "talosctl-all") as ReleaseImage;
    const repository = client.repository(`${source.host}/${talosctl.repository}`);
    const genuine = await repository.getManifest(talosctl.digest);
    const manifest = JSON.parse(genuine.body.toString("utf8")) as { annotations?: Record<string, string> };
    manifest.annotations = { ...manifest.annotations, "test.tampered": "yes" };
    const tampered = await repository.putManifest(
      Buffer.from(JSON.stringify(manifest)),
      genuine.mediaType,
      talosctl.tag,
    );
    const sig = await repository.getManifest(signatureTag(talosctl.digest));
    await repository.putManifest(sig.body, sig.mediaType, signatureTag(tampered));

    const result = await run(mirrorArgs(`${mirror.host}/tampered`));
    assert.equal(result.code, 6, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`${literal(`${source.host}/${talosctl.repository}:${talosctl.tag}`)}: no signature matched`),
    );
    const catalog = (await (await fetch(`${mirror.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(
      catalog.repositories.filter((r) => r.startsWith("tampered/")),
      [],
    );
  });
});
