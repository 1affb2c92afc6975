// `boot-assets testbed release` run as a user would, against the embedded registry server, then checked with
// `boot-assets verify` using only what it wrote to --out: the test key, and the test trusted root with the
// keyless identity. A second run adds no signature. By default it releases linux/amd64 and linux/arm64: containerd
// pulls the installer for linux/arm64 and gets its arm64 image (config, and an AArch64 busybox), nothing of amd64's.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { type ImageManifest, isImageIndex, parseManifest } from "../../src/oci/manifest.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { startContainerd } from "../harness/containerd.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { signatureLayerCount } from "./release-helpers.ts";

const versions = ["v1.8.2", "v1.10.3"];
/** ELF e_machine of AArch64 (elf.h EM_AARCH64). */
const emAarch64 = 183;

/** e_machine of the ELF file `path` in an uncompressed tar, or undefined when the tar lacks it. */
function elfMachineInTar(tar: Buffer, path: string): number | undefined {
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar.toString("utf8", at, at + 100).replace(/\0.*$/s, "");
    if (name === "") return undefined;
    const size = Number.parseInt(
      tar
        .toString("latin1", at + 124, at + 136)
        .replace(/\0.*$/s, "")
        .trim(),
      8,
    );
    if (name === path) return tar.readUInt16LE(at + 512 + 18);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

describe("boot-assets testbed release (CLI)", () => {
  let registry: RunningRegistry;
  let scratch: string;
  let env: NodeJS.ProcessEnv;
  let out: string;
  let references: string[];
  const client = new RegistryClient({ insecure: true });

  const release = () =>
    runCli(
      [
        "testbed",
        "release",
        "--registry",
        registry.host,
        "--insecure",
        ...versions.flatMap((v) => ["--talos-version", v]),
        "--out",
        out,
      ],
      env,
      180_000,
    );

  before(async () => {
    registry = await startEmbeddedRegistry();
    scratch = await mkdtemp(join(tmpdir(), "testbed-release-cli-"));
    out = join(scratch, "out");
    // The cache (Debian packages, base builds) stays the user's, as in real use; the keys go to <out>/keys.
    env = { ...isolatedEnv(scratch), XDG_CACHE_HOME: process.env.XDG_CACHE_HOME || join(homedir(), ".cache") };
    const result = await release();
    assert.equal(result.code, 0, result.stderr);
    references = result.stdout
      .toString("utf8")
      .split("\n")
      .filter((l) => l !== "");
  });
  after(async () => {
    await client.close();
    await registry?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("prints one registry/repo:tag@digest line per image, progress going to stderr", () => {
    // Nine per version, and the board overlay (one image, listed with each version).
    assert.equal(references.length, versions.length * 10);
    for (const ref of references)
      assert.match(
        ref,
        new RegExp(`^${registry.host.replace(/\./g, "\\.")}/siderolabs/[a-z-]+:[\\w.-]+@sha256:[0-9a-f]{64}$`),
      );
    assert.ok(references.some((r) => r.includes("/siderolabs/installer:v1.8.2@")));
    assert.ok(references.some((r) => r.includes("/siderolabs/installer-base:v1.10.3@")));
  });

  test("keeps its signing keys in <out>/keys", () => {
    assert.ok(existsSync(join(out, "keys", "sigstore.json")));
    assert.ok(existsSync(join(out, "keys", "cosign.key")));
  });

  test("boot-assets verify accepts the release with --key <out>/cosign.pub", async () => {
    const imager = references.find((r) => r.includes("/siderolabs/imager:v1.10.3@")) as string;
    const result = await runCli(["verify", "--insecure", "--key", join(out, "cosign.pub"), imager], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString(), /legacy key/);
  });

  test("boot-assets verify accepts it keyless with <out>/trusted_root.json and identity.json, and refuses another identity", async () => {
    const identity = JSON.parse(await readFile(join(out, "identity.json"), "utf8")) as {
      issuer: string;
      subject: string;
    };
    assert.equal(identity.issuer, "https://token.actions.githubusercontent.com");
    const extension = references.find((r) => r.includes("/siderolabs/testbed-dummy:")) as string;
    const keyless = (subject: string) => [
      "verify",
      "--insecure",
      "--trusted-root",
      join(out, "trusted_root.json"),
      "--certificate-identity",
      subject,
      "--certificate-oidc-issuer",
      identity.issuer,
      extension,
    ];
    const ok = await runCli(keyless(identity.subject), env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout.toString(), new RegExp(`keyless ${identity.subject.replace(/[.]/g, "\\.")}`));
    const wrong = await runCli(
      keyless("https://github.com/evil/testbed/.github/workflows/release.yaml@refs/heads/main"),
      env,
    );
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /does not match/);
  });

  test("a second run reuses the keys and adds no signature layer", async () => {
    const publicKey = await readFile(join(out, "cosign.pub"), "utf8");
    const again = await release();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, / 0 signature\(s\) written/);
    assert.deepEqual(
      again.stdout
        .toString("utf8")
        .split("\n")
        .filter((l) => l !== ""),
      references,
    );
    assert.equal(await readFile(join(out, "cosign.pub"), "utf8"), publicKey);
    for (const ref of references) {
      const [name, digest] = ref.split("@") as [string, string];
      const repository = client.repository(name);
      assert.equal(await signatureLayerCount(repository, digest), 2, ref);
    }
  });

  test("ctr image pull --platform linux/arm64 of the installer index takes its arm64 image only", async () => {
    const name = `${registry.host}/siderolabs/installer-base`;
    const { manifest: index } = parseManifest((await client.repository(name).getManifest("v1.10.3")).body);
    assert.ok(isImageIndex(index), "the installer is not an index");
    const platform = (arch: string) => index.manifests.find((d) => d.platform?.architecture === arch)?.digest;
    const arm64 = platform("arm64");
    const amd64 = platform("amd64");
    assert.ok(arm64 !== undefined && amd64 !== undefined, "the index lacks linux/amd64 or linux/arm64");
    const containerd = await startContainerd();
    try {
      await containerd.ctr(["image", "pull", "--plain-http", "--platform", "linux/arm64", `${name}:v1.10.3`], 120_000);
      // Blobs as bytes (the harness's ctr() decodes stdout as text).
      const content = async (digest: string): Promise<Buffer> =>
        (
          await promisify(execFile)("ctr", ["-a", containerd.socket, "content", "get", digest], {
            encoding: "buffer",
            maxBuffer: 64 * 1024 * 1024,
          })
        ).stdout;
      const manifest = JSON.parse((await content(arm64)).toString("utf8")) as ImageManifest;
      const config = JSON.parse((await content(manifest.config.digest)).toString("utf8")) as { architecture: string };
      assert.equal(config.architecture, "arm64");
      await assert.rejects(containerd.ctr(["content", "get", amd64]), "the amd64 image was fetched too");
      const layer = manifest.layers[0];
      assert.ok(layer !== undefined);
      assert.equal(elfMachineInTar(gunzipSync(await content(layer.digest)), "bin/busybox"), emAarch64);
    } finally {
      await containerd.stop();
    }
  });
});
