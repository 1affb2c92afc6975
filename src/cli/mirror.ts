// `boot-assets mirror`: copies a Talos release with its signatures to another registry (the service:
// src/toolkit/mirror/). The flags follow Go's rules like `build` and `factory`, and the ones the factory has
// (image names, -container-signature-*, -ca-file, -certs-dir) are the factory's, parsed by its tables: a
// mirror is verified exactly as the factory that will read it verifies.

import type { Command } from "commander";
import { validateSourceSettings } from "../factory/config/config.ts";
import { parseGoBool } from "../factory/config/go-flags.ts";
import { ConfigError, Problems } from "../factory/config/problems.ts";
import { allSettings, type SettingSpec } from "../factory/config/settings.ts";
import { SettingValues } from "../factory/config/values.ts";
import { isLoopbackRegistry, registryClientOptionsFor } from "../factory/registry-access.ts";
import { RegistryClient } from "../oci/client/index.ts";
import { parseReference } from "../oci/reference.ts";
import { SignatureVerifier } from "../signing/verify.ts";
import { parseVersionTag } from "../talos/asset-path.ts";
import { type MirrorEvent, mirrorRelease, type ReleaseImageNames, type Selection } from "../toolkit/mirror/index.ts";
import { type CommandFlag, flagTable, flagUsage, parseCommandFlags } from "./borrowed-flags.ts";
import { formatBytes } from "./build-progress.ts";
import { rawSubcommandArgs } from "./raw-args.ts";

/** The factory's flags `mirror` takes as they are. */
const sharedFactoryFlags = [
  "imager-image",
  "installer-base-image",
  "installer-image",
  "extension-manifest-image",
  "overlay-manifest-image",
  "talosctl-image",
  "container-signature-pubkey",
  "container-signature-pubkey-hashalgo",
  "container-signature-trusted-root",
  "container-signature-subject-regexp",
  "container-signature-issuer-regexp",
  "container-signature-issuer",
  "container-signature-disabled",
  "ca-file",
  "certs-dir",
] as const;

const ownFlags: CommandFlag[] = [
  { name: "talos-version", kind: "value", help: "Talos version to mirror, e.g. v1.10.3 (required)" },
  {
    name: "from",
    kind: "value",
    help: "registry[/namespace] the release is read from, as the factory's -image-registry (required)",
  },
  { name: "to", kind: "value", help: "registry[/namespace] the release is copied to (required)" },
  {
    name: "extensions",
    kind: "value",
    help: 'extensions to copy, by catalog name (siderolabs/amd-ucode or amd-ucode), comma-separated, or "all" (default none)',
  },
  {
    name: "overlays",
    kind: "value",
    help: 'overlays to copy, by catalog name (rpi_generic) or image, comma-separated, or "all" (default none)',
  },
  { name: "insecure", kind: "bool", help: "plain HTTP / unverified TLS to both registries (loopback ones always)" },
  { name: "concurrency", kind: "value", help: "images verified or copied at once (default 4, at most 32)" },
];

/** Help of shared flags whose factory wording names what only the factory reaches. */
const ownHelp: Partial<Record<(typeof sharedFactoryFlags)[number], string>> = {
  "ca-file": "PEM file of extra CA certificates trusted for both registries (besides the system roots)",
};

const mirrorFlags = flagTable(ownFlags, sharedFactoryFlags, ownHelp);

export function mirrorUsage(): string {
  return flagUsage(
    [
      "Usage: boot-assets mirror -talos-version V -from REGISTRY -to REGISTRY [flags]",
      "",
      "Copies a Talos release as the factory consumes it (imager, installer or installer-base, the extensions and",
      "overlays catalogs, the chosen extensions and overlays, talosctl-all) with its cosign signatures to another",
      "registry, verifying every image first with the factory's -container-signature-* options. Copies by digest;",
      "what the destination has is skipped, so a run can be repeated or resumed. Flags take one or two dashes.",
      "",
    ],
    mirrorFlags,
  );
}

function settingSpec(key: string): SettingSpec {
  const spec = allSettings().find((s) => s.key === key);
  if (spec === undefined) throw new Error(`no setting ${key}`); // a bug
  return spec;
}

