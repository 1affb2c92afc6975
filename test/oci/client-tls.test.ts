// TLS to the real distribution registry serving a certificate from a self-made CA: refused without the CA,
// accepted with `caFile`, with the `certs.d/<host:port>/ca.crt` convention, or when marked insecure.

import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AppError } from "../../src/errors.ts";
import { RegistryClient, type RegistryClientOptions } from "../../src/oci/client/client.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { startDistribution } from "../harness/distribution.ts";
import { makeTestPki, type TestPki } from "../harness/tls.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { imageManifest, testBlob } from "./client-suite.ts";

describe("registry client TLS against distribution", () => {
  let dir: string;
  let pki: TestPki;
  let registry: RunningRegistry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "client-tls-"));
    pki = await makeTestPki(join(dir, "pki"));
    registry = await startDistribution({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function roundTrip(options: RegistryClientOptions, repoName: string) {
    const client = new RegistryClient({ credentials: async () => undefined, certsDirs: [], ...options });
    try {
      assert.deepEqual(await client.ping(registry.host), { scheme: "https", auth: "none" });
      const repo = client.repository(`${registry.host}/${repoName}`);
      const config = testBlob(JSON.stringify({ repoName }));
      await repo.putBlob(config.data);
      const manifest = imageManifest(config, []);
      await repo.putManifest(manifest.data, MediaType.ociManifest, "v1");
      assert.equal((await repo.getManifest("v1")).digest, manifest.digest);
    } finally {
      await client.close();
    }
  }

  it("refuses a registry whose certificate it cannot verify", async () => {
    const client = new RegistryClient({ credentials: async () => undefined, certsDirs: [], retries: 0 });
    try {
      await assert.rejects(client.ping(registry.host), (err: unknown) => {
        assert.ok(err instanceof AppError);
        assert.equal(err.kind, "Upstream");
        assert.match(err.message, /certificate/i);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  it("trusts the registry with --ca-file", async () => {
    await roundTrip({ caFile: pki.caCertFile }, "tls/cafile");
  });

  it("trusts the registry through certs.d/<host:port>/ca.crt", async () => {
    const certsDir = join(dir, "certs.d");
    await mkdir(join(certsDir, registry.host), { recursive: true });
    await copyFile(pki.caCertFile, join(certsDir, registry.host, "ca.crt"));
    await roundTrip({ certsDirs: [join(dir, "elsewhere"), certsDir] }, "tls/certsd");
  });

  it("skips verification for a registry marked insecure, still over https", async () => {
    await roundTrip({ insecure: (host) => host === registry.host }, "tls/insecure");
  });

  it("does not extend insecure to other registries", async () => {
    const client = new RegistryClient({
      credentials: async () => undefined,
      certsDirs: [],
      retries: 0,
      insecure: new Set(["some.other.registry:5000"]),
    });
    try {
      await assert.rejects(client.ping(registry.host), /certificate/i);
    } finally {
      await client.close();
    }
  });
});
