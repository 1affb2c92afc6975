// Export to an OCI image layout, read back by the real skopeo; the server over TLS; and the `boot-assets registry` CLI.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { openStore } from "../../src/registry/store.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import { makeTestPki } from "../harness/tls.ts";
import { imageIndex, ociIndex, ociManifest, sha256, testImage } from "./fixtures.ts";

const execFileAsync = promisify(execFile);
const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "registry-export-"));
  dirs.push(dir);
  return dir;
}
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function skopeo(...args: string[]): Promise<Buffer> {
  const { stdout } = await execFileAsync("skopeo", ["--insecure-policy", ...args], {
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** A store with repository `apps/multi`: an index `v1` over amd64 and arm64 images (each also tagged). */
async function storeWithMultiArchImage(root: string) {
  const store = await openStore(root);
  const repo = store.repository("apps/multi");
  const amd = testImage("amd64", "export");
  const arm = testImage("arm64", "export");
  for (const image of [amd, arm]) {
    await repo.putBlob(image.config.data);
    await repo.putBlob(image.layer.data);
  }
  await repo.putManifest(amd.manifest.data, ociManifest, "amd64");
  await repo.putManifest(arm.manifest.data, ociManifest, "arm64");
  const index = imageIndex([
    { manifest: amd.manifest, architecture: "amd64" },
    { manifest: arm.manifest, architecture: "arm64" },
  ]);
  await repo.putManifest(index.data, ociIndex, "v1");
  return { store, amd, arm, index };
}

describe("export to an OCI image layout", () => {
  test("an index with 2 platform manifests is read by skopeo with matching digests", async (t) => {
    const dir = await tempDir();
    const { store, amd, arm, index } = await storeWithMultiArchImage(join(dir, "store"));
    t.after(() => store.close());
    const layoutDir = join(dir, "layout");
    const result = await store.export("apps/multi", ["v1"], layoutDir);
    assert.deepEqual(result.tags, [{ tag: "v1", digest: index.digest }]);

    const raw = await skopeo("inspect", "--raw", `oci:${layoutDir}:v1`);
    assert.equal(sha256(raw), index.digest);
    assert.deepEqual(raw, index.data);
    const armRaw = await skopeo("inspect", "--raw", "--override-arch", "arm64", `oci:${layoutDir}:v1`);
    assert.equal(sha256(armRaw), index.digest, "--raw returns the index itself");

    // Copying every platform out makes skopeo read and verify each manifest, config and layer.
    const copyDir = join(dir, "copy");
    await skopeo("copy", "--all", "--preserve-digests", `oci:${layoutDir}:v1`, `oci:${copyDir}:v1`);
    for (const image of [amd, arm]) {
      for (const blob of [image.manifest, image.config, image.layer]) {
        const copied = await readFile(join(copyDir, "blobs", "sha256", blob.digest.slice(7)));
        assert.equal(sha256(copied), blob.digest);
      }
    }
    const copiedIndex = JSON.parse(await readFile(join(copyDir, "index.json"), "utf8"));
    assert.equal(copiedIndex.manifests[0].digest, index.digest);
  });

  test("exporting all tags names each in index.json; the CLI does it from a read-only store", async (t) => {
    const dir = await tempDir();
    const root = join(dir, "store");
    const { store, amd, arm, index } = await storeWithMultiArchImage(root);
    t.after(() => store.close());
    const layoutDir = join(dir, "layout");
    // The store stays open for writing here: export opens it read-only, without the lock.
    const { stdout } = await execFileAsync(process.execPath, [
      cli,
      "registry",
      "export",
      "--root",
      root,
      "apps/multi",
      "--output",
      layoutDir,
    ]);
    assert.match(stdout, /exported 3 tag\(s\)/);
    const layoutIndex = JSON.parse(await readFile(join(layoutDir, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const named = Object.fromEntries(
      layoutIndex.manifests.map((m) => [m.annotations["org.opencontainers.image.ref.name"], m.digest]),
    );
    assert.deepEqual(named, { amd64: amd.manifest.digest, arm64: arm.manifest.digest, v1: index.digest });
    const amdRaw = await skopeo("inspect", "--raw", `oci:${layoutDir}:amd64`);
    assert.equal(sha256(amdRaw), amd.manifest.digest);
  });
});

describe("embedded registry with TLS", () => {
  test("serves HTTPS with the given certificate, trusted through the test CA", async (t) => {
    const pki = await makeTestPki(join(await tempDir(), "pki"));
    const registry = await startEmbeddedRegistry({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
    t.after(() => registry.stop());
    assert.ok(registry.url.startsWith("https://"));
    const ca = await readFile(pki.caCertFile);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      httpsGet(`${registry.url}/v2/`, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on("error", reject);
    });
    assert.equal(status, 200);
    // Without the CA the certificate is not trusted.
    await assert.rejects(
      new Promise((resolve, reject) => httpsGet(`${registry.url}/v2/`, resolve).on("error", reject)),
      /self-signed|unable to verify|certificate/i,
    );
  });
});

describe("boot-assets registry (CLI)", () => {
  test("serves until SIGTERM, then stops cleanly and releases the store lock", async () => {
    const dir = await tempDir();
    const root = join(dir, "store");
    const child = spawn(
      process.execPath,
      [cli, "registry", "--listen", "127.0.0.1:0", "--root", root, "--log-level", "warn"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    const listening = new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        const match = /listening on (http:\/\/\S+), storage root (\S+)/.exec(stdout);
        if (match?.[1]) resolve(match[1]);
      });
      child.once("exit", (code) => reject(new Error(`registry exited early (${code})`)));
    });
    const url = await listening;
    assert.ok(stdout.includes(root), "prints the storage root");
    const res = await fetch(`${url}/v2/`);
    assert.equal(res.status, 200);
    await access(join(root, "lock"));
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
    await assert.rejects(access(join(root, "lock")), "the lock file is gone");
  });

  test("a second server on a locked root fails with the holder named", async (t) => {
    const dir = await tempDir();
    const root = join(dir, "store");
    const store = await openStore(root);
    t.after(() => store.close());
    const failed = await execFileAsync(process.execPath, [
      cli,
      "registry",
      "--listen",
      "127.0.0.1:0",
      "--root",
      root,
    ]).then(
      () => assert.fail("the second server started"),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(failed.code, 4, "Conflict exit code");
    assert.match(failed.stderr, new RegExp(`locked by process ${process.pid}.*lock file ${join(root, "lock")}`));
  });
});
