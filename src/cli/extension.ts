// `boot-assets extension build DIR --tag REF` and `boot-assets extension validate IMAGE|DIR`: parse, call the
// toolkit service (src/toolkit/extension-build.ts, extension-validate.ts), print.

import type { Command } from "commander";
import { badRequest } from "../errors.ts";
import { parseReference } from "../oci/reference.ts";
import { buildExtension } from "../toolkit/extension-build.ts";
import { type ExtensionArch, extensionArches, parseExtensionPlatforms } from "../toolkit/extension-source.ts";
import { validateExtension } from "../toolkit/extension-validate.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";
import { type SignCliOptions, signerFrom } from "./sign.ts";

interface SourceCliOptions {
  talosVersion?: string;
  platform?: string;
  var?: string[];
  tree?: string[];
}

interface BuildCliOptions extends SourceCliOptions, RegistryClientCliOptions {
  tag: string;
  push?: boolean;
  sign?: boolean;
  key?: string;
  keyless?: boolean;
  fulcioUrl?: string;
  rekorUrl?: string;
  identityToken?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function parseVars(values: readonly string[] | undefined): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const value of values ?? []) {
    const eq = value.indexOf("=");
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value.slice(0, eq)))
      throw badRequest(`--var "${value}": expected KEY=VALUE`);
    vars[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return vars;
}

function parseTrees(values: readonly string[] | undefined): { arch?: ExtensionArch; dir: string }[] {
  return (values ?? []).map((value) => {
    const match = /^(amd64|arm64)=(.+)$/.exec(value);
    if (match) return { arch: match[1] as ExtensionArch, dir: match[2] as string };
    return { dir: value };
  });
}

function sourceOptions(opts: SourceCliOptions) {
  return {
    ...(opts.platform === undefined ? {} : { arches: parseExtensionPlatforms(opts.platform) }),
    ...(opts.talosVersion === undefined ? {} : { talosVersion: opts.talosVersion }),
    vars: parseVars(opts.var),
    trees: parseTrees(opts.tree),
  };
}

function addSourceOptions(command: Command): Command {
  return command
    .option("--talos-version <v>", "Talos version whose rules apply (default: the version's -v<talos> suffix)")
    .option(
      "--platform <list>",
      `platforms, e.g. linux/amd64,linux/arm64 (default: those with a rootfs-<arch>/, else linux/amd64; ${extensionArches.join(", ")})`,
    )
    .option(
      "--var <key=value>",
      "template value for manifest.yaml.tmpl, repeatable (VERSION defaults to the tag)",
      collect,
    )
    .option(
      "--tree <[arch=]dir>",
      "a prebuilt tree laid out like rootfs/, for every platform or one, repeatable",
      collect,
    );
}

export function registerExtensionCommands(program: Command): void {
  const extension = program.command("extension").description("Build and validate Talos system-extension images");

  const build = extension
    .command("build")
    .description("Build a system-extension image from a source folder (docs/extensions.md)")
    .argument("<dir>", "source folder: manifest.yaml or manifest.yaml.tmpl, rootfs/ and/or rootfs-<arch>/")
    .requiredOption("--tag <ref>", "image reference registry/repository:tag (the tag is the extension version)")
    .option("--push", "push the image (an OCI index with several platforms) to the registry")
    .option("--sign", "sign the pushed image (with --key FILE, or --keyless)")
    .option("--key <file>", "private key for --sign (cosign.key with COSIGN_PASSWORD, or PEM)")
    .option("--keyless", "sign with a Fulcio certificate for the CI's OIDC identity")
    .option("--fulcio-url <url>", "Fulcio for keyless signing")
    .option("--rekor-url <url>", "Rekor log for signing")
    .option("--identity-token <jwt>", "OIDC token for keyless signing")
    .option("--json", "print the result as JSON");
  addRegistryClientOptions(addSourceOptions(build)).action(async (dir: string, opts: BuildCliOptions) => {
    if ((opts.key || opts.keyless) && !opts.sign) throw badRequest("--key/--keyless sign only with --sign");
    const signer = opts.sign ? await signerFrom(opts as SignCliOptions) : undefined;
    const ref = parseReference(opts.tag);
    const result = await buildExtension(dir, {
      ...sourceOptions(opts),
      tag: opts.tag,
      push: opts.push === true,
      ...(signer ? { signer } : {}),
      ...(opts.push ? { client: registryClientFromOptions(opts, [ref.registry]) } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    const lines = [
      `${result.name} ${result.version} (checked for Talos ${result.talosVersion})`,
      `${result.pushed ? "pushed" : "built (not pushed)"} ${result.reference}@${result.digest}`,
      ...result.platforms.map(
        (p) => `  linux/${p.arch} ${p.digest} layer ${p.layer.digest} ${p.layer.size} bytes, ${p.entries} entries`,
      ),
      ...result.signatures.map((s) => `  signed ${s.digest} (${s.format}, ${s.status}) ${s.location}`),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  });

  const validate = extension
    .command("validate")
    .description("Check an extension image or source folder with the build's rules")
    .argument("<target>", "image reference, or a source folder");
  addRegistryClientOptions(addSourceOptions(validate)).action(
    async (target: string, opts: SourceCliOptions & RegistryClientCliOptions) => {
      // The service decides whether TARGET is a folder; --insecure covers the registry it names, if any.
      let registries: string[] = [];
      try {
        registries = [parseReference(target).registry];
      } catch {
        registries = [];
      }
      const client = registryClientFromOptions(opts, registries);
      const result = await validateExtension(target, { ...sourceOptions(opts), client });
      process.stdout.write(
        `ok: ${result.subject}: ${result.name} ${result.version} passes for Talos ${result.talosVersion} (${result.arches.map((a) => `linux/${a}`).join(", ")})\n`,
      );
    },
  );
}
