// `boot-assets sign IMAGE` (cosign-compatible signatures, with a key file or keyless) and
// `boot-assets generate-key-pair` (cosign.key / cosign.pub).

import { access, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { badRequest } from "../errors.ts";
import { dockerHubRegistry, type ImageReference, parseReference } from "../oci/reference.ts";
import { generateKeyPair, loadPrivateKey } from "../signing/keys.ts";
import { describeSignResult, signImage } from "../signing/sign.ts";
import { KeylessSigner, KeySigner, type Signer } from "../signing/signer.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";

export interface SignCliOptions extends RegistryClientCliOptions {
  key?: string;
  keyless?: boolean;
  fulcioUrl?: string;
  rekorUrl?: string;
  identityToken?: string;
  recursive?: boolean;
  bundle?: boolean;
  annotation?: string[];
}

/** The `docker-reference` cosign writes: the repository's full name, Docker Hub spelled `index.docker.io`. */
export function dockerReferenceOf(ref: ImageReference): string {
  const registry = ref.registry === dockerHubRegistry ? "index.docker.io" : ref.registry;
  return `${registry}/${ref.repository}`;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseAnnotations(values: readonly string[] | undefined): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf("=");
    if (eq <= 0) throw badRequest(`--annotation "${value}": expected key=value`);
    out[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return out;
}

export async function signerFrom(
  opts: Pick<SignCliOptions, "key" | "keyless" | "fulcioUrl" | "rekorUrl" | "identityToken">,
): Promise<Signer> {
  if (opts.key && opts.keyless) throw badRequest("--key and --keyless are exclusive");
  if (opts.key) return new KeySigner(await loadPrivateKey(opts.key), { rekorUrl: opts.rekorUrl });
  if (opts.keyless || opts.identityToken)
    return new KeylessSigner({ fulcioUrl: opts.fulcioUrl, rekorUrl: opts.rekorUrl, identityToken: opts.identityToken });
  throw badRequest("give --key FILE, or --keyless (OIDC identity from CI or --identity-token)");
}

export function registerSignCommands(program: Command): void {
  const sign = program
    .command("sign")
    .description("Sign an image like cosign: a sha256-<digest>.sig signature, optionally a Sigstore bundle referrer")
    .argument("<image>", "image reference (tag or digest)")
    .option("--key <file>", "private key (cosign.key, encrypted with COSIGN_PASSWORD, or a PEM private key)")
    .option("--keyless", "sign with a Fulcio certificate for the CI's OIDC identity (GitHub Actions)")
    .option("--fulcio-url <url>", "Fulcio for keyless signing (default https://fulcio.sigstore.dev)")
    .option(
      "--rekor-url <url>",
      "Rekor v1 log for keyless signing (default https://rekor.sigstore.dev); with --key, also log there",
    )
    .option("--identity-token <jwt>", "OIDC token for keyless signing instead of the CI provider's")
    .option("--recursive", "if the image is an index, also sign each manifest it lists")
    .option("--bundle", "also push a Sigstore v0.3 bundle as an OCI referrer (cosign v3 format)")
    .option("-a, --annotation <key=value>", "extra claim in the payload's optional section, repeatable", collect);
  addRegistryClientOptions(sign).action(async (image: string, opts: SignCliOptions) => {
    const annotations = parseAnnotations(opts.annotation);
    if (opts.bundle && opts.key && !opts.rekorUrl)
      throw badRequest(
        "--bundle with --key needs --rekor-url: cosign verify rejects a bundle without a transparency log entry",
      );
    const signer = await signerFrom(opts);
    const ref = parseReference(image);
    const client = registryClientFromOptions(opts, [ref.registry]);
    const repository = client.repository(ref);
    // Resolve once, then sign that digest: the tag may move while we work.
    const stat = await repository.statManifest(ref.digest ?? ref.tag ?? "latest");
    if (!stat) throw badRequest(`${image}: not found`);
    const results = await signImage(repository, stat.digest, signer, {
      dockerReference: dockerReferenceOf(ref),
      recursive: opts.recursive,
      bundle: opts.bundle,
      annotations,
    });
    for (const result of results)
      process.stdout.write(`${describeSignResult(`${ref.registry}/${ref.repository}`, result)}\n`);
  });

  program
    .command("generate-key-pair")
    .description("Write cosign.key (encrypted with COSIGN_PASSWORD, empty when unset) and cosign.pub")
    .option("--output-key-prefix <prefix>", "file name prefix", "cosign")
    .option("--force", "overwrite existing files")
    .action(async (opts: { outputKeyPrefix: string; force?: boolean }) => {
      const keyFile = `${opts.outputKeyPrefix}.key`;
      const pubFile = `${opts.outputKeyPrefix}.pub`;
      if (!opts.force)
        for (const file of [keyFile, pubFile]) {
          const exists = await access(file).then(
            () => true,
            () => false,
          );
          if (exists) throw badRequest(`${file} exists; pass --force to overwrite it`);
        }
      const pair = generateKeyPair();
      await writeFile(keyFile, pair.privateKeyPem, { mode: 0o600 });
      await writeFile(pubFile, pair.publicKeyPem, { mode: 0o644 });
      process.stdout.write(`Private key written to ${keyFile}\nPublic key written to ${pubFile}\n`);
    });
}
