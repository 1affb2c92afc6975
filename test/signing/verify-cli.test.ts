// `boot-assets verify` as a user runs it: a success line per verified signature, and a non-zero exit with the
// reason otherwise.

import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { RegistryClient } from "../../src/oci/client/index.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import {
  Annotation,
  signatureImageConfig,
  signatureTag,
  simpleSigningPayload,
} from "../../src/signing/cosign-format.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import {
  fakeDigest,
  pushBundleReferrer,
  pushLegacySignatures,
  realBundleBytes,
  realBundleImageDigest,
  realBundleSubject,
  realBundleSubjectDescriptor,
  realLegacyDigest,
  realLegacyIssuer,
  realLegacyLayer,
  realLegacySubject,
  realVectors,
  sha256,
  testClient,
} from "./verify-fixtures.ts";

describe("boot-assets verify", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let keyFile: string;
  const keyDigest = fakeDigest("cli-key-signed");

  before(async () => {
    registry = await startEmbeddedRegistry();
    client = testClient(registry.host);
    home = await mkdtemp(join(tmpdir(), "verify-cli-"));
    env = isolatedEnv(home);

    const { payload } = await realLegacyLayer();
    const legacy = client.repository(`${registry.host}/salrashid123/server_image`);
    await legacy.putBlob(payload);
    await legacy.putBlob(signatureImageConfig([sha256(payload)]));
    await legacy.putManifest(
      await readFile(join(realVectors, "real-legacy-sig-manifest.json")),
      MediaType.ociManifest,
      signatureTag(realLegacyDigest),
    );
    await pushBundleReferrer(
      client.repository(`${registry.host}/siderolabs/my-extension`),
      realBundleSubjectDescriptor,
      await realBundleBytes(),
    );

    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    keyFile = join(home, "cosign.pub");
    await writeFile(keyFile, publicKey.export({ type: "spki", format: "pem" }));
    const keyed = client.repository(`${registry.host}/keyed/image`);
    const keyedPayload = simpleSigningPayload(`${registry.host}/keyed/image`, keyDigest);
    await pushLegacySignatures(keyed, keyDigest, [
      {
        payload: keyedPayload,
        annotations: { [Annotation.signature]: sign("sha256", keyedPayload, privateKey).toString("base64") },
      },
    ]);
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test("a legacy keyless signature: exit 0 and one line naming digest, kind and identity", async () => {
    const result = await runCli(
      [
        "verify",
        `${registry.host}/salrashid123/server_image@${realLegacyDigest}`,
        "--insecure",
        "--certificate-identity",
        realLegacySubject,
        "--certificate-oidc-issuer",
        realLegacyIssuer,
      ],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.toString("utf8").trim().split("\n");
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, new RegExp(`@${realLegacyDigest} legacy keyless `));
    assert.ok(lines[0]?.includes(realLegacySubject));
  });

  test("a bundle signature with the vendor regexp: exit 0", async () => {
    const result = await runCli(
      [
        "verify",
        `${registry.host}/siderolabs/my-extension@${realBundleImageDigest}`,
        "--insecure",
        "--certificate-identity-regexp",
        ".+@siderolabs\\.com",
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
      ],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString("utf8"), new RegExp(`bundle keyless ${realBundleSubject.replace(".", "\\.")}`));
  });

  test("a key signature with --key: exit 0", async () => {
    const result = await runCli(
      ["verify", `${registry.host}/keyed/image@${keyDigest}`, "--insecure", "--key", keyFile],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString("utf8"), /legacy key .*cosign\.pub \(ec prime256v1, SHA256:[0-9a-f]{64}\)/);
  });

  test("another identity: exit 6 (integrity) and the reason on stderr", async () => {
    const result = await runCli(
      [
        "verify",
        `${registry.host}/salrashid123/server_image@${realLegacyDigest}`,
        "--insecure",
        "--certificate-identity-regexp",
        "https://github.com/siderolabs/.+",
        "--certificate-oidc-issuer",
        realLegacyIssuer,
      ],
      env,
    );
    assert.equal(result.code, 6);
    assert.equal(result.stdout.length, 0);
    assert.match(
      result.stderr,
      /no signature matched .*layer 0: identity https:\/\/github\.com\/salrashid123\/.* does not match/,
    );
  });

  test("an invalid regexp: exit 2 naming the flag, before any request", async () => {
    const result = await runCli(
      [
        "verify",
        `127.0.0.1:1/none@${realLegacyDigest}`,
        "--certificate-identity-regexp",
        "(x",
        "--certificate-oidc-issuer",
        "i",
      ],
      env,
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--certificate-identity-regexp "\(x": invalid regular expression/);
  });

  test("no key and no identity: exit 2 saying what is missing", async () => {
    const result = await runCli(["verify", `${registry.host}/keyed/image@${keyDigest}`, "--insecure"], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /nothing to verify signatures against: give --key/);
  });
});
