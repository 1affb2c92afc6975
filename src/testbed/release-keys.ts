// The test bed release's signing material, created once and kept in the cache
// (`<cache>/testbed/keys/`) so every run signs with the same key and the same test Sigstore:
//   cosign.key / cosign.pub   the test key (cosign's encrypted format, empty password)
//   sigstore.json             the self-made Fulcio-like CA (root + intermediate, certificates and keys),
//                             the self-made Rekor key, and the keyless identity the release signs as
// and the two signers built from it: a key signer, and a keyless signer that certifies an ephemeral key with
// the test CA and logs each signature in the test Rekor (SET), as cosign does with Fulcio and Rekor v1.

import { createPrivateKey, createPublicKey, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../errors.ts";
import { Annotation } from "../signing/cosign-format.ts";
import { generateKeyPair, parsePrivateKey } from "../signing/keys.ts";
import { certificateIdentityKey, KeySigner, type SignatureMaterial, type Signer } from "../signing/signer.ts";
import type { SigstoreBundleJson } from "../signing/sigstore-bundle.ts";
import {
  type CertificateAuthorityMaterial,
  generateEcKeyPair,
  TestCertificateAuthority,
  TestSigstore,
  TestTransparencyLog,
  type TrustedRootJson,
} from "../signing/testing/index.ts";

/** Who the release's keyless signatures claim to be: a GitHub Actions release workflow, as upstream's are. */
export interface KeylessIdentityClaim {
  issuer: string;
  subject: string;
}

export const testbedKeylessIdentity: KeylessIdentityClaim = {
  issuer: "https://token.actions.githubusercontent.com",
  subject: "https://github.com/boot-assets/testbed/.github/workflows/release.yaml@refs/heads/main",
};

/** Format revision of sigstore.json; a file of another revision is refused rather than misread. */
const sigstoreFileRevision = 1;
const maxKeyFileBytes = 256 * 1024;

interface SigstoreFile {
  revision: number;
  ca: CertificateAuthorityMaterial;
  rekorPrivateKeyPem: string;
  identity: KeylessIdentityClaim;
}

export interface ReleaseKeys {
  dir: string;
  /** `cosign.key` text (encrypted, empty password) and `cosign.pub`. */
  privateKeyPem: string;
  publicKeyPem: string;
  identity: KeylessIdentityClaim;
  sigstore: TestSigstore;
  trustedRoot: TrustedRootJson;
  keySigner: KeySigner;
  keylessSigner: TestKeylessSigner;
}

/**
 * Keyless signing against the test Sigstore without any HTTP: each signature gets a fresh leaf certificate for
 * the identity and a Rekor entry with its SET, exactly the annotations cosign writes.
 */
export class TestKeylessSigner implements Signer {
  readonly description: string;
  private readonly sigstore: TestSigstore;
  private readonly identity: KeylessIdentityClaim;
  private identityKey: Promise<string> | undefined;

  constructor(sigstore: TestSigstore, identity: KeylessIdentityClaim) {
    this.sigstore = sigstore;
    this.identity = identity;
    this.description = `keyless (test Sigstore) as ${identity.subject}`;
  }

  async sign(payload: Buffer): Promise<SignatureMaterial> {
    const signed = await this.sigstore.keylessSign(payload, this.identity);
    return {
      signature: signed.signature,
      certificatePem: signed.certificatePem,
      chainPem: signed.chainPem,
      rekorBundle: signed.rekorBundle,
    };
  }

  async signBundle(payload: Buffer, payloadType: string): Promise<SigstoreBundleJson> {
    return (await this.sigstore.keylessBundle(payload, this.identity, payloadType)).bundle;
  }

  /** The release pushes no bundles, so there is never an earlier bundle of ours to recognise. */
  async recognizesBundle(): Promise<boolean> {
    return false;
  }

  /**
   * The same identity from the same CA: a signature from an earlier run (other leaf, same identity and chain)
   * counts as ours, so re-runs add nothing; one made with another (e.g. deleted and recreated) CA does not.
   */
  async recognizes(annotations: Readonly<Record<string, string>>): Promise<boolean> {
    const certificate = annotations[Annotation.certificate];
    if (!certificate || annotations[Annotation.chain] !== this.sigstore.ca.chainPem) return false;
    this.identityKey ??= this.sigstore
      .issueLeaf({ publicKey: generateEcKeyPair("P-256").publicKey, ...this.identity })
      .then((leaf) => certificateIdentityKey(leaf.pem));
    try {
      return certificateIdentityKey(certificate) === (await this.identityKey);
    } catch {
      return false;
    }
  }
}

async function readSmall(file: string): Promise<string> {
  const data = await readFile(file);
  if (data.length > maxKeyFileBytes) throw badRequest(`${file}: larger than ${maxKeyFileBytes} bytes`);
  return data.toString("utf8");
}

async function createKeyDir(dir: string, identity: KeylessIdentityClaim): Promise<void> {
  const temp = `${dir}.${randomUUID()}.part`;
  await mkdir(temp, { recursive: true, mode: 0o700 });
  try {
    const pair = generateKeyPair({ password: "" });
    const ca = await TestCertificateAuthority.create({ name: "boot-assets-testbed" });
    const rekor = generateEcKeyPair("P-256");
    const file: SigstoreFile = {
      revision: sigstoreFileRevision,
      ca: ca.toMaterial(),
      rekorPrivateKeyPem: rekor.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      identity,
    };
    await writeFile(join(temp, "cosign.key"), pair.privateKeyPem, { mode: 0o600 });
    await writeFile(join(temp, "cosign.pub"), pair.publicKeyPem, { mode: 0o644 });
    await writeFile(join(temp, "sigstore.json"), `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, dir);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    // Another run created the directory first: use its keys.
    if (!existsSync(join(dir, "sigstore.json"))) throw err;
  }
}

/** Loads the release keys from `dir`, creating them first when the directory does not exist yet. */
export async function loadOrCreateReleaseKeys(
  dir: string,
  options: { log?: (line: string) => void } = {},
): Promise<ReleaseKeys> {
  if (!existsSync(join(dir, "sigstore.json"))) {
    options.log?.(`creating test bed signing keys in ${dir}`);
    await createKeyDir(dir, testbedKeylessIdentity);
  }
  const privateKeyPem = await readSmall(join(dir, "cosign.key"));
  const publicKeyPem = await readSmall(join(dir, "cosign.pub"));
  const file = JSON.parse(await readSmall(join(dir, "sigstore.json"))) as SigstoreFile;
  if (file.revision !== sigstoreFileRevision)
    throw badRequest(`${join(dir, "sigstore.json")}: unknown revision ${file.revision}; remove ${dir} to recreate`);
  const rekorPrivateKey = createPrivateKey(file.rekorPrivateKeyPem);
  const sigstore = new TestSigstore(
    await TestCertificateAuthority.fromMaterial(file.ca),
    new TestTransparencyLog({ keys: { privateKey: rekorPrivateKey, publicKey: createPublicKey(rekorPrivateKey) } }),
    undefined,
  );
  const privateKey = parsePrivateKey(privateKeyPem, { password: "" });
  return {
    dir,
    privateKeyPem,
    publicKeyPem,
    identity: file.identity,
    sigstore,
    trustedRoot: sigstore.trustedRoot(),
    keySigner: new KeySigner(privateKey),
    keylessSigner: new TestKeylessSigner(sigstore, file.identity),
  };
}

/** Writes what verifiers need: cosign.key, cosign.pub, trusted_root.json and identity.json. */
export async function writeVerificationFiles(keys: ReleaseKeys, out: string): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files: [string, string, number][] = [
    ["cosign.key", keys.privateKeyPem, 0o600],
    ["cosign.pub", keys.publicKeyPem, 0o644],
    ["trusted_root.json", `${JSON.stringify(keys.trustedRoot, null, 2)}\n`, 0o644],
    [
      "identity.json",
      `${JSON.stringify({ issuer: keys.identity.issuer, subject: keys.identity.subject }, null, 2)}\n`,
      0o644,
    ],
  ];
  const written: string[] = [];
  for (const [name, content, mode] of files) {
    const path = join(out, name);
    await writeFile(path, content, { mode });
    await chmod(path, mode); // writeFile keeps the mode of a file that already existed
    written.push(path);
  }
  return written;
}
