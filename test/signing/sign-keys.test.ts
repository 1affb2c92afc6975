import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import {
  decryptPrivateKey,
  encryptPrivateKey,
  generateKeyPair,
  parsePrivateKey,
  parsePublicKey,
  signWithKey,
} from "../../src/signing/keys.ts";

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
}

describe("signing keys", () => {
  it("decrypts a cosign.key written by the real cosign (empty password)", async () => {
    const pem = await readFile(
      new URL("../fixtures/signing/cosign-generated-empty-password.key", import.meta.url),
      "utf8",
    );
    const key = parsePrivateKey(pem, { password: "" });
    assert.equal(key.asymmetricKeyType, "ec");
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.throws(() => parsePrivateKey(pem, { password: "not-it" }), /decryption failed/);
  });

  it("writes cosign's encrypted format and reads it back, with COSIGN_PASSWORD as the default password", () => {
    const pair = generateKeyPair({ password: "s3cret" });
    assert.match(pair.privateKeyPem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    const json = JSON.parse(pemBody(pair.privateKeyPem).toString());
    assert.deepEqual(Object.keys(json), ["kdf", "cipher", "ciphertext"]);
    assert.deepEqual(json.kdf.params, { N: 65536, r: 8, p: 1 });
    assert.equal(json.kdf.name, "scrypt");
    assert.equal(json.cipher.name, "nacl/secretbox");
    assert.equal(Buffer.from(json.cipher.nonce, "base64").length, 24);

    const saved = process.env.COSIGN_PASSWORD;
    process.env.COSIGN_PASSWORD = "s3cret";
    try {
      const key = parsePrivateKey(pair.privateKeyPem);
      const signature = signWithKey(key, Buffer.from("hello"));
      assert.ok(verify("sha256", Buffer.from("hello"), parsePublicKey(pair.publicKeyPem), signature));
    } finally {
      if (saved === undefined) delete process.env.COSIGN_PASSWORD;
      else process.env.COSIGN_PASSWORD = saved;
    }
    assert.throws(() => parsePrivateKey(pair.privateKeyPem, { password: "wrong" }), /decryption failed/);
  });

  it("refuses attacker-chosen scrypt parameters and unknown ciphers before deriving anything", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const json = JSON.parse(pemBody(encryptPrivateKey(privateKey, "", { scryptN: 1 << 15 })).toString());
    assert.ok(decryptPrivateKey(Buffer.from(JSON.stringify(json)), "")); // the older cosign N=2^15 is accepted
    const huge = structuredClone(json);
    huge.kdf.params.N = 1 << 30;
    assert.throws(() => decryptPrivateKey(Buffer.from(JSON.stringify(huge)), ""), /kdf parameters/);
    const otherCipher = structuredClone(json);
    otherCipher.cipher.name = "aes";
    assert.throws(() => decryptPrivateKey(Buffer.from(JSON.stringify(otherCipher)), ""), /unknown cipher/);
  });

  it("reads plain PEM keys (PKCS#8, SEC1, PKCS#1) and signs with cosign's hash per key type", () => {
    const ec384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const sec1 = ec384.privateKey.export({ type: "sec1", format: "pem" }).toString();
    const key384 = parsePrivateKey(sec1);
    const data = Buffer.from("payload");
    assert.ok(verify("sha384", data, ec384.publicKey, signWithKey(key384, data)));

    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pkcs1 = rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    assert.ok(verify("sha256", data, rsa.publicKey, signWithKey(parsePrivateKey(pkcs1), data)));

    const p256 = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pkcs8 = p256.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    assert.ok(verify("sha256", data, p256.publicKey, signWithKey(parsePrivateKey(pkcs8), data)));

    const ed = generateKeyPairSync("ed25519");
    assert.throws(
      () => parsePrivateKey(ed.privateKey.export({ type: "pkcs8", format: "pem" }).toString()),
      /Ed25519ph/,
    );
  });
});
