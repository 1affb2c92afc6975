// The test bed release published into the embedded store, in process: every image a Talos release has, in
// upstream's layouts and following the version rules, catalogs that point at the extensions' real digests,
// extensions that validate (and the incompatible one that is refused), reproducible digests, and re-runs that
// add no signature. Expected values come from upstream (siderolabs/talos pkg/imager, quirks) and the Debian packages, not from the code.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { access, constants, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { systemdStubInfo } from "../../src/formats/uki.ts";
import { openStore, type RegistryStore } from "../../src/registry/store.ts";
import { Annotation } from "../../src/signing/cosign-format.ts";
import { validateExtensionTree } from "../../src/talos/extension.ts";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { defaultTestbedVersions, publishTestbedRelease, type ReleaseSummary } from "../../src/testbed/release.ts";
import {
  expectedCoreImages,
  flattenImage,
  type RepositoryFor,
  readManifest,
  readText,
  sha256File,
  signatureLayerCount,
} from "./release-helpers.ts";

/**
 * The versions and what upstream's quirks say about each (< 1.10: lib/modules + installer; from 1.10 usr/…),
 * and whether the imager carries the SBOM (talos Dockerfile: install-artifacts-amd64 copies
 * talos-amd64.spdx.json to usr/install/amd64/ from v1.11.0).
 */
const versions = [
  {
    version: "v1.8.2",
    modules: "lib/modules",
    firmware: "lib/firmware",
    installer: "siderolabs/installer",
    profileStub: false,
    sbom: false,
  },
  {
    version: "v1.10.3",
    modules: "usr/lib/modules",
    firmware: "usr/lib/firmware",
    installer: "siderolabs/installer-base",
    profileStub: true,
    sbom: false,
  },
  // A pre-release follows its release's rules; a tag that is not semver gets the newest rules.
  {
    version: "v1.14.0-rc.1",
    modules: "usr/lib/modules",
    firmware: "usr/lib/firmware",
    installer: "siderolabs/installer-base",
    profileStub: true,
    sbom: true,
  },
  {
    version: "latest-dev",
    modules: "usr/lib/modules",
    firmware: "usr/lib/firmware",
    installer: "siderolabs/installer-base",
    profileStub: true,
    sbom: true,
  },
];
const extensionNames = ["testbed-dummy", "testbed-glibc", "testbed-hello", "testbed-legacy", "testbed-ucode"];
const registry = "registry.test:5000";
const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** talos quirks SupportsFactoryTalosctlDownload: from 1.11.0-alpha.3 (pre-release dropped), and any non-semver tag. */
function hasTalosctlAll(version: string): boolean {
  const core = /^v?(\d+)\.(\d+)/.exec(version);
  return core === null || Number(core[1]) > 1 || Number(core[2]) >= 11;
}

function digestsOf(summary: ReleaseSummary): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of summary.versions)
    for (const image of v.images) out.set(`${image.repository}:${image.tag}`, image.digest);
  return out;
}

