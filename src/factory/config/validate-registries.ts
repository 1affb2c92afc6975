// Validation of where images come from and go to: the imager and installer images, extra catalogs, the
// repositories of the stores, registry TLS trust, and how source signatures are verified.

import { resolve } from "node:path";
import { parseReference } from "../../oci/reference.ts";
import type { IdentityMatcher } from "../../signing/policy.ts";
import type {
  SignatureHashAlgorithm,
  VerificationFlagNames,
  VerificationOptions,
} from "../../signing/verify-options.ts";
import { pathKind, readPemCaBundle } from "./files.ts";
import { extraCatalogReference, type ImageSources, type RegistryTls, type StoreLocation } from "./model.ts";
import {
  joinRepositoryParts,
  type RepositoryGroupSpec,
  repositoryGroups,
  upstreamUnanchoredSubjectRegExps,
} from "./settings.ts";
import { check, checkedFile, str, type ValidationContext } from "./validation-context.ts";
import { checkRegistryHost, parseRemoteRepository } from "./value-checks.ts";

const hashAlgorithms = new Set<SignatureHashAlgorithm>(["sha256", "sha384", "sha512"]);

function groupKeys(group: RepositoryGroupSpec): string[] {
  return ["registry", "namespace", "repository"].map((part) => `${group.key}.${part}`);
}

function groupName(ctx: ValidationContext, group: RepositoryGroupSpec): string {
  const keys = groupKeys(group);
  const allDefault = keys.every((key) => ctx.values.get(key).origin.kind === "default");
  if (allDefault) return group.flag !== undefined ? `-${group.flag}` : group.key;
  return ctx.values.nameOfLatest(keys);
}

export function repositoryLocation(
  ctx: ValidationContext,
  group: RepositoryGroupSpec,
  embedded: string | undefined,
): StoreLocation | undefined {
  const parts = {
    registry: str(ctx, `${group.key}.registry`),
    namespace: str(ctx, `${group.key}.namespace`),
    repository: str(ctx, `${group.key}.repository`),
  };
  const insecure = ctx.values.value<boolean>(`${group.key}.insecure`);
  const reference = joinRepositoryParts(parts);
  if (reference === "") {
    if (insecure)
      ctx.problems.add(
        `${ctx.values.nameOf(`${group.key}.insecure`)}: set, but there is no repository (${groupName(ctx, group)}) to connect to`,
      );
    return embedded === undefined ? undefined : { kind: "embedded", repository: embedded };
  }
  try {
    return parseRemoteRepository(reference, insecure);
  } catch (err) {
    ctx.problems.add(`${groupName(ctx, group)} ${JSON.stringify(reference)}: ${(err as Error).message}`);
    return undefined;
  }
}

export function group(key: string): RepositoryGroupSpec {
  const found = repositoryGroups.find((g) => g.key === key);
  if (found === undefined) throw new Error(`no repository group ${key}`);
  return found;
}
export function validateImages(ctx: ValidationContext): ImageSources | undefined {
  const registry = str(ctx, "artifacts.core.registry");
  const namespace = str(ctx, "artifacts.core.namespace");
  const registryOk = check(ctx, "artifacts.core.registry", () => {
    checkRegistryHost(registry);
    return true;
  });
  const components = {
    imager: "artifacts.core.components.imager",
    installerBase: "artifacts.core.components.installerBase",
    installer: "artifacts.core.components.installer",
    extensionManifest: "artifacts.core.components.extensionManifest",
    overlayManifest: "artifacts.core.components.overlayManifest",
    talosctl: "artifacts.core.components.talosctl",
  } as const;
  const names: Partial<Record<keyof typeof components, string>> = {};
  for (const [field, key] of Object.entries(components) as Array<[keyof typeof components, string]>) {
    const name = str(ctx, key);
    const full = [registry, namespace, name].filter((p) => p !== "").join("/");
    const ok = check(ctx, key, () => {
      if (name === "") throw new Error("must not be empty");
      if (name.includes("@") || /:[^/]*$/.test(name))
        throw new Error(`an image name takes no tag or digest: ${JSON.stringify(name)}`);
      if (registryOk) {
        const ref = parseReference(full);
        if (ref.registry !== registry) throw new Error(`does not stay on the image registry: ${JSON.stringify(full)}`);
      }
      return true;
    });
    if (ok) names[field] = full;
  }
  if (!registryOk || Object.keys(names).length !== Object.keys(components).length) return undefined;
  return {
    registry,
    namespace,
    insecure: ctx.values.value<boolean>("artifacts.core.insecure"),
    ...(names as Record<keyof typeof components, string>),
  };
}

