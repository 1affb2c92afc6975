// `boot-assets extension build | validate` as real child processes against a real CNCF distribution registry,
// skopeo as the independent judge of what was pushed: the shipped extensions (extensions/glibc,
// extensions/nvidia-driver-production) built from fixture trees (fake .ko and binaries), reproducibly; a
// folder breaking every rule at once; and the imager's extension merge (src/imager/extensions.ts) reading
// the pushed nvidia image into an initramfs.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { buildExtendedInitramfs } from "../../src/imager/extensions.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { flattenLayers } from "../../src/oci/flatten.ts";
import { decompressLayer } from "../../src/oci/layer.ts";
import { isImageIndex, parseManifest } from "../../src/oci/manifest.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";
import { writeCompressedCpio } from "../../src/tools/compression.ts";
import { mksquashfs } from "../../src/tools/squashfs.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { cpioNames } from "../imager/cpio-members.ts";
import { skopeo } from "../realclients/skopeo.ts";
import { ok, tree } from "./fixture-tree.ts";

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const talosVersion = "v1.12.0";
const kernelRelease = "6.12.40-talos";

let work: string;
let env: NodeJS.ProcessEnv;
let registry: RunningRegistry;

const cli = (...args: string[]) => runCli(args, env, 120_000);

/** `skopeo inspect --raw` as bytes (the digest is over them). */
function skopeoBytes(ref: string): Buffer {
  const result = spawnSync("skopeo", [
    "--insecure-policy",
    "inspect",
    "--raw",
    "--tls-verify=false",
    `docker://${ref}`,
  ]);
  assert.equal(result.status, 0, String(result.stderr));
  return result.stdout;
}

/** The digest `extension build` printed for the image (index or manifest). */
function builtDigest(stdout: string): string {
  const match = /@(sha256:[0-9a-f]{64})/.exec(stdout);
  assert.ok(match, stdout);
  return match[1] as string;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "extension-build-test-"));
  env = { ...isolatedEnv(join(work, "home")), COSIGN_PASSWORD: "", SOURCE_DATE_EPOCH: "1700000000" };
  registry = await startDistribution();
  // A checkout as a user has it: the shipped source folders, copied (the build never writes into them).
  await cp(join(projectRoot, "extensions"), join(work, "extensions"), { recursive: true, verbatimSymlinks: true });
  for (const arch of ["amd64", "arm64"]) {
    const loader = arch === "amd64" ? "ld-linux-x86-64.so.2" : "ld-linux-aarch64.so.1";
    await tree(join(work, "trees", arch, "glibc"), {
      [`usr/local/glibc/usr/lib/${loader}`]: [`fake ${arch} loader\n`, 0o755],
      "usr/local/glibc/usr/lib/libc.so.6": [`fake ${arch} libc\n`, 0o755],
      "usr/local/glibc/usr/bin/ldconfig": [`fake ${arch} ldconfig\n`, 0o755],
    });
  }
  await tree(join(work, "trees", "amd64", "nvidia"), {
    [`usr/lib/modules/${kernelRelease}/extras/nvidia.ko`]: "fake module\n",
    [`usr/lib/modules/${kernelRelease}/extras/nvidia-uvm.ko`]: "fake module\n",
    "usr/lib/firmware/nvidia/570.172.08/gsp_ga10x.bin": "fake firmware\n",
    "usr/local/glibc/usr/bin/nvidia-smi": ["fake nvidia-smi\n", 0o755],
    "usr/local/glibc/usr/bin/nvidia-persistenced": ["fake nvidia-persistenced\n", 0o755],
    "usr/local/glibc/usr/lib/libnvidia-ml.so.570.172.08": "fake library\n",
    "usr/local/lib/containers/nvidia-driver/bin/busybox": ["fake busybox\n", 0o755],
  });
  await symlink("busybox", join(work, "trees/amd64/nvidia/usr/local/lib/containers/nvidia-driver/bin/sh"));
  ok(await runCli(["generate-key-pair", "--output-key-prefix", join(work, "cosign")], env), "generate-key-pair");
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const glibcArgs = () => [
  "extension",
  "build",
  join(work, "extensions/glibc"),
  "--tag",
  `${registry.host}/boot-assets/glibc:2.40`,
  "--talos-version",
  talosVersion,
  "--platform",
  "linux/amd64,linux/arm64",
  "--tree",
  `amd64=${join(work, "trees/amd64/glibc")}`,
  "--tree",
  `arm64=${join(work, "trees/arm64/glibc")}`,
  "--insecure",
];

