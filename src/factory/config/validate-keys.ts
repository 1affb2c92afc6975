// Validation of the key material the factory serves or signs with: the HTTPS certificate and key, the Secure
// Boot keys, and the cache signing key. Each file is read once, here.

import type { KeyObject } from "node:crypto";
import { resolve } from "node:path";
import { isAppError } from "../../errors.ts";
import { wellKnownCertificatesFromDirectory } from "../../imager/well-known-certificates.ts";
import { keyPairProblems, keyProblems } from "../../signing/digest-signer.ts";
import { loadPrivateKey } from "../../signing/keys.ts";
import { FileProblem, readPemCertificate, readPemPrivateKey, readSmallTextFile } from "../../signing/pem-files.ts";
import { pathKind, readTlsPrivateKey } from "./files.ts";
import type { DataDirLayout, FactoryConfig, SecureBootConfig } from "./model.ts";
import { checkedFile, str, type ValidationContext } from "./validation-context.ts";

export async function validateSecureBoot(ctx: ValidationContext): Promise<SecureBootConfig | undefined> {
  const enabled = ctx.values.value<boolean>("secureBoot.enabled");
  const keys = {
    signingKey: "secureBoot.file.signingKeyPath",
    signingCert: "secureBoot.file.signingCertPath",
    pcrKey: "secureBoot.file.pcrKeyPath",
  } as const;
  const wellKnownKey = "secureBoot.wellKnownCertificatesDir";
  if (!enabled) {
    for (const key of [...Object.values(keys), wellKnownKey])
      if (str(ctx, key) !== "")
        ctx.problems.add(
          `${ctx.values.nameOf(key)}: set, but Secure Boot is not enabled (${ctx.values.nameOf("secureBoot.enabled")})`,
        );
    return { enabled: false };
  }
  let missing = false;
  for (const key of Object.values(keys))
    if (str(ctx, key) === "") {
      missing = true;
      ctx.problems.add(`${ctx.values.nameOf("secureBoot.enabled")}: needs ${ctx.values.nameOf(key)}`);
    }
  if (missing) return undefined;
  const wellKnownDir = str(ctx, wellKnownKey) === "" ? undefined : resolve(ctx.cwd, str(ctx, wellKnownKey));
  const [signingKey, signingCert, pcrKey, wellKnownOk] = await Promise.all([
    checkedFile(ctx, keys.signingKey, readPemPrivateKey),
    checkedFile(ctx, keys.signingCert, readPemCertificate),
    checkedFile(ctx, keys.pcrKey, readPemPrivateKey),
    wellKnownDir === undefined
      ? true
      : wellKnownCertificatesFromDirectory(
          wellKnownDir,
          `${ctx.values.nameOf(wellKnownKey)} ${str(ctx, wellKnownKey)}`,
        ).then(
          () => true,
          (err: unknown) => {
            if (!isAppError(err)) throw err;
            ctx.problems.add(err.message);
            return false;
          },
        ),
  ]);
  if (signingKey === undefined || signingCert === undefined || pcrKey === undefined || !wellKnownOk) return undefined;
  // Secure Boot keys are RSA of at least 2048 bits, the certificate this key's and valid now
  // (src/signing/digest-signer.ts).
  const origin = (key: string) => `${ctx.values.nameOf(key)} ${str(ctx, key)}`;
  const keyProblemsFound = [
    ...keyPairProblems(
      { key: signingKey, certificate: signingCert },
      { key: origin(keys.signingKey), certificate: origin(keys.signingCert) },
    ),
    ...keyProblems(pcrKey, origin(keys.pcrKey)),
  ];
  for (const problem of keyProblemsFound) ctx.problems.add(problem);
  if (keyProblemsFound.length > 0) return undefined;
  return {
    enabled: true,
    signingKeyFile: resolve(ctx.cwd, str(ctx, keys.signingKey)),
    signingKey,
    signingCertFile: resolve(ctx.cwd, str(ctx, keys.signingCert)),
    signingCert,
    pcrKeyFile: resolve(ctx.cwd, str(ctx, keys.pcrKey)),
    pcrKey,
    wellKnownCertificatesDir: wellKnownDir,
  };
}

async function readCacheSigningKey(path: string): Promise<KeyObject> {
  await readSmallTextFile(path); // existence, type and size, with a FileProblem naming them
  const key = await loadPrivateKey(path);
  if (key.asymmetricKeyType !== "ec")
    throw new FileProblem(
      `a ${key.asymmetricKeyType} key; cache entries are signed with an ECDSA key (PEM EC private key)`,
    );
  return key;
}

export async function validateCacheSigningKey(
  ctx: ValidationContext,
  layout: DataDirLayout,
): Promise<FactoryConfig["cacheSigningKey"] | undefined> {
  const key = "cache.signingKeyPath";
  if (str(ctx, key) !== "") {
    const privateKey = await checkedFile(ctx, key, readCacheSigningKey);
    if (privateKey === undefined) return undefined;
    return { file: resolve(ctx.cwd, str(ctx, key)), explicit: true, privateKey };
  }
  const file = layout.cacheSigningKeyFile;
  if ((await pathKind(file)) === "missing") return { file, explicit: false, privateKey: undefined };
  try {
    return { file, explicit: false, privateKey: await readCacheSigningKey(file) };
  } catch (err) {
    ctx.problems.add(
      `the data directory's cache signing key ${file}: ${(err as Error).message} (or give -cache-signing-key-path)`,
    );
    return undefined;
  }
}

export async function validateHttpTls(ctx: ValidationContext): Promise<FactoryConfig["http"]["tls"] | null> {
  const certKey = "http.certFile";
  const keyKey = "http.keyFile";
  const certFile = str(ctx, certKey);
  const keyFile = str(ctx, keyKey);
  if (certFile === "" && keyFile === "") return undefined;
  if (certFile === "" || keyFile === "") {
    const [given, missing] = certFile === "" ? [keyKey, certKey] : [certKey, keyKey];
    ctx.problems.add(`${ctx.values.nameOf(given)}: needs ${ctx.values.nameOf(missing)} too`);
    return null;
  }
  const [cert, key] = await Promise.all([
    checkedFile(ctx, certKey, readPemCertificate),
    checkedFile(ctx, keyKey, readTlsPrivateKey),
  ]);
  if (cert === undefined || key === undefined) return null;
  if (!cert.checkPrivateKey(key)) {
    ctx.problems.add(
      `${ctx.values.nameOf(certKey)} ${certFile}: does not certify the key of ${ctx.values.nameOf(keyKey)}`,
    );
    return null;
  }
  return { certFile: resolve(ctx.cwd, certFile), keyFile: resolve(ctx.cwd, keyFile) };
}
