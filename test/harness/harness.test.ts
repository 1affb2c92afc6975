import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startDistribution } from "./distribution.ts";
import { makeTestPki, type TestPki } from "./tls.ts";

/** GET over HTTPS trusting only `ca`; `servername` picks the name the certificate must match. */
function httpsGet(
  url: string,
  ca: Buffer,
  servername?: string,
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, servername }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("distribution harness", () => {
  let pki: TestPki;
  const pkiDir = join(tmpdir(), `harness-pki-${process.pid}`);
  before(async () => {
    pki = await makeTestPki(pkiDir);
  });
  after(() => rm(pkiDir, { recursive: true, force: true }));

  test("plain HTTP answers the /v2/ version check", async (t) => {
    const registry = await startDistribution();
    t.after(() => registry.stop());
    assert.equal(registry.kind, "distribution");
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    const res = await fetch(`${registry.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
  });

  test("TLS with the self-made CA verifies for 127.0.0.1 and localhost", async (t) => {
    const registry = await startDistribution({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
    t.after(() => registry.stop());
    assert.ok(registry.url.startsWith("https://"));
    const ca = await readFile(pki.caCertFile);
    const byIp = await httpsGet(`${registry.url}/v2/`, ca);
    assert.equal(byIp.status, 200);
    const port = registry.host.split(":")[1];
    const byName = await httpsGet(`https://localhost:${port}/v2/`, ca);
    assert.equal(byName.status, 200);
    // Without the CA the certificate must be refused: proves TLS is really verified above.
    await assert.rejects(fetch(`${registry.url}/v2/`));
  });

  test("token auth challenges anonymous clients with the configured realm", async (t) => {
    const registry = await startDistribution({
      tokenAuth: {
        realm: "http://127.0.0.1:1/token",
        service: "test-registry",
        issuer: "test-issuer",
        rootCertBundle: pki.tokenSigningCertFile,
      },
    });
    t.after(() => registry.stop());
    const res = await fetch(`${registry.url}/v2/`);
    assert.equal(res.status, 401);
    const challenge = res.headers.get("www-authenticate") ?? "";
    assert.match(challenge, /^Bearer /);
    assert.match(challenge, /realm="http:\/\/127\.0\.0\.1:1\/token"/);
    assert.match(challenge, /service="test-registry"/);
  });

  test("stop() removes the storage root", async () => {
    const registry = await startDistribution();
    await registry.stop();
    await assert.rejects(readFile(join(registry.root, "..", "config.yml")), { code: "ENOENT" });
  });
});