describe("test bed release into the embedded store", () => {
  let scratch: string;
  let store: RegistryStore;
  let repositoryFor: RepositoryFor;
  let summary: ReleaseSummary;
  let packages: TestbedPackages;
  let treeCount = 0;
  const keysDir = () => join(scratch, "keys");
  const tree = () => join(scratch, `tree-${treeCount++}`);

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "testbed-release-"));
    store = await openStore(join(scratch, "store"));
    repositoryFor = (name) => store.repository(name);
    packages = await fetchTestbedPackages();
    summary = await publishTestbedRelease({
      registry,
      repositoryFor,
      versions: versions.map((v) => v.version),
      keysDir: keysDir(),
      out: join(scratch, "out"),
    });
  });
  after(async () => {
    await store?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("the default versions span 1.8, 1.10 and 1.12–1.14 and include a pre-release and a non-semver tag", () => {
    for (const minor of [8, 10, 12, 13, 14])
      assert.ok(
        defaultTestbedVersions.some((v) => new RegExp(`^v1\\.${minor}\\.\\d+(-[0-9A-Za-z.]+)?$`).test(v)),
        `a 1.${minor} version in ${defaultTestbedVersions.join(", ")}`,
      );
    assert.ok(defaultTestbedVersions.some((v) => /^v\d+\.\d+\.\d+-[0-9A-Za-z.]+$/.test(v)));
    assert.ok(defaultTestbedVersions.some((v) => !/^v?\d+\.\d+/.test(v)));
  });

  test("every version has its imager, installer, catalogs and five extensions under their tags", async () => {
    for (const { version, installer } of versions) {
      for (const ref of expectedCoreImages(version, installer)) {
        const [name, tag] = ref.split(":") as [string, string];
        const stat = await repositoryFor(name).statManifest(tag);
        assert.ok(stat, `${ref} exists`);
        assert.equal(stat.mediaType, "application/vnd.oci.image.manifest.v1+json");
      }
      const otherInstaller = installer.endsWith("-base") ? "siderolabs/installer" : "siderolabs/installer-base";
      assert.equal(
        await repositoryFor(otherInstaller).statManifest(version),
        undefined,
        `no ${otherInstaller}:${version}`,
      );
      const released = summary.versions.find((v) => v.version === version);
      assert.deepEqual(
        released?.images
          .filter((i) => i.kind === "extension")
          .map((i) => i.repository.split("/")[1])
          .sort(),
        extensionNames,
      );
    }
  });

  test("talosctl-all:<v> from Talos 1.11 (and for a non-semver tag), binaries at its root named talosctl-<os>-<arch>[.exe]; none before", async () => {
    // image-factory internal/artifacts/versions.go extractTalosctlTuples reads the root of the exported image;
    // talos quirks SupportsFactoryTalosctlDownload: from 1.11.0-alpha.3, the pre-release part dropped.
    for (const { version } of versions) {
      const expected = hasTalosctlAll(version);
      const stat = await repositoryFor("siderolabs/talosctl-all").statManifest(version);
      if (!expected) {
        assert.equal(stat, undefined, `no talosctl-all:${version}`);
        continue;
      }
      assert.ok(stat, `talosctl-all:${version} exists`);
      const dir = tree();
      await flattenImage(repositoryFor("siderolabs/talosctl-all"), version, dir);
      const names = (await readdir(dir)).sort();
      assert.ok(names.includes("talosctl-linux-amd64") && names.includes("talosctl-windows-amd64.exe"), names.join());
      for (const name of names) {
        assert.match(name, /^talosctl-[a-z0-9]+-[a-z0-9]+(\.exe)?$/);
        const text = await readText(dir, name);
        assert.ok(text.includes(name) && text.includes(version), `${name} says what it stands for`);
      }
      assert.equal(await signatureLayerCount(repositoryFor("siderolabs/talosctl-all"), stat.digest), 2);
    }
  });

  test("the extensions catalog lists every extension with the digest its tag resolves to, as upstream writes it", async () => {
    for (const { version } of versions) {
      const dir = tree();
      await flattenImage(repositoryFor("siderolabs/extensions"), version, dir);
      assert.deepEqual((await readdir(dir)).sort(), ["descriptions.yaml", "image-digests"]);
      const lines = (await readText(dir, "image-digests")).split("\n").filter((l) => l !== "");
      assert.equal(lines.length, extensionNames.length);
      const descriptions = parseYaml(await readText(dir, "descriptions.yaml")) as Record<
        string,
        { author: string; description: string }
      >;
      assert.deepEqual(Object.keys(descriptions).sort(), [...lines].sort());
      const names: string[] = [];
      for (const line of lines) {
        const match = /^ghcr\.io\/(siderolabs\/[a-z0-9-]+):([^@]+)@(sha256:[0-9a-f]{64})$/.exec(line);
        assert.ok(match, `catalog line ${line}`);
        const [, name, tag, digest] = match as unknown as [string, string, string, string];
        names.push(name.split("/")[1] as string);
        assert.equal(
          (await repositoryFor(name).statManifest(tag))?.digest,
          digest,
          `${name}:${tag} is what ${version}'s catalog says`,
        );
        assert.ok(descriptions[line]?.description.trim().length, `${line} has a description`);
        assert.ok(descriptions[line]?.author, `${line} has an author`);
      }
      assert.deepEqual(names.sort(), extensionNames);
      const overlays = tree();
      await flattenImage(repositoryFor("siderolabs/overlays"), version, overlays);
      // The board overlay (release-overlay.ts), listed under each of its installers' names, pinned by digest.
      const listed = (parseYaml(await readText(overlays, "overlays.yaml")) as { overlays: Record<string, string>[] })
        .overlays;
      assert.deepEqual(
        listed.map((o) => [o.name, o.image]),
        [
          ["testbed_board", "ghcr.io/siderolabs/sbc-testbed:v0.1.0"],
          ["testbed_broken", "ghcr.io/siderolabs/sbc-testbed:v0.1.0"],
          ["testbed_arm64_board", "ghcr.io/siderolabs/sbc-testbed:v0.1.0"],
        ],
      );
      for (const o of listed)
        assert.equal((await repositoryFor("siderolabs/sbc-testbed").statManifest("v0.1.0"))?.digest, o.digest);
    }
  });

  test("the imager holds the four boot files (and the SBOM from 1.11); initramfs.xz is zstd; vmlinuz is Debian's kernel", async () => {
    const debianKernel = await sha256File(packages.kernel.vmlinuz);
    for (const { version, profileStub, sbom } of versions) {
      const dir = tree();
      const manifest = await flattenImage(repositoryFor("siderolabs/imager"), version, dir);
      assert.ok(manifest.layers.every((l) => l.mediaType === "application/vnd.oci.image.layer.v1.tar+gzip"));
      const install = join(dir, "usr/install/amd64");
      assert.deepEqual(
        (await readdir(install)).sort(),
        ["initramfs.xz", "systemd-boot.efi", "systemd-stub.efi", ...(sbom ? ["talos.spdx.json"] : []), "vmlinuz"],
        version,
      );
      if (sbom) {
        // An SPDX 2.3 document describing the Debian packages the boot files come from.
        const document = JSON.parse(await readText(install, "talos.spdx.json"));
        assert.equal(document.spdxVersion, "SPDX-2.3");
        assert.equal(document.name, "talos-amd64");
        const described = new Map(
          (document.packages as { name: string; versionInfo: string; checksums: { checksumValue: string }[] }[]).map(
            (p) => [p.name, [p.versionInfo, p.checksums[0]?.checksumValue]],
          ),
        );
        assert.deepEqual(described.get(packages.kernel.name), [packages.kernel.version, packages.kernel.sha256]);
        const boot = profileStub ? packages.systemdBootProfiles : packages.systemdBoot;
        assert.deepEqual(described.get(boot.name), [boot.version, boot.sha256]);
        assert.equal(document.relationships.length, document.packages.length);
      }
      assert.deepEqual((await readFile(join(install, "initramfs.xz"))).subarray(0, 4), zstdMagic);
      assert.equal(await sha256File(join(install, "vmlinuz")), debianKernel);
      // From 1.10 (UKI profiles, talos quirks SupportsUKIProfiles) systemd-boot and the stub are trixie's
      // (systemd ≥ 257), which boot multi-profile UKIs; before, Debian 12's (252).
      const expected = profileStub ? packages.systemdBootProfiles : packages.systemdBoot;
      assert.equal(await sha256File(join(install, "systemd-boot.efi")), await sha256File(expected.bootEfi));
      assert.equal(await sha256File(join(install, "systemd-stub.efi")), await sha256File(expected.stubEfi));
      const info = systemdStubInfo(await readFile(join(install, "systemd-stub.efi")));
      assert.equal(info.supportsProfiles, profileStub, `${version}: ${info.loaderInfo}`);
    }
  });

  test("the installer image's /bin/installer runs and names its Talos version and artifacts", async () => {
    for (const { version, installer } of versions) {
      const dir = tree();
      const manifest = await flattenImage(repositoryFor(installer), version, dir);
      const config = JSON.parse(
        (await readManifestConfig(repositoryFor(installer), manifest.config.digest)).toString(),
      );
      assert.deepEqual(config.config.Entrypoint, ["/bin/installer"]);
      assert.equal(config.architecture, "amd64");
      await access(join(dir, "bin/installer"), constants.X_OK);
      const run = spawnSync(join(dir, "bin/busybox"), ["sh", join(dir, "bin/installer"), "version"], {
        encoding: "utf8",
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.trim(), `test bed installer for Talos ${version}`);
      // upstream quirks (pkg/machinery/imager/quirks): the installer's artifacts are vmlinuz + initramfs.xz before 1.10, the UKI + sd-boot after.
      const script = await readText(dir, "bin/installer");
      assert.match(script, installer.endsWith("-base") ? /systemd-boot\.efi vmlinuz\.efi/ : /vmlinuz initramfs\.xz/);
    }
  });

  test("the module extension carries Debian's dummy.ko under the version's module path", async () => {
    const release = summary.kernel.release;
    const debianModule = await sha256File(join(packages.kernel.modulesDir, "kernel/drivers/net/dummy.ko"));
    for (const { version, modules } of versions) {
      const image = summary.versions
        .find((v) => v.version === version)
        ?.images.find((i) => i.extension?.name === "testbed-dummy");
      assert.ok(image);
      const dir = tree();
      await flattenImage(repositoryFor("siderolabs/testbed-dummy"), image.tag, dir);
      const path = join(dir, "rootfs", modules, release, "kernel/drivers/net/dummy.ko");
      assert.equal(await sha256File(path), debianModule);
      const other = modules === "lib/modules" ? "usr/lib/modules" : "lib/modules";
      assert.equal(existsSync(join(dir, "rootfs", other)), false);
      assert.match(image.tag, /-v\d+\.\d+\.\d+/, "module extensions are versioned <upstream>-v<talos>");
    }
  });

  test("extensions flatten and validate for their version; the incompatible one is refused by name", async () => {
    for (const { version, firmware } of versions) {
      const released = summary.versions.find((v) => v.version === version);
      for (const image of released?.images.filter((i) => i.kind === "extension") ?? []) {
        const name = image.repository.split("/")[1] as string;
        const dir = tree();
        await flattenImage(repositoryFor(image.repository), image.tag, dir);
        assert.deepEqual((await readdir(dir)).sort(), ["manifest.yaml", "rootfs"]);
        if (name === "testbed-legacy") {
          await assert.rejects(validateExtensionTree(dir, { talosVersion: version }), (err: Error) => {
            assert.match(err.message, /testbed-legacy/);
            assert.match(err.message, /not compatible/);
            return true;
          });
          continue;
        }
        const manifest = await validateExtensionTree(dir, { talosVersion: version });
        assert.equal(manifest.metadata.name, name);
        assert.equal(manifest.metadata.version, image.tag);
        if (name === "testbed-ucode") assert.ok(existsSync(join(dir, "rootfs", firmware, "intel-ucode")));
        if (name === "testbed-hello") {
          const spec = parseYaml(await readText(dir, "rootfs/usr/local/etc/containers/testbed-hello.yaml"));
          assert.equal(spec.name, "testbed-hello");
          assert.ok(existsSync(join(dir, "rootfs/usr/local/lib/containers/testbed-hello/bin/busybox")));
        }
        if (name === "testbed-glibc") assert.ok(existsSync(join(dir, "rootfs/usr/local/glibc")));
      }
    }
  });

  test("every image has one key signature and one keyless signature", async () => {
    for (const v of summary.versions)
      for (const image of v.images) {
        const repository = repositoryFor(image.repository);
        const sig = await readManifest(repository, `sha256-${image.digest.slice(7)}.sig`);
        assert.equal(sig.layers.length, 2, `${image.reference} signatures`);
        const keyless = sig.layers.filter((l) => l.annotations?.[Annotation.certificate]);
        assert.equal(keyless.length, 1);
        assert.ok(keyless[0]?.annotations?.[Annotation.bundle], "the keyless signature carries a Rekor bundle");
      }
  });

  test("publishing into a fresh registry with every layer rebuilt gives the same digests", async () => {
    const fresh = await openStore(join(scratch, "store-2"));
    try {
      const again = await publishTestbedRelease({
        registry: "elsewhere.test",
        repositoryFor: (name) => fresh.repository(name),
        versions: versions.map((v) => v.version),
        keysDir: keysDir(),
        layerStoreDir: join(scratch, "layers-2"),
      });
      const first = digestsOf(summary);
      // Plus the board overlay: one image (one tag) shared by every version.
      assert.equal(first.size, versions.length * 9 + versions.filter((v) => hasTalosctlAll(v.version)).length + 1);
      assert.deepEqual(digestsOf(again), first);
      for (const [ref, digest] of first) {
        const [name, tag] = ref.split(":") as [string, string];
        assert.equal((await fresh.repository(name).statManifest(tag))?.digest, digest);
      }
    } finally {
      await fresh.close();
    }
  });

  test("a re-run adds no signature and keeps the keys", async () => {
    const publicKey = await readFile(join(scratch, "out", "cosign.pub"), "utf8");
    const again = await publishTestbedRelease({
      registry,
      repositoryFor,
      versions: versions.map((v) => v.version),
      keysDir: keysDir(),
      out: join(scratch, "out"),
    });
    assert.equal(again.signatures.written, 0);
    assert.ok(again.signatures.present > 0);
    assert.equal(await readFile(join(scratch, "out", "cosign.pub"), "utf8"), publicKey);
    for (const v of again.versions)
      for (const image of v.images)
        assert.equal(await signatureLayerCount(repositoryFor(image.repository), image.digest), 2, image.reference);
  });
});

async function readManifestConfig(repository: ReturnType<RepositoryFor>, digest: string): Promise<Buffer> {
  const blob = await repository.getBlob(digest as `sha256:${string}`);
  const chunks: Buffer[] = [];
  for await (const chunk of blob.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
