// `boot-assets build` as a user runs it (a child process) against the test bed release in a real registry
// (embedded server behind a recording HTTP front): the assets it writes, checked with independent tools
// (tar for the imager's base initramfs, zstd + cpio for the appended extensions, objdump for the UKI, tar
// for the installer), the content cache reused by a second run (no layer blob fetched), and its refusals
// (wrong key, unknown extension, incompatible extension) with their exit codes; and keyless verification
// with the release's trusted root and identity.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { exitCodeOf, integrity } from "../../src/errors.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { buildCmdline } from "../../src/talos/cmdline.ts";
import { objdumpSections } from "../../src/tools/binutils.ts";
import { blobGets, exactRegExp, openReleaseRegistry, type ReleaseRegistry } from "../factory/imager-inputs-fixture.ts";
import { cpioExtract, cpioNames } from "../imager/cpio-members.ts";
import { isolatedEnv, runCli } from "./run-cli.ts";

const version = "v1.10.3";
const assets = [
  "kernel-amd64",
  "initramfs-amd64.xz",
  "cmdline-metal-amd64",
  "metal-amd64-uki.efi",
  "installer-amd64.tar",
];
const extraArg = "testbed.extra=yes";
const schematicYaml = `customization:
  extraKernelArgs:
    - ${extraArg}
  systemExtensions:
    officialExtensions:
      - siderolabs/testbed-dummy
      - siderolabs/testbed-hello
`;
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