const nvidiaRef = () => `${registry.host}/boot-assets/nvidia-driver-production:570.172.08-${talosVersion}`;

describe("extension build: the shipped extensions from fixture trees", () => {
  let glibcDigest: string;

  test("glibc for two platforms: an OCI index whose manifests skopeo reads, one layer each", async () => {
    const out = ok(await cli(...glibcArgs(), "--push"), "build glibc");
    glibcDigest = builtDigest(out);
    const ref = `${registry.host}/boot-assets/glibc:2.40`;
    const index = JSON.parse(await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]));
    assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      index.manifests.map(
        (m: { platform: { os: string; architecture: string } }) => `${m.platform.os}/${m.platform.architecture}`,
      ),
      ["linux/amd64", "linux/arm64"],
    );
    // our digests are the registry's: the index bytes skopeo reads hash to the printed digest, and each
    // platform's image is the one the index lists
    const raw = skopeoBytes(ref);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, glibcDigest);
    for (const arch of ["amd64", "arm64"]) {
      const inspected = JSON.parse(
        await skopeo(["inspect", "--override-arch", arch, "--tls-verify=false", `docker://${ref}`]),
      );
      assert.equal(inspected.Architecture, arch);
      assert.equal(inspected.Layers.length, 1);
      const listed = index.manifests.find(
        (m: { platform: { architecture: string } }) => m.platform.architecture === arch,
      );
      const child = skopeoBytes(`${registry.host}/boot-assets/glibc@${listed.digest}`);
      assert.equal(`sha256:${createHash("sha256").update(child).digest("hex")}`, listed.digest);
      const childManifest = JSON.parse(child.toString("utf8"));
      assert.equal(childManifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
      assert.deepEqual(
        childManifest.layers.map((l: { digest: string }) => l.digest),
        inspected.Layers,
      );
      assert.match(out, new RegExp(`linux/${arch} ${listed.digest} layer ${inspected.Layers[0]}`));
    }
  });

  test("the same inputs twice give the same digest", async () => {
    const again = builtDigest(ok(await cli(...glibcArgs()), "build glibc again"));
    assert.equal(again, glibcDigest);
  });

  test("nvidia-driver-production: pushed and signed with a key; the signature tag exists", async () => {
    const out = ok(
      await cli(
        "extension",
        "build",
        join(work, "extensions/nvidia-driver-production"),
        "--tag",
        nvidiaRef(),
        "--tree",
        `amd64=${join(work, "trees/amd64/nvidia")}`,
        "--push",
        "--sign",
        "--key",
        join(work, "cosign.key"),
        "--insecure",
      ),
      "build nvidia",
    );
    const digest = builtDigest(out);
    assert.match(out, /nvidia-driver-production 570\.172\.08-v1\.12\.0 \(checked for Talos v1\.12\.0\)/);
    const manifest = JSON.parse(await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${nvidiaRef()}`]));
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    const tags = JSON.parse(
      await skopeo([
        "list-tags",
        "--tls-verify=false",
        `docker://${registry.host}/boot-assets/nvidia-driver-production`,
      ]),
    ).Tags as string[];
    assert.ok(tags.includes(`${digest.replace(":", "-")}.sig`), tags.join(" "));
    const verified = await cli("verify", nvidiaRef(), "--key", join(work, "cosign.pub"), "--insecure");
    assert.equal(verified.code, 0, verified.stderr);
  });

  test("extension validate passes on both pushed images and on the source folder", async () => {
    for (const ref of [`${registry.host}/boot-assets/glibc:2.40`, nvidiaRef()]) {
      const out = ok(
        await cli("extension", "validate", ref, "--talos-version", talosVersion, "--insecure"),
        `validate ${ref}`,
      );
      assert.match(out, /^ok: .* passes for Talos v1\.12\.0/);
    }
    const out = ok(
      await cli(
        "extension",
        "validate",
        join(work, "extensions/glibc"),
        "--var",
        "VERSION=2.40",
        "--talos-version",
        talosVersion,
      ),
      "validate folder",
    );
    assert.match(out, /glibc 2\.40 passes for Talos v1\.12\.0 \(linux\/amd64, linux\/arm64\)/);
  });

  test("the pushed glibc for arm64 is refused for Talos 1.11 (its loader path is allowed from 1.12)", async () => {
    const result = await cli(
      "extension",
      "validate",
      `${registry.host}/boot-assets/glibc:2.40`,
      "--talos-version",
      "v1.11.0",
      "--insecure",
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /linux\/arm64\) rootfs\/usr\/lib\/ld-linux-aarch64\.so\.1: .*\[allowed-paths\]/);
    assert.doesNotMatch(result.stderr, /linux\/amd64\)/);
  });

  test("the pushed layer, as GNU tar lists it: sorted, uid/gid 0, every mtime SOURCE_DATE_EPOCH, git's modes", async () => {
    const client = new RegistryClient({ insecure: new Set([registry.host]) });
    const repository = client.repository(nvidiaRef());
    const record = await repository.getManifest(`570.172.08-${talosVersion}`);
    const { manifest } = parseManifest(record.body, record.mediaType);
    assert.ok(!isImageIndex(manifest));
    const [layer] = manifest.layers;
    assert.ok(layer !== undefined && manifest.layers.length === 1);
    const blob = await repository.getBlob(layer.digest);
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream) chunks.push(chunk as Buffer);
    const env = { ...process.env, TZ: "UTC" };
    const listing = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvzf", "-"], {
      input: Buffer.concat(chunks),
      env,
    })
      .toString()
      .trimEnd()
      .split("\n");
    const names: string[] = [];
    for (const line of listing) {
      const [mode, owner, , date, time, ...rest] = line.split(/\s+/);
      assert.equal(owner, "0/0", line);
      assert.equal(`${date} ${time}`, "2023-11-14 22:13:20", line);
      const name = (rest.join(" ").split(" -> ")[0] ?? "").replace(/\/$/, "");
      names.push(name);
      if (mode?.startsWith("d")) assert.equal(mode, "drwxr-xr-x", line);
      else if (mode?.startsWith("-")) assert.ok(mode === "-rw-r--r--" || mode === "-rwxr-xr-x", line);
    }
    const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(names, sorted);
    assert.ok(names.includes("rootfs/usr/local/lib/containers/nvidia-driver/nvidia-driver.sh"));
    assert.ok(names.includes("rootfs/usr/local/lib/modprobe.d/nvidia.conf"));
    assert.ok(names.includes(`rootfs/usr/lib/modules/${kernelRelease}/extras/nvidia.ko`));
    assert.match(
      listing.find((l) => l.endsWith("nvidia-driver/nvidia-driver.sh")) ?? "",
      /^-rwxr-xr-x/,
      "the service script stays executable",
    );
  });

  test("the imager's extension merge reads the pushed nvidia image into an initramfs", async () => {
    const client = new RegistryClient({ insecure: new Set([registry.host]) });
    const repository = client.repository(nvidiaRef());
    const record = await repository.getManifest(`570.172.08-${talosVersion}`);
    const { manifest } = parseManifest(record.body, record.mediaType);
    assert.ok(!isImageIndex(manifest));
    const extensionDir = join(work, "imager", "nvidia");
    await flattenLayers(
      manifest.layers.map((l) => async () => decompressLayer((await repository.getBlob(l.digest)).stream, l.mediaType)),
      extensionDir,
    );
    // A base initramfs holding a rootfs.sqsh with the kernel's module tree, as the imager's has.
    const rules = rulesFor(talosVersion);
    const baseTree = await tree(join(work, "imager", "base-rootfs"), {
      [`${rules.modulesPath}/${kernelRelease}/modules.order`]: "",
      [`${rules.modulesPath}/${kernelRelease}/modules.builtin`]: "",
    });
    await mksquashfs(baseTree, join(work, "imager", "rootfs.sqsh"), { compression: "zstd", mtime: 0 });
    const base = join(work, "imager", "initramfs.xz");
    const sqsh = join(work, "imager", "rootfs.sqsh");
    const { size } = await import("node:fs/promises").then((fs) => fs.stat(sqsh));
    await writeCompressedCpio([{ type: "file", path: "rootfs.sqsh", mode: 0o644, sourcePath: sqsh, size }], base, {
      compression: rules.initramfsCompression,
    });
    const workDir = join(work, "imager", "work");
    await mkdir(workDir);
    const out = join(work, "imager", "extended");
    const result = await buildExtendedInitramfs({
      talosVersion,
      baseInitramfs: base,
      extensions: [
        { name: "nvidia-driver-production", dir: extensionDir, digest: record.digest, selinuxLabels: new Map() },
      ],
      schematic: { id: "b".repeat(64), author: "test" },
      outPath: out,
      workDir,
      labellingMksquashfs: async () => undefined,
    });
    assert.deepEqual(
      result.layers.map((l) => l.metadata.name),
      ["nvidia-driver-production", "schematic", "modules.dep"],
    );
    assert.equal(result.kernelRelease, kernelRelease);
    assert.equal(result.layers[0]?.metadata.version, `570.172.08-${talosVersion}`);
    // the appended archive carries the extension's squashfs and its firmware, moved out of it
    const appended = (await readFile(out)).subarray((await readFile(base)).length);
    const cpio = execFileSync(rules.initramfsCompression === "zstd" ? "zstd" : "xz", ["-dc"], { input: appended });
    const listing = cpioNames(cpio).join("\n");
    assert.match(listing, /^0\.sqsh$/m);
    assert.match(listing, /usr\/lib\/firmware\/nvidia\/570\.172\.08\/gsp_ga10x\.bin/);
    assert.match(listing, /^extensions\.yaml$/m);
  });
});

