// The registry front `/v2/…` for installer images, against factories started from the seed command line
// with the test bed release in a real registry. Upstream references: internal/frontend/http/registry_routes.go
// (RouteV2 and its unit test registry_routes_test.go), registry.go (handleManifest, handleBlob, handleReferrers,
// handleImageProxy, handleExternalRegistry, PublishInstallerIndex), internal/integration/registry_test.go
// (RejectsUnknownImagesAndPaths, testInstallerImage, assertImageSignature, testLatestTagResolution).
//
// The test bed is released for linux/amd64 and linux/arm64, so every installer index carries both (amd64 first,
// as upstream builds them); containerd pulls each platform from the front and `file` reads the arm64 image's
// boot files as AArch64 PE images.
//
// Two factories share the test bed registry (and so the schematic repository):
//   seed      the seed command line as is: installers pushed to `<registry>/installer`, blobs redirected to
//             -installer-external-repository, Secure Boot on;
//   embedded  the seed without the installer repositories and Secure Boot: installers in the embedded store,
//             manifests and blobs answered by the factory itself. The real clients pull from this one.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import semver from "semver";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { isPlainHttpRegistry } from "../../src/factory/http/registry-route.ts";
import { startFactory } from "../../src/factory/run.ts";
import { defaultTestbedVersions } from "../../src/testbed/release.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { type RunningContainerd, startContainerd } from "../harness/containerd.ts";
import { skopeo } from "../realclients/skopeo.ts";
import { makeKeyFiles } from "./config-fixtures.ts";
import { layerFileContents, startEmbeddedFactory } from "./registry-front-harness.ts";
import {
  capturingLogger,
  createSchematic,
  type FactoryUnderTest,
  metricSum,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  startSeedFactory,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const execFileAsync = promisify(execFile);

/** A blob of containerd's content store, as bytes. */
async function ctrContent(containerd: RunningContainerd, digest: string): Promise<Buffer> {
  const { stdout } = await execFileAsync("ctr", ["-a", containerd.socket, "content", "get", digest], {
    encoding: "buffer",
    maxBuffer: 256 * 1024 * 1024,
  });
  return stdout;
}
const schematicYaml = `customization:
  extraKernelArgs:
    - registry.front=yes
`;

describe("registry front /v2", () => {
  let testbed: PublishedTestbed;
  let seed: FactoryUnderTest;
  let embedded: FactoryUnderTest;
  let seedBase: string;
  let base: string;
  let host: string;
  let id: string;
  let work: string;

  before(async () => {
    testbed = await publishTestbed({ arches: ["amd64", "arm64"] });
    seed = await startSeedFactory(testbed);
    embedded = await startEmbeddedFactory(testbed);
    seedBase = seed.factory.url;
    base = embedded.factory.url;
    host = new URL(base).host;
    await waitFor200(`${seedBase}/readyz`);
    await waitFor200(`${base}/readyz`);
    id = await createSchematic(base, schematicYaml);
    work = await mkdtemp(join(tmpdir(), "registry-front-"));
  });
  after(async () => {
    await seed?.stop();
    await embedded?.stop();
    await testbed?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe("routing and statuses (upstream RouteV2, handleManifest, handleBlob, handleReferrers)", () => {
    const unknownPath = (path: string) => `unknown registry path: ${JSON.stringify(path)}\n`;
    const rows: Array<{ rule: string; method?: string; path: () => string; status: number; body?: () => string }> = [
      { rule: "ping /v2", path: () => "/v2", status: 200, body: () => "" },
      { rule: "ping /v2/", path: () => "/v2/", status: 200, body: () => "" },
      { rule: "HEAD ping", method: "HEAD", path: () => "/v2/", status: 200 },
      // registry_test.go RejectsUnknownImagesAndPaths
      {
        rule: "three-segment repository",
        path: () => "/v2/a/b/c/manifests/v1",
        status: 404,
        body: () => unknownPath("/a/b/c/manifests/v1"),
      },
      {
        rule: "siderolabs tags other than list",
        path: () => "/v2/siderolabs/installer/tags/v1",
        status: 404,
        body: () => unknownPath("/siderolabs/installer/tags/v1"),
      },
      {
        rule: "source image outside the image map",
        path: () => `/v2/siderolabs/nonexistent/manifests/${version}`,
        status: 404,
        body: () => "unknown image: nonexistent\n",
      },
      { rule: "too few segments", path: () => "/v2/installer/x", status: 404, body: () => unknownPath("/installer/x") },
      {
        rule: "tags/list of a schematic repository",
        path: () => `/v2/installer/${id}/tags/list`,
        status: 404,
        body: () => unknownPath(`/installer/${id}/tags/list`),
      },
      {
        rule: "unknown schematic (malformed IDs too: storage/registry/registry.go)",
        path: () => `/v2/installer/aaaaaaaaaaaa/manifests/${version}`,
        status: 404,
        body: () => 'schematic ID "aaaaaaaaaaaa" not found\n',
      },
      {
        rule: "image name (getRequestedImage)",
        path: () => `/v2/foo/${id}/manifests/${version}`,
        status: 400,
        body: () => "invalid image: foo\n",
      },
      {
        rule: "image name on blobs",
        path: () => `/v2/foo/${id}/blobs/sha256:${"0".repeat(64)}`,
        status: 400,
        body: () => "invalid image: foo\n",
      },
      {
        rule: "unknown version",
        path: () => `/v2/installer/${id}/manifests/v1.99.0`,
        status: 404,
        body: () => "Talos version v1.99.0 is not available\n",
      },
      {
        rule: "Secure Boot off (profile.go EnhanceFromSchematic: secureboot.ErrDisabled is InvalidErrorTag)",
        path: () => `/v2/installer-secureboot/${id}/manifests/${version}`,
        status: 400,
        body: () => "error enhancing profile from schematic: secure boot is disabled\n",
      },
      {
        rule: "referrers of a non-digest",
        path: () => `/v2/installer/${id}/referrers/foo`,
        status: 404,
        body: () => "invalid referrers subject digest: foo\n",
      },
      {
        rule: "a digest passed through to the internal repository (nothing there: the registry's own error)",
        path: () => `/v2/installer/${id}/manifests/sha256:${"0".repeat(64)}`,
        status: 404,
      },
      {
        rule: "other methods (httprouter 405)",
        method: "POST",
        path: () => `/v2/installer/${id}/blobs/x`,
        status: 405,
      },
    ];
    for (const row of rows)
      it(`${row.method ?? "GET"} ${row.rule} → ${row.status}`, async () => {
        const res = await fetch(`${base}${row.path()}`, { method: row.method ?? "GET" });
        const text = await res.text();
        assert.equal(res.status, row.status, text);
        if (row.body) assert.equal(text, row.body());
        if (row.status === 405) assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
        if (row.status === 404 && row.body === undefined) {
          const wire = JSON.parse(text) as { errors: Array<{ code: string }> };
          assert.equal(wire.errors[0]?.code, "MANIFEST_UNKNOWN");
        }
      });

    it("blobs redirect with 307 to -installer-external-repository (seed), for GET and HEAD", async () => {
      const digest = `sha256:${"1".repeat(64)}`;
      for (const method of ["GET", "HEAD"]) {
        const res = await fetch(`${seedBase}/v2/installer/${id}/blobs/${digest}`, { method, redirect: "manual" });
        assert.equal(res.status, 307);
        assert.equal(
          res.headers.get("location"),
          `https://factory.example.test/v2/installer/installer/${id}/blobs/${digest}`,
        );
      }
    });

    it("source images are proxied from a plain-HTTP core registry, digests unchanged", async () => {
      const direct = await fetch(`http://${testbed.registry}/v2/siderolabs/installer-base/manifests/${version}`, {
        method: "HEAD",
        headers: { Accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json" },
      });
      assert.equal(direct.status, 200);
      const proxied = await fetch(`${base}/v2/siderolabs/installer-base/manifests/${version}`, {
        headers: { Accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json" },
      });
      assert.equal(proxied.status, 200);
      assert.equal(proxied.headers.get("docker-content-digest"), direct.headers.get("docker-content-digest"));
      const tags = await fetch(`${base}/v2/siderolabs/installer-base/tags/list`);
      assert.equal(tags.status, 200);
      assert.ok(((await tags.json()) as { tags: string[] }).tags.includes(version));
    });

    it("plain HTTP is decided as go-containerregistry's name.Registry.Scheme (else the proxy answers 503)", () => {
      assert.equal(isPlainHttpRegistry("ghcr.io", false), false);
      assert.equal(isPlainHttpRegistry("ghcr.io", true), true);
      for (const registry of ["localhost:5000", "127.0.0.1:5000", "10.1.2.3:5000", "172.16.0.1", "192.168.1.1:80"])
        assert.equal(isPlainHttpRegistry(registry, false), true, registry);
      assert.equal(isPlainHttpRegistry("172.32.0.1:5000", false), false);
    });
  });

  describe("a remote internal repository and -installer-external-repository (the seed)", () => {
    const image = "metal-installer";
    let digest: string;
    const internal = () => testbed.server.store.repository(`installer/${image}/${id}`);

    it("the manifest is built, pushed to <internal>/<image>/<schematic>, then redirected by digest", async () => {
      const res = await fetch(`${seedBase}/v2/${image}/${id}/manifests/${version}`, { redirect: "manual" });
      assert.equal(res.status, 307, await res.text());
      const location = res.headers.get("location") as string;
      const prefix = `https://factory.example.test/v2/installer/${image}/${id}/manifests/`;
      assert.ok(location.startsWith(prefix), location);
      digest = location.slice(prefix.length);
      assert.equal((await internal().statManifest(version))?.digest, digest);

      const keyFile = join(work, "seed-signing-key.pub");
      await writeFile(keyFile, await (await fetch(`${seedBase}/oci/cosign/signing-key.pub`)).text());
      const home = await mkdtemp(join(work, "home-"));
      const result = await runCli(
        ["verify", "--insecure", "--key", keyFile, `${testbed.registry}/installer/${image}/${id}:${version}`],
        isolatedEnv(home),
        120_000,
      );
      assert.equal(result.code, 0, result.stderr);
    });

    it("a tag whose index is not signed by the cache key is rebuilt and re-tagged, never answered", async () => {
      const repository = internal();
      const signed = await repository.getManifest(digest);
      const forged = JSON.parse(signed.body.toString("utf8")) as Record<string, unknown>;
      forged.annotations = { forged: "yes" };
      const forgedDigest = await repository.putManifest(Buffer.from(JSON.stringify(forged)), signed.mediaType, version);
      assert.notEqual(forgedDigest, digest);
      const res = await fetch(`${seedBase}/v2/${image}/${id}/manifests/${version}`, { redirect: "manual" });
      assert.equal(res.status, 307);
      assert.ok(res.headers.get("location")?.endsWith(`/manifests/${digest}`));
      assert.equal((await repository.statManifest(version))?.digest, digest);
      assert.ok(
        seed.logs.some((l) => l.msg === "installer image signature doesn't validate: rebuilding"),
        "the forged entry was seen and refused",
      );
    });
  });

  describe("pulling the installer (testInstallerImage)", () => {
    let indexDigest: string;
    const ref = () => `${host}/installer/${id}:${version}`;

    it("skopeo copies it: an OCI index of Docker schema-2 images, base + artifacts layers", async () => {
      const layout = join(work, "skopeo");
      await skopeo(["copy", "--src-tls-verify=false", `docker://${ref()}`, `oci:${layout}:${version}`], 600_000);
      const head = await fetch(`${base}/v2/installer/${id}/manifests/${version}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-type"), "application/vnd.oci.image.index.v1+json");
      indexDigest = head.headers.get("docker-content-digest") as string;
      const got = await fetch(`${base}/v2/installer/${id}/manifests/${indexDigest}`);
      const body = await got.text();
      assert.equal(got.headers.get("docker-content-digest"), indexDigest);
      assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(body)));
      const index = JSON.parse(body) as {
        manifests: Array<{ mediaType: string; platform: { architecture: string; os: string } }>;
      };
      // registry.go buildInstallImage: one Docker schema-2 image (go-containerregistry tarball.Image) per
      // architecture, amd64 then arm64, appended to an OCI index (empty.Index); registry_test.go
      // testInstallerImage expects linux/amd64 and linux/arm64.
      assert.deepEqual(
        index.manifests.map((m) => [m.mediaType, `${m.platform.os}/${m.platform.architecture}`]),
        [
          ["application/vnd.docker.distribution.manifest.v2+json", "linux/amd64"],
          ["application/vnd.docker.distribution.manifest.v2+json", "linux/arm64"],
        ],
      );

      const ociIndex = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
        manifests: Array<{ digest: string }>;
      };
      const blob = (digest: string) => readFile(join(layout, "blobs", "sha256", digest.slice("sha256:".length)));
      const manifest = JSON.parse((await blob(ociIndex.manifests[0]?.digest as string)).toString("utf8")) as {
        layers: Array<{ digest: string }>;
      };
      assert.equal(manifest.layers.length, 2, "installer image should have 2 layers: base and artifacts");
      const files = [
        ...(await layerFileContents(await blob(manifest.layers[0]?.digest as string))).keys(),
        ...(await layerFileContents(await blob(manifest.layers[1]?.digest as string))).keys(),
      ];
      // registry_test.go testInstallerImage: Talos ≥ 1.10 boots with systemd-boot (quirks UseSDBootForUEFI).
      for (const expected of ["bin/installer", "usr/install/amd64/vmlinuz.efi", "usr/install/amd64/systemd-boot.efi"])
        assert.ok(files.includes(expected), `${expected} missing from ${files.join(", ")}`);
    });

    it("its signature verifies against /oci/cosign/signing-key.pub with `boot-assets verify`", async () => {
      const keyRes = await fetch(`${base}/oci/cosign/signing-key.pub`);
      assert.equal(keyRes.status, 200);
      const keyFile = join(work, "signing-key.pub");
      await writeFile(keyFile, await keyRes.text());
      const home = await mkdtemp(join(work, "home-"));
      const result = await runCli(
        ["verify", "--insecure", "--key", keyFile, `${host}/installer/${id}@${indexDigest}`],
        isolatedEnv(home),
        120_000,
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout.toString("utf8"), new RegExp(`${indexDigest} legacy key`));
      // A key that did not sign it is refused.
      const other = join(work, "other.pub");
      await writeFile(other, (await readFile(join(testbed.outDir, "cosign.pub"))).toString("utf8"));
      const refused = await runCli(
        ["verify", "--insecure", "--key", other, `${host}/installer/${id}@${indexDigest}`],
        isolatedEnv(home),
      );
      assert.notEqual(refused.code, 0);
    });

    it("a second pull, `latest` and ctr are answered from the signed index without a rebuild", async () => {
      const metrics = async () => (await fetch(embedded.factory.metricsUrl as string)).text();
      const built = () => embedded.logs.filter((l) => l.msg === "installer image built, signed and tagged").length;
      assert.equal(built(), 1);
      const installerBuilds = metricSum(await metrics(), "image_factory_assets_built_total", 'output_kind="installer"');
      // One installer asset per architecture (amd64, arm64) went into the one index.
      assert.equal(installerBuilds, 2);

      await skopeo(["inspect", "--tls-verify=false", "--raw", `docker://${ref()}`]);
      assert.equal(built(), 1, "a second pull is no rebuild");
      // registry_test.go testLatestTagResolution: `latest` is the newest version that is not a pre-release —
      // the same image as that version's tag (built once for both).
      const newest = defaultTestbedVersions
        .filter((v) => semver.valid(v) !== null && semver.prerelease(v) === null)
        .sort(semver.rcompare)[0] as string;
      const latest = await fetch(`${base}/v2/installer/${id}/manifests/latest`, { method: "HEAD" });
      assert.equal(latest.status, 200);
      const tagged = await fetch(`${base}/v2/installer/${id}/manifests/${newest}`, { method: "HEAD" });
      assert.equal(tagged.status, 200);
      assert.equal(latest.headers.get("docker-content-digest"), tagged.headers.get("docker-content-digest"));
      if (newest === version) assert.equal(latest.headers.get("docker-content-digest"), indexDigest);
      const builds = built();
      assert.equal(builds, newest === version ? 1 : 2, "one build for `latest` and its version together");

      let containerd: RunningContainerd | undefined;
      try {
        containerd = await startContainerd();
        const running = containerd;
        const index = JSON.parse(await (await fetch(`${base}/v2/installer/${id}/manifests/${indexDigest}`)).text()) as {
          manifests: Array<{ digest: string; platform: { architecture: string } }>;
        };
        // One pull per platform, as a node of either architecture pulls it (containerd picks from the index).
        for (const [arch, machine] of [
          ["arm64", /Aarch64/],
          ["amd64", /x86-64/],
        ] as const) {
          await running.ctr(["image", "pull", "--plain-http", "--platform", `linux/${arch}`, ref()], 600_000);
          const listed = (await running.ctr(["image", "ls"])).stdout;
          const row = listed.split("\n").find((line) => line.startsWith(`${ref()} `));
          assert.ok(row?.includes(indexDigest), listed);
          const digest = index.manifests.find((m) => m.platform.architecture === arch)?.digest as string;
          const manifest = JSON.parse((await ctrContent(running, digest)).toString("utf8")) as {
            config: { digest: string };
            layers: Array<{ digest: string }>;
          };
          const config = JSON.parse((await ctrContent(running, manifest.config.digest)).toString("utf8")) as {
            architecture: string;
          };
          assert.equal(config.architecture, arch);
          // The artifacts layer holds this architecture's boot files, and `file` names their machine.
          const artifacts = await layerFileContents(await ctrContent(running, manifest.layers[1]?.digest as string));
          const names = [...artifacts.keys()].filter((name) => name.startsWith(`usr/install/${arch}/`)).sort();
          assert.deepEqual(names, [`usr/install/${arch}/systemd-boot.efi`, `usr/install/${arch}/vmlinuz.efi`]);
          for (const name of names) {
            const path = join(work, `${arch}-${name.replaceAll("/", "_")}`);
            await writeFile(path, artifacts.get(name) as Buffer);
            const { stdout } = await execFileAsync("file", ["-b", path]);
            assert.match(stdout, /^PE32\+ executable \(EFI application\)/, `${name}: ${stdout}`);
            assert.match(stdout, machine, `${name}: ${stdout}`);
          }
        }
      } finally {
        await containerd?.stop();
      }
      assert.equal(built(), builds, "no rebuild");
      assert.equal(
        metricSum(await metrics(), "image_factory_assets_built_total", 'output_kind="installer"'),
        2 * builds,
      );
    });

    it("blobs are served by the embedded store (HEAD and GET); referrers are an OCI index", async () => {
      const index = JSON.parse(await (await fetch(`${base}/v2/installer/${id}/manifests/${indexDigest}`)).text()) as {
        manifests: Array<{ digest: string }>;
      };
      const manifest = JSON.parse(
        await (await fetch(`${base}/v2/installer/${id}/manifests/${index.manifests[0]?.digest}`)).text(),
      ) as { config: { digest: string; size: number } };
      const head = await fetch(`${base}/v2/installer/${id}/blobs/${manifest.config.digest}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(manifest.config.size));
      assert.equal(head.headers.get("docker-content-digest"), manifest.config.digest);
      const config = Buffer.from(
        await (await fetch(`${base}/v2/installer/${id}/blobs/${manifest.config.digest}`)).arrayBuffer(),
      );
      assert.equal(`sha256:${createHash("sha256").update(config).digest("hex")}`, manifest.config.digest);
      const missing = await fetch(`${base}/v2/installer/${id}/blobs/sha256:${"2".repeat(64)}`);
      assert.equal(missing.status, 404);
      assert.equal(((await missing.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, "BLOB_UNKNOWN");

      const referrers = await fetch(`${base}/v2/installer/${id}/referrers/${indexDigest}?artifactType=x%2Fy`);
      assert.equal(referrers.status, 200);
      assert.equal(referrers.headers.get("content-type"), "application/vnd.oci.image.index.v1+json");
      assert.equal(referrers.headers.get("oci-filters-applied"), "artifactType");
      const body = (await referrers.json()) as { schemaVersion: number; manifests: unknown[] };
      assert.deepEqual(body, { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] });
    });

    it("concurrent first requests for one image make one build and get one digest (single-flight)", async () => {
      const image = "metal-installer";
      const answers = await Promise.all(
        Array.from({ length: 8 }, () => fetch(`${base}/v2/${image}/${id}/manifests/${version}`, { method: "HEAD" })),
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        Array(8).fill(200),
      );
      assert.equal(new Set(answers.map((a) => a.headers.get("docker-content-digest"))).size, 1);
      const builds = embedded.logs.filter(
        (l) => l.msg === "installer image built, signed and tagged" && l.image === image,
      ).length;
      assert.equal(builds, 1);
    });

    it("a client that goes away mid-build does not stop the build; the next request gets its result", async () => {
      const image = "nocloud-installer";
      const gone = new AbortController();
      const first = fetch(`${base}/v2/${image}/${id}/manifests/${version}`, { signal: gone.signal });
      setTimeout(() => gone.abort(), 300);
      await assert.rejects(first);
      const deadline = Date.now() + 120_000;
      const built = () =>
        embedded.logs.some((l) => l.msg === "installer image built, signed and tagged" && l.image === image);
      while (!built() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(built(), "the build went on without its client");
      assert.ok(
        embedded.logs.some((l) => l.msg === "client closed request while its installer was being prepared"),
        "the client left while the build was under way",
      );
      const again = await fetch(`${base}/v2/${image}/${id}/manifests/${version}`, { method: "HEAD" });
      assert.equal(again.status, 200);
      const builds = embedded.logs.filter(
        (l) => l.msg === "installer image built, signed and tagged" && l.image === image,
      ).length;
      assert.equal(builds, 1);
    });

    it("a source signed by another key: 502 naming the image and the rule; no installer tag pushed", async () => {
      const keys = await makeKeyFiles();
      const dataDir = join(keys.dir, "data");
      const wrongKey = join(keys.dir, "wrong.pub");
      const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      await writeFile(wrongKey, publicKey.export({ type: "spki", format: "pem" }));
      const argv = seedArgv(testbed, keys, dataDir).map((arg) => (arg.endsWith("cosign.pub") ? wrongKey : arg));
      const factory = await startFactory(await parseFactoryCommandLine(argv, {}), {
        logger: capturingLogger([]),
        print: () => {},
        processMetrics: false,
      });
      try {
        const res = await fetch(`${factory.url}/v2/installer/${id}/manifests/${version}`, { redirect: "manual" });
        const text = await res.text();
        assert.equal(res.status, 502, text);
        assert.match(text, /signature/);
        assert.match(text, /siderolabs\/(imager|installer-base):v1\.10\.3/);
        assert.equal(
          await testbed.server.store.repository(`installer/installer/${id}`).statManifest(version),
          undefined,
        );
      } finally {
        await factory.close();
        await keys.cleanup();
      }
    });

    it("the signature is the cosign legacy `.sig` image, read through the front (passed through)", async () => {
      const sig = await fetch(`${base}/v2/installer/${id}/manifests/${indexDigest.replace(":", "-")}.sig`);
      assert.equal(sig.status, 200);
      const payload = JSON.parse(await sig.text()) as { layers: Array<{ mediaType: string }> };
      assert.equal(payload.layers[0]?.mediaType, "application/vnd.dev.cosign.simplesigning.v1+json");
    });
  });
});
