// `boot-assets catalog merge | show | diff`: the extensions catalog of a release (docs/catalog.md). The work
// happens in src/toolkit/catalog.ts; this file parses flags, calls it, and prints.

import type { Command } from "commander";
import { badRequest } from "../errors.ts";
import { parseReference } from "../oci/reference.ts";
import { describeSignResult } from "../signing/sign.ts";
import { SignatureVerifier } from "../signing/verify.ts";
import { loadVerification, type VerificationFlagNames, type VerificationOptions } from "../signing/verify-options.ts";
import type { CatalogEntry } from "../talos/catalog.ts";
import { diffCatalogImages, mergeCatalog, readCatalogImage } from "../toolkit/catalog.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";
import { signerFrom } from "./sign.ts";

interface SourceCliOptions extends RegistryClientCliOptions {
  verifyKey?: string;
  verifyTrustedRoot?: string;
  verifyCertificateIdentityRegexp?: string[];
  verifyCertificateOidcIssuerRegexp?: string[];
}

/** The flags that configure how images read are verified, named apart from merge's signing flags. */
const sourceVerificationFlags: VerificationFlagNames = {
  key: "--verify-key",
  trustedRoot: "--verify-trusted-root",
  issuer: "--verify-certificate-oidc-issuer-regexp",
  issuerRegExp: "--verify-certificate-oidc-issuer-regexp",
  subject: "--verify-certificate-identity-regexp",
  subjectRegExp: "--verify-certificate-identity-regexp",
};

/**
 * Verification of the images read: none (pinned by digest only) unless a key or identities are given; a
 * signature by the key or by any identity (subject and issuer regexps, given in pairs) is enough.
 */
export function sourceVerification(opts: SourceCliOptions): VerificationOptions {
  const subjects = opts.verifyCertificateIdentityRegexp ?? [];
  const issuers = opts.verifyCertificateOidcIssuerRegexp ?? [];
  if (subjects.length !== issuers.length)
    throw badRequest(
      "give --verify-certificate-identity-regexp and --verify-certificate-oidc-issuer-regexp in pairs (one issuer per identity)",
    );
  if (opts.verifyKey === undefined && subjects.length === 0) {
    if (opts.verifyTrustedRoot !== undefined)
      throw badRequest("--verify-trusted-root needs --verify-certificate-identity-regexp and an issuer regexp");
    return { disabled: true, identities: [] };
  }
  return {
    disabled: false,
    ...(opts.verifyKey === undefined ? {} : { publicKeyFile: opts.verifyKey }),
    ...(opts.verifyTrustedRoot === undefined ? {} : { trustedRootFile: opts.verifyTrustedRoot }),
    identities: subjects.map((subjectRegExp, i) => ({ subjectRegExp, issuerRegExp: issuers[i] as string })),
  };
}

interface MergeCliOptions extends SourceCliOptions {
  from: string;
  add: string[];
  tag: string;
  push?: boolean;
  output?: string;
  sign?: boolean;
  key?: string;
  keyless?: boolean;
  fulcioUrl?: string;
  rekorUrl?: string;
  identityToken?: string;
  extensionsRegistry?: string;
  moduleCheck: boolean;
  concurrency: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 32) throw badRequest(`--concurrency ${value}: expected 1 to 32`);
  return n;
}

function hostOf(reference: string): string {
  return parseReference(reference.startsWith("docker://") ? reference.slice(9) : reference).registry;
}

async function withVerifier<T>(
  opts: SourceCliOptions,
  references: readonly string[],
  work: (verifier: SignatureVerifier, client: ReturnType<typeof registryClientFromOptions>) => Promise<T>,
): Promise<T> {
  const client = registryClientFromOptions(opts, references.map(hostOf));
  try {
    const verifier = new SignatureVerifier(
      client,
      await loadVerification(sourceVerification(opts), sourceVerificationFlags),
    );
    return await work(verifier, client);
  } finally {
    await client.close();
  }
}