export function validateExtraCatalogs(ctx: ValidationContext): string[] {
  const key = "artifacts.extraExtensionCatalogs";
  const templates = ctx.values.value<readonly string[]>(key);
  const valid: string[] = [];
  for (const template of templates) {
    const ok = check(ctx, key, () => {
      const sample = extraCatalogReference(template, "v1.9.0");
      if (sample.includes("{") || sample.includes("}"))
        throw new Error(`${JSON.stringify(template)}: the only placeholder is {version}`);
      const ref = parseReference(sample);
      const firstComponent = sample.split("/")[0] as string;
      if (!sample.includes("/") || ref.registry !== firstComponent)
        throw new Error(`${JSON.stringify(template)}: needs a registry host, e.g. ghcr.io/team/extensions:{version}`);
      if (template.split("/")[0]?.includes("{version}"))
        throw new Error(`${JSON.stringify(template)}: {version} cannot be part of the registry host`);
      return true;
    });
    if (ok) valid.push(template);
  }
  return valid;
}

/** `-ca-file` must be a readable PEM CA bundle, each `-certs-dir` an existing directory: checked once, here. */
export async function validateRegistryTls(ctx: ValidationContext): Promise<RegistryTls | undefined> {
  const caKey = "registry.caFile";
  const dirsKey = "registry.certsDirs";
  let ok = true;
  let caFile: string | undefined;
  if (str(ctx, caKey) !== "") {
    const read = await checkedFile(ctx, caKey, readPemCaBundle);
    if (read === undefined) ok = false;
    else caFile = resolve(ctx.cwd, str(ctx, caKey));
  }
  const given = ctx.values.value<readonly string[]>(dirsKey);
  const certsDirs: string[] = [];
  for (const dir of given) {
    const path = resolve(ctx.cwd, dir);
    const kind = dir === "" ? "missing" : await pathKind(path);
    if (kind === "directory") certsDirs.push(path);
    else {
      ok = false;
      ctx.problems.add(
        `${ctx.values.nameOf(dirsKey)} ${dir}: ${kind === "missing" ? "no such directory" : "not a directory"}`,
      );
    }
  }
  if (!ok) return undefined;
  return { caFile, certsDirs: given.length > 0 ? certsDirs : undefined };
}

export function validateSignatureOptions(ctx: ValidationContext): {
  options: VerificationOptions;
  flagNames: VerificationFlagNames;
  /** A problem was already reported: loading would only repeat it differently. */
  refused: boolean;
} {
  const { values } = ctx;
  const subjectRegExp = str(ctx, "containerSignature.subjectRegExp");
  const issuerRegExp = str(ctx, "containerSignature.issuerRegExp");
  const issuer = str(ctx, "containerSignature.issuer");
  const publicKeyFile = str(ctx, "containerSignature.publicKeyFile");
  const hashAlgo = str(ctx, "containerSignature.publicKeyHashAlgo");
  const trustedRootFile = str(ctx, "containerSignature.trustedRootFile");

  const flagNames: VerificationFlagNames = {
    issuer: values.nameOf("containerSignature.issuer"),
    issuerRegExp: values.nameOf("containerSignature.issuerRegExp"),
    subject: values.nameOf("containerSignature.subjectRegExp"),
    subjectRegExp: values.nameOf("containerSignature.subjectRegExp"),
    key: values.nameOf("containerSignature.publicKeyFile"),
    trustedRoot: values.nameOf("containerSignature.trustedRootFile"),
  };
  const options: VerificationOptions = {
    disabled: values.value<boolean>("containerSignature.disabled"),
    identities: [],
  };
  if (publicKeyFile !== "") options.publicKeyFile = resolve(ctx.cwd, publicKeyFile);
  if (hashAlgo !== "") {
    if (hashAlgorithms.has(hashAlgo as SignatureHashAlgorithm))
      options.publicKeyHashAlgo = hashAlgo as SignatureHashAlgorithm;
    else
      ctx.problems.add(
        `${values.nameOf("containerSignature.publicKeyHashAlgo")}: ${JSON.stringify(hashAlgo)} is not sha256, sha384 or sha512`,
      );
  }
  if (trustedRootFile !== "") options.trustedRootFile = resolve(ctx.cwd, trustedRootFile);
  let refused = false;
  if (upstreamUnanchoredSubjectRegExps.includes(subjectRegExp)) {
    refused = true;
    ctx.problems.add(
      `${flagNames.subjectRegExp}: ${JSON.stringify(subjectRegExp)} is upstream's unanchored default; regexps here match the WHOLE subject, so it would match nothing: leave it unset for the vendor identity or write e.g. ".+@siderolabs\\.com"`,
    );
  } else if (subjectRegExp !== "") {
    // Upstream: the issuer regexp, when set, wins over the exact issuer.
    const identity: IdentityMatcher = { subjectRegExp };
    if (issuerRegExp.trim() !== "") identity.issuerRegExp = issuerRegExp;
    else if (issuer !== "") identity.issuer = issuer;
    options.identities.push(identity);
  }
  return { options, flagNames, refused };
}