describe("extension build: every problem at once, each naming its file and rule", () => {
  test("a folder breaking each rule", async () => {
    const dir = join(work, "bad");
    await tree(dir, {
      "manifest.yaml.tmpl": [
        "version: v1alpha1",
        "metadata:",
        "  name: Bad_Name!",
        '  version: "{{ .VERSION }}"',
        "  author: {{ .AUTHOR }}",
        "  description: broken on purpose",
        "  compatibility:",
        "    talos:",
        '      version: "< v1.0.0"',
        "",
      ].join("\n"),
      "rootfs/usr/local/share/open": ["world-writable\n", 0o666],
      "rootfs/usr/bin/evil": "outside the allowed paths\n",
      "rootfs/usr/local/etc/containers/svc.yaml": "name: svc\ncontainer: {}\nrestart: sometimes\n",
      "rootfs/usr/local/share/twice": "common\n",
      "rootfs-amd64/usr/local/share/twice": "arch\n",
    });
    execFileSync("mkfifo", [join(dir, "rootfs/usr/local/share/pipe")]);
    const result = await cli(
      "extension",
      "build",
      dir,
      "--tag",
      `${registry.host}/boot-assets/bad:latest`,
      "--talos-version",
      talosVersion,
      "--var",
      "AUTHOR=tester",
    );
    assert.equal(result.code, 2, result.stderr);
    const expected: [string, string][] = [
      ["manifest.yaml.tmpl", "name"],
      ["manifest.yaml.tmpl", "version"],
      ["manifest.yaml.tmpl", "compatibility"],
      ["rootfs/usr/local/share/open", "world-writable"],
      ["rootfs/usr/local/share/pipe", "special-file"],
      ["rootfs/usr/bin/evil", "allowed-paths"],
      ["rootfs/usr/local/etc/containers/svc.yaml", "service-spec"],
      ["rootfs-amd64/usr/local/share/twice", "layout"],
    ];
    for (const [file, rule] of expected)
      assert.match(
        result.stderr,
        new RegExp(`^  ${file.replaceAll(".", "\\.")}: .*\\[${rule}\\]$`, "m"),
        `${file} [${rule}] in:\n${result.stderr}`,
      );
    assert.match(result.stderr, new RegExp(`${expected.length} problems:`));
    // the template: an unknown key is its own problem, naming the file
    const noVar = await cli("extension", "validate", dir, "--talos-version", talosVersion, "--var", "VERSION=1.0.0");
    assert.match(noVar.stderr, /^ {2}manifest\.yaml\.tmpl: no value for \{\{ \.AUTHOR \}\}.*\[template\]$/m);
    // nothing was pushed
    const tags = await skopeo(["list-tags", "--tls-verify=false", `docker://${registry.host}/boot-assets/bad`]).catch(
      (err: Error) => err.message,
    );
    assert.doesNotMatch(tags, /latest/);
    assert.deepEqual((await readdir(dir)).sort(), ["manifest.yaml.tmpl", "rootfs", "rootfs-amd64"]);
  });
});