function run(command: string, args: string[], input?: Buffer): Buffer {
  const result = spawnSync(command, args, { input, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

describe("boot-assets build", () => {
  let release: ReleaseRegistry;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let schematicFile: string;
  let cacheDir: string;
  let sourceLayers: string[];

  const cli = (args: string[]) => runCli(["build", ...args], env, 120_000);
  const common = (outputDir: string, schematic = schematicFile) => [
    "--image-registry",
    release.front.host,
    "--insecure",
    "--talos-version",
    version,
    "--schematic",
    schematic,
    "--output-dir",
    outputDir,
    "--cache-dir",
    cacheDir,
  ];
  const pubkey = () => ["-container-signature-pubkey", join(release.outDir, "cosign.pub")];

  before(async () => {
    release = await openReleaseRegistry([version]);
    work = await mkdtemp(join(release.dir, "cli-"));
    env = isolatedEnv(work);
    schematicFile = join(work, "schematic.yaml");
    await writeFile(schematicFile, schematicYaml);
    cacheDir = join(work, "cache");
    const images = release.summary.versions[0]?.images ?? [];
    const used = images.filter(
      (i) =>
        i.kind === "imager" ||
        i.kind === "installer" ||
        i.extension?.name === "testbed-dummy" ||
        i.extension?.name === "testbed-hello",
    );
    sourceLayers = (await Promise.all(used.map((i) => release.layerDigests(i)))).flat();
  });
  after(async () => {
    await release?.close();
  });

  /** The built files as the CLI reports them on stdout: path, size, sha256. */
  function reported(stdout: Buffer): Map<string, { size: number; sha256: string }> {
    const lines = stdout.toString().trim().split("\n");
    return new Map(
      lines.map((line) => {
        const match = /^(\S+) (\d+) sha256:([0-9a-f]{64})$/.exec(line);
        assert.ok(match, `stdout line: ${line}`);
        return [match[1] as string, { size: Number(match[2]), sha256: match[3] as string }];
      }),
    );
  }

  let firstRun: Map<string, Buffer>;

  test("builds kernel, initramfs, cmdline, UKI and installer with two extensions, key-verified", async () => {
    const out = join(work, "out-1");
    release.front.requests.length = 0;
    const result = await cli([...common(out), ...pubkey(), ...assets]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(out)).sort(), [...assets].sort(), "exactly the assets, nothing temporary");
    assert.equal(blobGets(release.front, sourceLayers).length, sourceLayers.length, "every source layer pulled once");

    firstRun = new Map();
    const listed = reported(result.stdout);
    for (const asset of assets) {
      const bytes = await readFile(join(out, asset));
      firstRun.set(asset, bytes);
      assert.deepEqual(listed.get(join(out, asset)), { size: bytes.length, sha256: sha256(bytes) }, asset);
    }
    assert.match(result.stderr, /verified .*siderolabs\/imager@sha256:[0-9a-f]{64}: legacy/);

    // cmdline: the version's metal command line with the schematic's extra argument.
    const cmdline = (firstRun.get("cmdline-metal-amd64") as Buffer).toString();
    assert.equal(
      cmdline,
      buildCmdline({
        talosVersion: version,
        platform: "metal",
        arch: "amd64",
        secureBoot: false,
        outputKind: "cmdline",
        schematic: { extraKernelArgs: [extraArg], meta: [] },
      }),
    );
    assert.ok(cmdline.split(" ").includes(extraArg));

    // kernel: the imager's vmlinuz byte for byte (read out of its layer with tar).
    const imager = release.image(version, (i) => i.kind === "imager");
    const [imagerLayer] = await release.layerDigests(imager);
    const layerBytes = await streamToBuffer(
      (await release.server.store.repository(imager.repository).getBlob(imagerLayer as Digest)).stream,
    );
    const vmlinuz = run("tar", ["-xzO", "usr/install/amd64/vmlinuz"], layerBytes);
    assert.ok((firstRun.get("kernel-amd64") as Buffer).equals(vmlinuz));

    // initramfs: the base kept byte for byte, then zstd cpio members: a squashfs per extension, extensions.yaml.
    const base = run("tar", ["-xzO", "usr/install/amd64/initramfs.xz"], layerBytes);
    const initramfs = firstRun.get("initramfs-amd64.xz") as Buffer;
    assert.ok(initramfs.subarray(0, base.length).equals(base), "the base initramfs comes first, unchanged");
    const cpio = run("zstd", ["-dc"], initramfs.subarray(base.length));
    const names = cpioNames(cpio);
    for (const name of ["0.sqsh", "1.sqsh", "2.sqsh", "modules.dep.sqsh", "extensions.yaml"])
      assert.ok(names.includes(name), `${name} in ${names.join(" ")}`);
    const tree = await mkdtemp(join(work, "cpio-"));
    cpioExtract(cpio, tree);
    const yaml = await readFile(join(tree, "extensions.yaml"), "utf8");
    for (const name of ["testbed-dummy", "testbed-hello", "schematic"])
      assert.match(yaml, new RegExp(`name: ${name}\\n`));

    // UKI: a PE with the UKI sections; installer: a docker-save tarball.
    const sections = (await objdumpSections(join(out, "metal-amd64-uki.efi"))).map((s) => s.name);
    for (const name of [".osrel", ".cmdline", ".uname", ".initrd", ".linux"]) assert.ok(sections.includes(name), name);
    const members = run("tar", ["-t"], firstRun.get("installer-amd64.tar")).toString().split("\n");
    assert.ok(members.includes("manifest.json"), members.join(" "));
  });

  test("a second build reuses the content cache (no layer blob fetched) and gives the same bytes", async () => {
    assert.ok(firstRun, "runs after the first build");
    // Without the built assets, every asset is built again from the sources the first run pulled.
    await rm(join(cacheDir, "assets"), { recursive: true, force: true });
    const out = join(work, "out-2");
    release.front.requests.length = 0;
    const result = await cli([...common(out), ...pubkey(), ...assets]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(blobGets(release.front, sourceLayers), []);
    // Each asset pulls its sources on its own (src/factory/assets/service.ts): every one from the cache.
    assert.ok((result.stderr.match(/^cached /gm) ?? []).length >= 4, result.stderr);
    assert.equal((result.stderr.match(/^cache hit /gm) ?? []).length, 0, result.stderr);
    for (const asset of assets)
      assert.ok((await readFile(join(out, asset))).equals(firstRun.get(asset) as Buffer), `${asset} is reproducible`);
  });

  test("a third build is all asset cache hits: sources verified and pinned, nothing pulled at all", async () => {
    assert.ok(firstRun, "runs after the first build");
    const out = join(work, "out-3");
    release.front.requests.length = 0;
    const result = await cli([...common(out), ...pubkey(), ...assets]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(blobGets(release.front, sourceLayers), []);
    // The assets themselves come from the asset cache (src/factory/assets/service.ts): none is rebuilt, and
    // their sources are only pinned (the digests decide the cache key), not taken from the content cache.
    assert.equal((result.stderr.match(/^cache hit /gm) ?? []).length, assets.length, result.stderr);
    assert.equal((result.stderr.match(/^cached /gm) ?? []).length, 0, result.stderr);
    for (const asset of assets)
      assert.ok((await readFile(join(out, asset))).equals(firstRun.get(asset) as Buffer), `${asset} is reproducible`);
  });

  test("a tampered asset cache entry is a miss: rebuilt, the right bytes written, never the tampered ones", async () => {
    assert.ok(firstRun, "runs after the first build");
    const entries = join(cacheDir, "assets");
    let tampered = 0;
    for (const key of await readdir(entries)) {
      const file = join(entries, key, "asset");
      const bytes = await readFile(file).catch(() => undefined);
      if (bytes === undefined || !bytes.equals(firstRun.get("cmdline-metal-amd64") as Buffer)) continue;
      const evil = Buffer.from(bytes); // same size, one byte changed: only the digest can tell
      evil[evil.length - 1] = evil[evil.length - 1] === 0x58 ? 0x59 : 0x58;
      await writeFile(file, evil);
      tampered++;
    }
    assert.equal(tampered, 1);
    const out = join(work, "out-tampered");
    const result = await cli([...common(out), ...pubkey(), "cmdline-metal-amd64"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^built +cmdline-metal-amd64/m);
    assert.ok((await readFile(join(out, "cmdline-metal-amd64"))).equals(firstRun.get("cmdline-metal-amd64") as Buffer));
  });

  test("a signature by another key: non-zero exit naming the image and the signature; nothing written", async () => {
    const wrongKey = join(work, "wrong.pub");
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(wrongKey, publicKey.export({ type: "spki", format: "pem" }));
    const out = join(work, "out-wrong-key");
    const result = await cli([...common(out), "-container-signature-pubkey", wrongKey, "kernel-amd64"]);
    assert.equal(result.code, exitCodeOf(integrity("")));
    assert.match(result.stderr, /signature/);
    assert.match(result.stderr, /siderolabs\/imager:v1\.10\.3/);
    assert.deepEqual(await readdir(out).catch(() => []), []);
  });

  test("an unknown extension is refused with the exact message", async () => {
    const file = join(work, "unknown.yaml");
    await writeFile(file, "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/no-such\n");
    const result = await cli([...common(join(work, "out-unknown"), file), ...pubkey(), "initramfs-amd64.xz"]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^boot-assets: extension "siderolabs\/no-such" is not available for Talos version v1\.10\.3$/m,
    );
  });

  test("an unknown Talos version is a not-found naming the versions that are there", async () => {
    const args = common(join(work, "out-version")).map((arg) => (arg === version ? "v1.9.0" : arg));
    const result = await cli([...args, ...pubkey(), "kernel-amd64"]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^boot-assets: Talos version v1\\.9\\.0 is not available from ${release.front.host}/siderolabs/imager; available: v1\\.10\\.3$`,
        "m",
      ),
    );
  });

  test("the extension whose constraint excludes the version is refused with its name", async () => {
    const file = join(work, "legacy.yaml");
    await writeFile(
      file,
      "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/testbed-legacy\n",
    );
    const out = join(work, "out-legacy");
    const result = await cli([...common(out, file), ...pubkey(), "initramfs-amd64.xz"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /boot-assets: extension "testbed-legacy" .*is not compatible with Talos v1\.10\.3/);
    assert.deepEqual(await readdir(out).catch(() => []), []);
  });

  test("keyless: the release's trusted root and identity verify it", async () => {
    const identity = JSON.parse(await readFile(join(release.outDir, "identity.json"), "utf8")) as {
      issuer: string;
      subject: string;
    };
    const out = join(work, "out-keyless");
    const result = await cli([
      ...common(out),
      "-container-signature-trusted-root",
      join(release.outDir, "trusted_root.json"),
      "-container-signature-subject-regexp",
      exactRegExp(identity.subject),
      "--container-signature-issuer",
      identity.issuer,
      "kernel-amd64",
      "cmdline-metal-amd64",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stderr.includes(identity.subject), result.stderr);
    assert.deepEqual((await readdir(out)).sort(), ["cmdline-metal-amd64", "kernel-amd64"]);
  });
});

async function streamToBuffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
