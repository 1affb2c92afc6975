// Faults: clock skew against signature validity. No fake clock is available here (no faketime, and the
// verifier takes its time from the signature, not from a clock it exposes), so the check is made the way
// the verifier sees time: a keyless signature's certificate is judged at the time the transparency log
// recorded it (Rekor's integratedTime, under the log's signed entry timestamp), not at this machine's "now".
// So a factory whose clock runs far ahead of the short-lived certificate (as every real Fulcio certificate,
// valid 10 minutes, is by the time it is verified) must still accept it, and a log time outside the
// certificate's validity — before it existed or after it expired, as a skewed signer clock would produce — is
// refused. The images sit in the real CNCF distribution registry, signed by the project's test Sigstore
// (src/signing/testing), verified by SignatureVerifier as the factory does. A log time in the future (a log
// whose clock is ahead of ours) is recorded as observed, not asserted: neither upstream cosign nor
// sigstore-js refuses it on that ground.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { RegistryClient } from "../../src/oci/client/index.ts";
import type { RemoteRepository } from "../../src/oci/client/remote-repository.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { simpleSigningPayload } from "../../src/signing/cosign-format.ts";
import type { IdentityMatcher } from "../../src/signing/policy.ts";
import { createTestSigstore, type TestSigstore } from "../../src/signing/testing/index.ts";
import { SignatureVerifier } from "../../src/signing/verify.ts";
import { startDistribution } from "../harness/distribution.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { pushLegacySignatures, sha256, testClient } from "../signing/verify-fixtures.ts";
import { ResultRows } from "./harness.ts";

const rows = new ResultRows(import.meta.url);
const issuer = "https://token.actions.githubusercontent.com";
const subject = "https://github.com/OWNER/REPO/.github/workflows/release.yaml@refs/heads/main";
const identity: IdentityMatcher = {
  issuerRegExp: "^https://token\\.actions\\.githubusercontent\\.com$",
  subjectRegExp: "^https://github\\.com/OWNER/REPO/.+$",
};

async function pushImage(repo: RemoteRepository, content: string): Promise<Digest> {
  const layer = Buffer.from(`layer ${content}`);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", content }));
  await repo.putBlob(layer);
  await repo.putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: MediaType.ociLayerGzip, size: layer.length, digest: sha256(layer) }],
    }),
  );
  return repo.putManifest(manifest, MediaType.ociManifest, "v1");
}

describe("faults: clock skew against signature validity", () => {
  let sigstore: TestSigstore;
  let registry: RunningRegistry;
  let client: RegistryClient;
  let dir: string;
  let trustedRootFile: string;
  let counter = 0;

  before(async () => {
    sigstore = await createTestSigstore({ ctlog: true });
    dir = await mkdtemp(join(tmpdir(), "reliability-clock-"));
    trustedRootFile = join(dir, "trusted_root.json");
    await sigstore.writeTrustedRoot(trustedRootFile);
    registry = await startDistribution();
    client = testClient(registry.host);
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Signs a fresh image with a leaf valid [notBefore, notAfter] and a log time; verifies it. */
  async function verifyWith(window: { notBefore: number; notAfter: number; integratedTime: number }) {
    const name = `${registry.host}/clock/image-${++counter}`;
    const repo = client.repository(name);
    const digest = await pushImage(repo, `clock ${counter}`);
    const payload = simpleSigningPayload(name, digest);
    const signed = await sigstore.keylessSign(payload, {
      issuer,
      subject,
      integratedTime: window.integratedTime,
      leaf: { notBefore: new Date(window.notBefore * 1000), notAfter: new Date(window.notAfter * 1000) },
    });
    await pushLegacySignatures(repo, digest, [{ payload, annotations: signed.annotations }]);
    const verifier = await SignatureVerifier.create(client, {
      disabled: false,
      trustedRootFile,
      identities: [identity],
    });
    try {
      await verifier.verify(`${name}:v1`);
      return "accepted";
    } catch (err) {
      return `refused: ${(err as Error).message.slice(0, 140)}`;
    }
  }

  it("judges the certificate at the log's time, not the local clock", async () => {
    const now = Math.floor(Date.now() / 1000);
    const hour = 3600;
    const day = 24 * hour;
    const cases = [
      {
        // 12 hours: the test Sigstore's root (and so its log keys) is valid from a day ago
        // (src/signing/testing/ca.ts), and a log time before that is refused for that reason instead.
        name: "local clock 12 hours past the certificate (log time inside its 10 minutes)",
        window: { notBefore: now - 12 * hour - 600, notAfter: now - 12 * hour, integratedTime: now - 12 * hour - 300 },
        expect: "accepted",
      },
      {
        name: "log time before the certificate's notBefore (signer clock behind)",
        window: { notBefore: now - 600, notAfter: now, integratedTime: now - 3600 },
        expect: "refused",
      },
      {
        name: "log time after the certificate's notAfter (signer clock ahead)",
        window: { notBefore: now - 3600, notAfter: now - 1800, integratedTime: now - 60 },
        expect: "refused",
      },
    ];
    const failures: string[] = [];
    const outcomes: string[] = [];
    for (const c of cases) {
      const outcome = await verifyWith(c.window);
      outcomes.push(`${c.name}: ${outcome.startsWith("accepted") ? "accepted" : "refused"}`);
      if (!outcome.startsWith(c.expect)) failures.push(`${c.name}: ${outcome}`);
    }
    // Observed only: a certificate and log time a day in the future.
    const future = await verifyWith({
      notBefore: now + day - 300,
      notAfter: now + day + 300,
      integratedTime: now + day,
    });
    outcomes.push(
      `log time a day ahead of this clock (observed): ${future.startsWith("accepted") ? "accepted" : "refused"}`,
    );
    await rows.add({
      area: "faults",
      check: "clock skew against signature validity (certificate judged at the log's time)",
      tried: cases.length,
      failures: failures.length,
      detail: `${outcomes.join("; ")}${failures.length > 0 ? `; wrong: ${failures.join("; ")}` : ""}`,
    });
    assert.deepEqual(failures, []);
  });
});
