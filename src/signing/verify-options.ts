// The one set of signature-verification options that every command which pulls images shares (`verify`, and
// later `build`, `factory`, `mirror`), the flags that set it (cosign's names), and the loader that reads the
// key and trusted-root files once and turns them into trust material.
//
// Modes: with a public key, signatures made with that key are accepted (no transparency log needed); with
// identities, keyless signatures whose certificate chains to the trusted root and matches an identity are
// accepted. Both may be configured at once: then either kind of signature is enough.

import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { type TrustMaterial, toTrustMaterial } from "@sigstore/verify";
import { type Command, Option } from "commander";
import { badRequest, isAppError } from "../errors.ts";
import { signatureAlgorithm } from "./keys.ts";
import { cosignFlagNames, type IdentityFlagNames, type IdentityMatcher, IdentityPolicy } from "./policy.ts";

export type SignatureHashAlgorithm = "sha256" | "sha384" | "sha512";

export interface VerificationOptions {
  /** Skip verification: images are still pinned to the digest resolved once, but marked unverified. */
  disabled: boolean;
  /** PEM public key (SPKI: ECDSA P-256/P-384/P-521, RSA, Ed25519) for key-signed images. */
  publicKeyFile?: string;
  /** Digest the key signatures were made over (cosign `--signature-digest-algorithm`); default: by key type. */
  publicKeyHashAlgo?: SignatureHashAlgorithm;
  /** Sigstore `trusted_root.json`; default: the public-good root shipped with @sigstore/tuf (works offline). */
  trustedRootFile?: string;
  /** Keyless identities; a certificate must match one of them. */
  identities: IdentityMatcher[];
}

/** A public key ready to verify with. */
export interface VerificationKey {
  publicKey: KeyObject;
  /** null for Ed25519, which hashes internally. */
  hashAlgo: SignatureHashAlgorithm | null;
  /** e.g. "cosign.pub (ec prime256v1, SHA256:…)", for messages and results. */
  description: string;
}

export interface KeylessTrust {
  trustMaterial: TrustMaterial;
  policy: IdentityPolicy;
  /** Where the root came from, for messages. */
  rootDescription: string;
}

/** What the verifier works with: files read once, keys parsed, regexps compiled. */
export interface LoadedVerification {
  disabled: boolean;
  key?: VerificationKey;
  keyless?: KeylessTrust;
}

const maxKeyFileBytes = 64 * 1024;
const maxTrustedRootBytes = 4 * 1024 * 1024;

async function readBoundedFile(file: string, flag: string, max: number): Promise<Buffer> {
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw badRequest(`${flag} ${file}: not a regular file`);
    size = info.size;
  } catch (err) {
    if (isAppError(err)) throw err;
    throw badRequest(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (size > max) throw badRequest(`${flag} ${file}: larger than ${max} bytes`);
  return readFile(file);
}

function keyDescription(key: KeyObject, file: string): string {
  const details = key.asymmetricKeyDetails;
  const type = key.asymmetricKeyType ?? "unknown";
  const shape = details?.namedCurve ?? (details?.modulusLength ? `${details.modulusLength} bits` : undefined);
  const spki = key.export({ type: "spki", format: "der" });
  const fingerprint = `SHA256:${createHashHex(spki)}`;
  return `${file} (${type}${shape ? ` ${shape}` : ""}, ${fingerprint})`;
}

function createHashHex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** cosign's default digest for a key type: the curve's own size for ECDSA, SHA-256 for RSA. */
function defaultHashFor(key: KeyObject): SignatureHashAlgorithm {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === "secp384r1") return "sha384";
  if (curve === "secp521r1") return "sha512";
  return "sha256";
}

export async function loadPublicKey(
  file: string,
  hashAlgo?: SignatureHashAlgorithm,
  flag = "--key",
): Promise<VerificationKey> {
  const pem = (await readBoundedFile(file, flag, maxKeyFileBytes)).toString("utf8");
  if (pem.includes("PRIVATE KEY"))
    throw badRequest(`${flag} ${file}: holds a private key; verification takes the public key`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw badRequest(`${flag} ${file}: not a PEM public key (${(err as Error).message})`);
  }
  const type = publicKey.asymmetricKeyType;
  if (type !== "ec" && type !== "rsa" && type !== "ed25519")
    throw badRequest(`${flag} ${file}: unsupported key type ${type}; expected ECDSA, RSA or Ed25519`);
  return {
    publicKey,
    hashAlgo: type === "ed25519" ? null : (hashAlgo ?? defaultHashFor(publicKey)),
    description: keyDescription(publicKey, file),
  };
}

/** The public-good Sigstore trusted root, as shipped inside @sigstore/tuf's seeds (no network needed). */
export async function publicGoodTrustedRootJson(): Promise<unknown> {
  const require = createRequire(import.meta.url);
  const seedsFile = require.resolve("@sigstore/tuf/seeds.json");
  const seeds = JSON.parse(await readFile(seedsFile, "utf8")) as Record<
    string,
    { targets?: Record<string, string> } | undefined
  >;
  const target = seeds["https://tuf-repo-cdn.sigstore.dev"]?.targets?.["trusted_root.json"];
  if (typeof target !== "string") throw new Error(`${seedsFile} holds no trusted_root.json target`);
  return JSON.parse(Buffer.from(target, "base64").toString("utf8"));
}