/** `host[:port][/namespace]` → its parts; a problem naming the flag when it is not one. */
function splitPrefix(flag: string, text: string, problems: Problems): { registry: string; namespace: string } {
  const trimmed = text.replace(/\/+$/, "");
  const slash = trimmed.indexOf("/");
  const registry = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const namespace = slash === -1 ? "" : trimmed.slice(slash + 1);
  try {
    if (registry === "" || parseReference(`${trimmed}/probe`).registry !== registry) throw new Error();
  } catch {
    problems.add(
      `${flag} ${JSON.stringify(text)}: expected registry[/namespace], the registry a host[:port] with a "." or ":" (or localhost)`,
    );
  }
  return { registry, namespace };
}

function parseSelection(text: string | undefined): Selection {
  if (text === undefined) return [];
  const names = text
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  return names.includes("all") ? "all" : [...new Set(names)];
}

export interface MirrorCommandLine {
  talosVersion: string;
  sourcePrefix: string;
  destinationPrefix: string;
  names: ReleaseImageNames;
  extensions: Selection;
  overlays: Selection;
  concurrency: number;
  insecure: boolean;
  settings: Awaited<ReturnType<typeof validateSourceSettings>>;
}

/** Reads and checks the command line; every problem is reported at once (ConfigError, exit code 2). */
export async function readMirrorCommandLine(
  args: readonly string[],
  cwd = process.cwd(),
): Promise<MirrorCommandLine | { help: true }> {
  const parsed = parseCommandFlags(args, mirrorFlags);
  if (parsed.help) return { help: true };
  const problems = new Problems();
  const values = new SettingValues();
  const own = new Map<string, { spelling: string; value: string }>();
  for (const occurrence of parsed.flags) {
    const flag = mirrorFlags.get(occurrence.name) as CommandFlag;
    if (flag.setting !== undefined) values.setFromFlag(flag.setting, occurrence.spelling, occurrence.value, problems);
    else own.set(flag.name, { spelling: occurrence.spelling, value: occurrence.value });
  }
  if (parsed.positional.length > 0) problems.add(`unexpected argument(s): ${parsed.positional.join(" ")}`);
  for (const required of ["talos-version", "from", "to"])
    if (!own.get(required)?.value) problems.add(`-${required} is required`);
  let talosVersion = "";
  const versionFlag = own.get("talos-version");
  if (versionFlag?.value) {
    try {
      talosVersion = parseVersionTag(versionFlag.value);
    } catch (err) {
      problems.add(`${versionFlag.spelling}: ${(err as Error).message}`);
    }
  }
  // A bool flag's value was checked by parseGoFlags (strconv.ParseBool spellings).
  const insecureFlag = own.get("insecure");
  const insecure = insecureFlag !== undefined && parseGoBool(insecureFlag.value) === true;
  const from = own.get("from");
  if (from?.value) {
    const { registry, namespace } = splitPrefix(from.spelling, from.value, problems);
    values.setFromFlag(settingSpec("artifacts.core.registry"), from.spelling, registry, problems);
    values.setFromFlag(settingSpec("artifacts.core.namespace"), from.spelling, namespace, problems);
    if (insecure)
      values.setFromFlag(
        settingSpec("artifacts.core.insecure"),
        insecureFlag?.spelling ?? "-insecure",
        "true",
        problems,
      );
  }
  const to = own.get("to");
  let destinationPrefix = "";
  if (to?.value) {
    const { registry, namespace } = splitPrefix(to.spelling, to.value, problems);
    destinationPrefix = namespace === "" ? registry : `${registry}/${namespace}`;
  }
  let concurrency = 4;
  const concurrencyFlag = own.get("concurrency");
  if (concurrencyFlag !== undefined) {
    concurrency = Number(concurrencyFlag.value);
    if (!/^\d+$/.test(concurrencyFlag.value) || concurrency < 1 || concurrency > 32)
      problems.add(`${concurrencyFlag.spelling}: expected a whole number from 1 to 32, not ${concurrencyFlag.value}`);
  }
  let settings: MirrorCommandLine["settings"] | undefined;
  if (from?.value) {
    try {
      settings = await validateSourceSettings(values, { cwd });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const problem of err.problems) problems.add(problem);
    }
  }
  problems.throwIfAny();
  const component = (key: string) => values.value<string>(`artifacts.core.components.${key}`);
  const { registry, namespace } = (settings as MirrorCommandLine["settings"]).images;
  return {
    talosVersion,
    sourcePrefix: namespace === "" ? registry : `${registry}/${namespace}`,
    destinationPrefix,
    names: {
      imager: component("imager"),
      installerBase: component("installerBase"),
      installer: component("installer"),
      extensionManifest: component("extensionManifest"),
      overlayManifest: component("overlayManifest"),
      talosctl: component("talosctl"),
    },
    extensions: parseSelection(own.get("extensions")?.value),
    overlays: parseSelection(own.get("overlays")?.value),
    concurrency,
    insecure,
    settings: settings as MirrorCommandLine["settings"],
  };
}

