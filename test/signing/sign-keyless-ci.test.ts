// `boot-assets sign --keyless` as the release workflow runs it in GitHub Actions (.github/workflows/boot-assets.yaml):
// no --identity-token, the OIDC token fetched from the job's token service (ACTIONS_ID_TOKEN_REQUEST_URL with
// `audience=sigstore`, bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN — the request GitHub documents for `id-token: write`
// jobs), a Fulcio certificate for the workflow identity, a Rekor entry; then `boot-assets verify` with the
// identity and issuer an operator gives the factory (docs/release-workflow.md).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import {
  createTestSigstore,
  makeTestIdentityToken,
  startTestSigstoreServer,
  type TestSigstoreServer,
} from "../../src/signing/testing/index.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";

const run = promisify(execFile);
const main = new URL("../../src/cli/main.ts", import.meta.url).pathname;

const owner = "acme";
const workflowRef = `${owner}/talos-boot-assets/.github/workflows/boot-assets.yaml@refs/heads/release-1.10`;
const issuer = "https://token.actions.githubusercontent.com";
const requestToken = "runtime-request-token";

describe("keyless signing with the GitHub Actions OIDC token", () => {
  let registry: RunningRegistry;
  let sigstore: TestSigstoreServer;
  let tokenService: Server;
  let tokenUrl: string;
  let dir: string;
  let trustedRoot: string;
  const tokenRequests: { audience: string | null; authorization: string | undefined }[] = [];

  before(async () => {
    registry = await startEmbeddedRegistry();
    const testSigstore = await createTestSigstore();
    sigstore = await startTestSigstoreServer(testSigstore);
    dir = await mkdtemp(join(tmpdir(), "sign-keyless-ci-"));
    trustedRoot = join(dir, "trusted_root.json");
    await testSigstore.writeTrustedRoot(trustedRoot);
    // The job's token service: answers `{"value": <JWT>}` to a bearer-authenticated GET.
    tokenService = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      tokenRequests.push({ audience: url.searchParams.get("audience"), authorization: req.headers.authorization });
      if (req.headers.authorization !== `Bearer ${requestToken}`) {
        res.writeHead(401).end();
        return;
      }
      const value = makeTestIdentityToken({
        iss: issuer,
        sub: `repo:${owner}/talos-boot-assets:ref:refs/heads/release-1.10`,
        job_workflow_ref: workflowRef,
        aud: url.searchParams.get("audience") ?? "",
      });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ count: 1, value }));
    });
    await new Promise<void>((resolve) => tokenService.listen(0, "127.0.0.1", resolve));
    // GitHub hands jobs a URL that already has a query; the client appends `audience`.
    tokenUrl = `http://127.0.0.1:${(tokenService.address() as AddressInfo).port}/token?api-version=2.0`;
  });
  after(async () => {
    tokenService?.close();
    await sigstore?.close();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("signs with the workflow's identity and verifies with the identity the factory is given", async () => {
    const repo = new RegistryClient({ insecure: [registry.host], certsDirs: [] }).repository(
      `${registry.host}/boot-assets/extensions`,
    );
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}` as const;
    await repo.putBlob(config, { digest: configDigest });
    const digest = await repo.putManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
          layers: [],
        }),
      ),
      MediaType.ociManifest,
      "v1.10.3",
    );
    const env = {
      ...process.env,
      ACTIONS_ID_TOKEN_REQUEST_URL: tokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
    };
    const image = `${registry.host}/boot-assets/extensions@${digest}`;
    const signed = await run(
      process.execPath,
      [main, "sign", image, "--keyless", "--fulcio-url", sigstore.url, "--rekor-url", sigstore.url, "--insecure"],
      { env },
    );
    assert.equal(
      signed.stdout,
      `${registry.host}/boot-assets/extensions@${digest}: wrote signature sha256-${digest.slice(7)}.sig\n`,
    );
    assert.deepEqual(tokenRequests, [{ audience: "sigstore", authorization: `Bearer ${requestToken}` }]);
    assert.equal(sigstore.entries.length, 1, "one Rekor entry");

    // The factory's flags in the README's deployment accept this workflow by regexp; verify does the same check.
    const verifyArgs = (identity: string) => [
      main,
      "verify",
      image,
      "--trusted-root",
      trustedRoot,
      "--certificate-identity-regexp",
      identity,
      "--certificate-oidc-issuer-regexp",
      "https://token\\.actions\\.githubusercontent\\.com",
      "--insecure",
    ];
    const verified = await run(
      process.execPath,
      verifyArgs(
        `https://github\\.com/${owner}/talos-boot-assets/\\.github/workflows/boot-assets\\.yaml@refs/heads/release-.+`,
      ),
    );
    assert.match(verified.stdout, new RegExp(`https://github\\.com/${workflowRef.replace(/[.]/g, "\\.")}`));
    await assert.rejects(
      run(process.execPath, verifyArgs("https://github\\.com/someone-else/.+")),
      (err: { stderr: string }) => /identity|subject/i.test(err.stderr),
    );
  });

  it("without the token service's variables, keyless signing fails and says why", async () => {
    const env = { ...process.env };
    delete env.ACTIONS_ID_TOKEN_REQUEST_URL;
    delete env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    await assert.rejects(
      run(
        process.execPath,
        [
          main,
          "sign",
          `${registry.host}/boot-assets/extensions:v1.10.3`,
          "--keyless",
          "--fulcio-url",
          sigstore.url,
          "--insecure",
        ],
        { env },
      ),
      (err: { stderr: string; code: number }) =>
        err.code === 2 && /no OIDC token .*id-token: write.*--identity-token/.test(err.stderr),
    );
  });
});
