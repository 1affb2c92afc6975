// The release's signing material is created once and reloaded: the same key, the same test CA and Rekor key,
// so a keyless signature made after a reload verifies (with sigstore-js) against the trusted root written
// before it, and an earlier signature by the same identity is recognised.

import assert from "node:assert/strict";
import { createPublicKey, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import { Annotation } from "../../src/signing/cosign-format.ts";
import { parsePrivateKey } from "../../src/signing/keys.ts";
import { loadOrCreateReleaseKeys, writeVerificationFiles } from "../../src/testbed/release-keys.ts";
import { legacyLayerAsBundle } from "../signing/helpers.ts";

describe("test bed release keys", () => {
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "testbed-keys-"));
  });
  after(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("are created once and reloaded unchanged", async () => {
    const dir = join(scratch, "keys");
    const first = await loadOrCreateReleaseKeys(dir);
    const second = await loadOrCreateReleaseKeys(dir);
    assert.equal(second.publicKeyPem, first.publicKeyPem);
    assert.deepEqual(second.trustedRoot, first.trustedRoot);
    assert.deepEqual(second.identity, {
      issuer: "https://token.actions.githubusercontent.com",
      subject: "https://github.com/boot-assets/testbed/.github/workflows/release.yaml@refs/heads/main",
    });
    // cosign.key opens with the empty password and matches cosign.pub.
    const privateKey = parsePrivateKey(second.privateKeyPem, { password: "" });
    const signature = cryptoSign("sha256", Buffer.from("x"), privateKey);
    assert.ok(cryptoVerify("sha256", Buffer.from("x"), createPublicKey(second.publicKeyPem), signature));
  });

  test("a keyless signature made after a reload verifies against the trusted root written before it", async () => {
    const dir = join(scratch, "keys-2");
    const out = join(scratch, "out");
    await writeVerificationFiles(await loadOrCreateReleaseKeys(dir), out);
    const trustedRoot = JSON.parse(await readFile(join(out, "trusted_root.json"), "utf8"));
    const identity = JSON.parse(await readFile(join(out, "identity.json"), "utf8"));

    const reloaded = await loadOrCreateReleaseKeys(dir);
    const payload = Buffer.from('{"critical":{}}');
    const material = await reloaded.keylessSigner.sign(payload);
    const annotations = {
      [Annotation.signature]: material.signature.toString("base64"),
      [Annotation.certificate]: material.certificatePem as string,
      [Annotation.chain]: material.chainPem as string,
      [Annotation.bundle]: JSON.stringify(material.rekorBundle),
    };
    const verifier = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(trustedRoot)), { ctlogThreshold: 0 });
    const signer = verifier.verify(toSignedEntity(legacyLayerAsBundle(payload, annotations), payload));
    assert.equal(signer.identity?.subjectAlternativeName, identity.subject);
    assert.equal(signer.identity?.extensions?.issuer, identity.issuer);

    // Another load (another leaf) recognises it as its own; a key signature is not.
    const third = await loadOrCreateReleaseKeys(dir);
    assert.equal(await third.keylessSigner.recognizes(annotations), true);
    assert.equal(
      await third.keylessSigner.recognizes({ [Annotation.signature]: annotations[Annotation.signature] }),
      false,
    );
  });
});