function describeEvent(event: MirrorEvent): string {
  const { item } = event;
  const image = `${item.name}:${item.tag}@${item.digest}`;
  if (event.kind === "verified") return `verified ${item.kind} ${image}`;
  const copied = event.image.bytesCopied + event.signatures.bytesCopied;
  const skipped = event.image.bytesSkipped + event.signatures.bytesSkipped;
  const state = event.image.manifestsWritten === 0 ? "present" : "copied ";
  return `${state} ${event.destination}:${item.tag} ${formatBytes(copied)} copied, ${formatBytes(skipped)} present (${event.image.blobsCopied + event.signatures.blobsCopied} blobs copied, ${event.image.blobsSkipped + event.signatures.blobsSkipped} present)`;
}

export async function mirrorCommand(args: readonly string[]): Promise<void> {
  const line = await readMirrorCommandLine(args);
  if ("help" in line) {
    process.stdout.write(mirrorUsage());
    return;
  }
  const options = registryClientOptionsFor(line.settings);
  const destinationRegistry = line.destinationPrefix.split("/")[0] as string;
  if (line.insecure || isLoopbackRegistry(destinationRegistry))
    options.insecure = new Set([...(options.insecure instanceof Set ? options.insecure : []), destinationRegistry]);
  const client = new RegistryClient(options);
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  const log = (text: string) => process.stderr.write(`${text}\n`);
  try {
    const { loaded } = line.settings.signatures;
    log(
      `Talos ${line.talosVersion}: ${line.sourcePrefix} → ${line.destinationPrefix}` +
        (loaded.disabled ? " (signature verification DISABLED)" : ""),
    );
    const summary = await mirrorRelease({
      talosVersion: line.talosVersion,
      sourcePrefix: line.sourcePrefix,
      destinationPrefix: line.destinationPrefix,
      names: line.names,
      extensions: line.extensions,
      overlays: line.overlays,
      client,
      verifier: new SignatureVerifier(client, loaded),
      concurrency: line.concurrency,
      signal: controller.signal,
      onEvent: (event) => log(describeEvent(event)),
    });
    const t = summary.totals;
    process.stdout.write(
      [
        `images ${summary.images} (${summary.imagesAlreadyPresent} already present), signature artifacts ${summary.signatureArtifacts}`,
        `manifests ${t.manifestsWritten} written, ${t.manifestsSkipped} present`,
        `blobs ${t.blobsCopied} copied, ${t.blobsSkipped} present`,
        `bytes ${t.bytesCopied} copied (${formatBytes(t.bytesCopied)}), ${t.bytesSkipped} present (${formatBytes(t.bytesSkipped)})`,
        "",
      ].join("\n"),
    );
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
    await client.close();
  }
}

export function registerMirrorCommand(program: Command): void {
  program
    .command("mirror")
    .description(
      "Copy a Talos release (imager, installer, catalogs, extensions, overlays, talosctl) with its signatures to another registry, verified first; -h for the flags",
    )
    .argument("[args...]", "flags: -talos-version V -from REGISTRY -to REGISTRY, and the factory's signature flags")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (parsed: string[], _options: unknown, command: Command) => {
      await mirrorCommand(rawSubcommandArgs(command, parsed));
    });
}