export async function loadTrustMaterial(file: string | undefined, flag = "--trusted-root"): Promise<TrustMaterial> {
  let json: unknown;
  if (file === undefined) {
    json = await publicGoodTrustedRootJson();
  } else {
    const text = (await readBoundedFile(file, flag, maxTrustedRootBytes)).toString("utf8");
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw badRequest(`${flag} ${file}: not JSON (${(err as Error).message})`);
    }
  }
  try {
    const root = TrustedRoot.fromJSON(json);
    if (root.certificateAuthorities.length === 0 && file !== undefined)
      throw new Error("it names no certificate authority");
    return toTrustMaterial(root);
  } catch (err) {
    throw badRequest(
      `${flag} ${file ?? "(public-good)"}: not a usable Sigstore trusted root (${(err as Error).message})`,
    );
  }
}

/** Flag names used in error messages; the factory's legacy flags have other names. */
export interface VerificationFlagNames extends IdentityFlagNames {
  key: string;
  trustedRoot: string;
}

export const cosignVerificationFlags: VerificationFlagNames = {
  ...cosignFlagNames,
  key: "--key",
  trustedRoot: "--trusted-root",
};

/** Reads the files once and compiles the policy. BadRequest (naming the flag) for anything unusable. */
/**
 * Verification that accepts exactly the signatures of one key (a private key is taken by its public half):
 * how the factory checks its own cache entries and installers.
 */
export function verificationByKey(key: KeyObject, description: string): LoadedVerification {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  return { disabled: false, key: { publicKey, hashAlgo: signatureAlgorithm(key), description } };
}

export async function loadVerification(
  options: VerificationOptions,
  flags: VerificationFlagNames = cosignVerificationFlags,
): Promise<LoadedVerification> {
  if (options.disabled) return { disabled: true };
  const loaded: LoadedVerification = { disabled: false };
  if (options.publicKeyFile !== undefined)
    loaded.key = await loadPublicKey(options.publicKeyFile, options.publicKeyHashAlgo, flags.key);
  if (options.identities.length > 0) {
    const policy = IdentityPolicy.compile(options.identities, flags);
    loaded.keyless = {
      policy,
      trustMaterial: await loadTrustMaterial(options.trustedRootFile, flags.trustedRoot),
      rootDescription: options.trustedRootFile ?? "the public-good Sigstore root",
    };
  } else if (options.trustedRootFile !== undefined && options.publicKeyFile === undefined) {
    throw badRequest(
      `${flags.trustedRoot} needs an identity: ${flags.subject} or ${flags.subjectRegExp}, with ${flags.issuer} or ${flags.issuerRegExp}`,
    );
  }
  if (!loaded.key && !loaded.keyless)
    throw badRequest(
      `nothing to verify signatures against: give ${flags.key}, or an identity (${flags.subject} or ${flags.subjectRegExp} with ${flags.issuer} or ${flags.issuerRegExp})`,
    );
  return loaded;
}

// ---- CLI flags ---------------------------------------------------------------------------------------

export interface VerificationCliOptions {
  key?: string;
  signatureDigestAlgorithm?: SignatureHashAlgorithm;
  trustedRoot?: string;
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  certificateOidcIssuerRegexp?: string;
}

/** Adds cosign's verification flags to a command. */
export function addVerificationOptions(command: Command): Command {
  return command
    .option("--key <file>", "PEM public key the signatures must verify with (ECDSA, RSA or Ed25519)")
    .addOption(
      new Option(
        "--signature-digest-algorithm <algo>",
        "digest the key signatures were made over (default: sha256, sha384 for P-384, sha512 for P-521 keys)",
      ).choices(["sha256", "sha384", "sha512"]),
    )
    .option(
      "--trusted-root <file>",
      "Sigstore trusted_root.json for keyless signatures (default: the public-good root)",
    )
    .option("--certificate-identity <subject>", "keyless: the certificate subject (SAN URI or email), exactly")
    .option(
      "--certificate-identity-regexp <re>",
      "keyless: RE2 regexp the WHOLE certificate subject must match (anchored, unlike cosign)",
    )
    .option("--certificate-oidc-issuer <issuer>", "keyless: the OIDC issuer, exactly")
    .option(
      "--certificate-oidc-issuer-regexp <re>",
      "keyless: RE2 regexp the WHOLE OIDC issuer must match (anchored, unlike cosign)",
    );
}

/** Maps the parsed flags onto the shared options object. */
export function verificationOptionsFrom(opts: VerificationCliOptions): VerificationOptions {
  const options: VerificationOptions = { disabled: false, identities: [] };
  if (opts.key !== undefined) options.publicKeyFile = opts.key;
  if (opts.signatureDigestAlgorithm !== undefined) options.publicKeyHashAlgo = opts.signatureDigestAlgorithm;
  if (opts.trustedRoot !== undefined) options.trustedRootFile = opts.trustedRoot;
  const identity: IdentityMatcher = {};
  if (opts.certificateIdentity !== undefined) identity.subject = opts.certificateIdentity;
  if (opts.certificateIdentityRegexp !== undefined) identity.subjectRegExp = opts.certificateIdentityRegexp;
  if (opts.certificateOidcIssuer !== undefined) identity.issuer = opts.certificateOidcIssuer;
  if (opts.certificateOidcIssuerRegexp !== undefined) identity.issuerRegExp = opts.certificateOidcIssuerRegexp;
  // A partial identity is kept so that compiling it names the missing flag.
  if (Object.keys(identity).length > 0) options.identities.push(identity);
  return options;
}
