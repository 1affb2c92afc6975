// Registry trust for the commands that read a Talos release (`-ca-file`, `-certs-dir`): the test bed release in
// an embedded registry served over HTTPS with a certificate from a throwaway CA. `boot-assets build` (a child
// process, as a user runs it) builds with the CA given by file or through a certs.d directory, and fails
// naming the certificate problem without it; the factory started with `-ca-file` serves the version list.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { registryClientOptionsFor } from "../../src/factory/registry-access.ts";
import { startFactory } from "../../src/factory/run.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { type RegistryServer, startRegistryServer } from "../../src/registry/server.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { makeTestPki, type TestPki } from "../harness/tls.ts";
import { capturingLogger, waitFor200 } from "./service-harness.ts";

const version = "v1.10.3";
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

describe("registries served with a private CA", () => {
  let dir: string;
  let pki: TestPki;
  let server: RegistryServer;
  let outDir: string;
  let env: NodeJS.ProcessEnv;
  let schematicFile: string;
  let cacheDir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "registry-tls-"));
    pki = await makeTestPki(join(dir, "pki"));
    server = await startRegistryServer({
      root: join(dir, "registry"),
      listen: "127.0.0.1:0",
      logger: false,
      tls: { certFile: pki.certFile, keyFile: pki.keyFile },
    });
    outDir = join(dir, "release");
    await publishTestbedRelease({
      registry: server.address,
      repositoryFor: (name) => server.store.repository(name),
      out: outDir,
      versions: [version],
    });
    env = isolatedEnv(join(dir, "home"));
    schematicFile = join(dir, "schematic.yaml");
    await writeFile(schematicFile, "customization:\n  extraKernelArgs:\n    - tls.test=1\n");
    cacheDir = join(dir, "cache");
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const build = (output: string, trust: string[]) =>
    runCli(
      [
        "build",
        "--image-registry",
        server.address,
        ...trust,
        "-container-signature-pubkey",
        join(outDir, "cosign.pub"),
        "--talos-version",
        version,
        "--schematic",
        schematicFile,
        "--output-dir",
        output,
        "--cache-dir",
        cacheDir,
        "cmdline-metal-amd64",
        "kernel-amd64",
      ],
      env,
      120_000,
    );

  /** The assets were written, as stdout reports them, and the command line carries the schematic's argument. */
  async function assertBuilt(output: string, stdout: Buffer): Promise<void> {
    assert.deepEqual((await readdir(output)).sort(), ["cmdline-metal-amd64", "kernel-amd64"]);
    for (const name of ["cmdline-metal-amd64", "kernel-amd64"]) {
      const bytes = await readFile(join(output, name));
      assert.ok(bytes.length > 0, name);
      assert.ok(stdout.toString().includes(`${join(output, name)} ${bytes.length} sha256:${sha256(bytes)}\n`), name);
    }
    const cmdline = (await readFile(join(output, "cmdline-metal-amd64"), "utf8")).split(" ");
    assert.ok(cmdline.includes("tls.test=1"), cmdline.join(" "));
  }

  // One rule for build and the factory (src/factory/registry-access.ts): a loopback registry is reached as
  // go-containerregistry and docker reach one, plain HTTP allowed and its certificate not verified. (The
  // explanation of an untrusted certificate on other hosts is tested with inspect/tags: test/cli/image.test.ts.)
  it("build reaches a loopback TLS registry without its CA, as the factory does", async () => {
    const output = join(dir, "out-loopback");
    const result = await build(output, []);
    assert.equal(result.code, 0, result.stderr);
    await assertBuilt(output, result.stdout);
  });

  it("build with --ca-file (and no --insecure) builds cmdline and kernel", async () => {
    const output = join(dir, "out-ca-file");
    const result = await build(output, ["--ca-file", pki.caCertFile]);
    assert.equal(result.code, 0, result.stderr);
    await assertBuilt(output, result.stdout);
  });

  it("build with -certs-dir holding <host:port>/ca.crt builds too", async () => {
    const certsDir = join(dir, "certs.d");
    await mkdir(join(certsDir, server.address), { recursive: true });
    await copyFile(pki.caCertFile, join(certsDir, server.address, "ca.crt"));
    const output = join(dir, "out-certs-dir");
    const result = await build(output, ["-certs-dir", certsDir]);
    assert.equal(result.code, 0, result.stderr);
    await assertBuilt(output, result.stdout);
  });

  it("build refuses an unusable -ca-file at once, naming the flag and the file", async () => {
    const notPem = join(dir, "not-a-ca.txt");
    await writeFile(notPem, "not a certificate\n");
    const result = await build(join(dir, "out-bad-ca"), ["-ca-file", notPem]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim(), `boot-assets: -ca-file ${notPem}: no PEM certificate in it`);
  });

  it("the factory started with -image-registry <https host> -ca-file serves /versions", async () => {
    const dataDir = join(dir, "factory-data");
    const config = await parseFactoryCommandLine(
      [
        "-image-registry",
        server.address,
        "-ca-file",
        pki.caCertFile,
        "-container-signature-pubkey",
        join(outDir, "cosign.pub"),
        "-container-signature-subject-regexp=",
        "-http-port",
        "127.0.0.1:0",
        "-metrics-listen-addr=",
        "--data-dir",
        dataDir,
      ],
      {},
    );
    // The factory's client options carry the CA. They alone (without the insecure hosts: the factory treats
    // loopback registries as insecure, like docker, so its own client would not need the CA here) verify the
    // registry's certificate.
    const options = registryClientOptionsFor(config);
    assert.equal(options.caFile, pki.caCertFile);
    const verifying = new RegistryClient({ ...options, insecure: undefined });
    try {
      assert.equal((await verifying.ping(server.address)).scheme, "https");
    } finally {
      await verifying.close();
    }
    const logs: Array<Record<string, unknown>> = [];
    const factory = await startFactory(config, {
      logger: capturingLogger(logs),
      print: () => {},
      processMetrics: false,
    });
    try {
      await waitFor200(`${factory.url}/versions`);
      const res = await fetch(`${factory.url}/versions`);
      assert.deepEqual(await res.json(), [version]);
    } finally {
      await factory.close();
    }
  });
});