/** One line of text per cell: multi-line descriptions are joined, long ones cut. */
function cell(text: string, max = 72): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function catalogTable(entries: readonly CatalogEntry[]): string {
  const header = ["NAME", "TAG", "DIGEST", "AUTHOR", "DESCRIPTION"];
  const rows = entries.map((e) => [e.name, e.tag, e.digest, cell(e.author, 32), cell(e.description)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

function addSourceOptions(command: Command): Command {
  return addRegistryClientOptions(
    command
      .option(
        "--verify-key <file>",
        "public key the images read may be signed with; without it or an identity they are pinned by digest only",
      )
      .option(
        "--verify-certificate-identity-regexp <re>",
        "keyless: RE2 regexp the WHOLE certificate subject must match, repeatable (pairs with an issuer regexp)",
        collect,
      )
      .option(
        "--verify-certificate-oidc-issuer-regexp <re>",
        "keyless: RE2 regexp the WHOLE OIDC issuer must match, one per identity regexp",
        collect,
      )
      .option(
        "--verify-trusted-root <file>",
        "Sigstore trusted_root.json for keyless signatures (default: the public-good root)",
      ),
  );
}

export function registerCatalogCommands(program: Command): void {
  const catalog = program.command("catalog").description("Read, compare and extend extensions catalog images");

  const merge = catalog
    .command("merge")
    .description(
      "Extend an extensions catalog (extensions:<tag>) with extension images, replacing listed ones of the same name",
    )
    .requiredOption("--from <ref>", "the catalog to extend, e.g. ghcr.io/siderolabs/extensions:v1.10.3")
    .requiredOption("--add <ref@digest>", "an extension image to list, repeatable", collect)
    .requiredOption("--tag <ref>", "the new catalog's name, REGISTRY/REPOSITORY:TAG")
    .option("--push", "push to the registry of --tag (default: write an OCI image layout, see --output)")
    .option("--output <dir>", "OCI image layout written without --push", "extensions-catalog.oci")
    .option("--sign", "sign the pushed catalog (with --key FILE or --keyless)")
    .option("--key <file>", "private key for --sign (cosign.key, or a PEM private key)")
    .option("--keyless", "sign with a Fulcio certificate for the CI's OIDC identity")
    .option("--fulcio-url <url>", "Fulcio for keyless signing")
    .option("--rekor-url <url>", "Rekor for keyless signing")
    .option("--identity-token <jwt>", "OIDC token for keyless signing instead of the CI provider's")
    .option(
      "--extensions-registry <host[/namespace]>",
      "where listed extensions are pulled from to look for kernel modules (default: the registry host of --from)",
    )
    .option("--no-module-check", "do not scan the kept extensions for kernel modules")
    .option("--concurrency <n>", "images read at once", parseConcurrency, 4);
  addSourceOptions(merge).action(async (opts: MergeCliOptions) => {
    if (opts.sign && !opts.push) throw badRequest("--sign needs --push: signatures are stored beside the image");
    if (!opts.sign && (opts.key !== undefined || opts.keyless))
      throw badRequest("--key/--keyless sign the catalog: add --sign");
    const signer = opts.sign ? await signerFrom(opts) : undefined;
    const references = [opts.from, opts.tag, ...opts.add];
    if (opts.extensionsRegistry !== undefined) references.push(`${opts.extensionsRegistry}/x`);
    await withVerifier(opts, references, async (verifier, client) => {
      const result = await mergeCatalog({
        verifier,
        from: opts.from,
        add: opts.add,
        tag: opts.tag,
        output: opts.push
          ? { kind: "registry", client }
          : { kind: "layout", dir: opts.output ?? "extensions-catalog.oci" },
        ...(signer === undefined ? {} : { signer }),
        extensionsRegistry: opts.moduleCheck ? opts.extensionsRegistry : null,
        concurrency: opts.concurrency,
      });
      const out: string[] = [];
      out.push(`read ${result.from.pinned}: ${result.from.catalog.entries.length} entries`);
      for (const { old, by } of result.replaced) out.push(`replaced ${old.ref}\n     by ${by.ref}`);
      for (const entry of result.added) out.push(`added ${entry.ref}`);
      for (const { entry, module } of result.addedWithModules)
        out.push(`note: added ${entry.name} carries kernel modules (${module}): build it against the custom kernel`);
      process.stdout.write(`${out.join("\n")}\n`);
      for (const { entry, module } of result.keptWithModules)
        process.stderr.write(
          `warning: kept ${entry.name}:${entry.tag} carries kernel modules (${module}); they will not load on a custom kernel (signed with another key)\n`,
        );
      if (!result.scanned) process.stderr.write("warning: kept extensions were not scanned for kernel modules\n");
      const tally = `${result.catalog.entries.length} entries: ${result.kept.length} kept, ${result.replaced.length} replaced, ${result.added.length} added`;
      const lines = [`wrote ${result.location} ${result.digest} (${tally})`];
      const target = parseReference(opts.tag);
      for (const signature of result.signatures)
        lines.push(describeSignResult(`${target.registry}/${target.repository}`, signature));
      process.stdout.write(`${lines.join("\n")}\n`);
    });
  });

  const show = catalog
    .command("show")
    .description("List an extensions catalog image: name, tag, digest, author, description")
    .argument("<ref>", "the catalog image, e.g. REGISTRY/siderolabs/extensions:v1.10.3");
  addSourceOptions(show).action(async (ref: string, opts: SourceCliOptions) => {
    await withVerifier(opts, [ref], async (verifier) => {
      const read = await readCatalogImage(verifier, ref);
      process.stdout.write(
        `# ${read.pinned}: ${read.catalog.entries.length} entries\n${catalogTable(read.catalog.entries)}`,
      );
    });
  });

  const diff = catalog
    .command("diff")
    .description("Compare two extensions catalog images: entries added, removed and changed (by repository path)")
    .argument("<a>", "the catalog before")
    .argument("<b>", "the catalog after");
  addSourceOptions(diff).action(async (a: string, b: string, opts: SourceCliOptions) => {
    await withVerifier(opts, [a, b], async (verifier) => {
      const { before, after, diff: d } = await diffCatalogImages(verifier, a, b);
      const lines = [`--- ${before.pinned}`, `+++ ${after.pinned}`];
      for (const entry of d.removed) lines.push(`- ${entry.name}:${entry.tag} ${entry.digest}`);
      for (const entry of d.added) lines.push(`+ ${entry.name}:${entry.tag} ${entry.digest}`);
      for (const change of d.changed) {
        lines.push(`~ ${change.name} (${change.fields.join(", ")})`);
        if (change.fields.includes("tag") || change.fields.includes("digest"))
          lines.push(
            `    ${change.before.tag}@${change.before.digest}`,
            `    → ${change.after.tag}@${change.after.digest}`,
          );
      }
      lines.push(
        `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.unchanged} unchanged`,
      );
      process.stdout.write(`${lines.join("\n")}\n`);
    });
  });
}
