import { open } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { badRequest } from "../errors.ts";
import { buildAssetsOffline, planAssets } from "../factory/assets/offline-build.ts";
import { validateSourceSettings } from "../factory/config/config.ts";
import { ConfigError, Problems } from "../factory/config/problems.ts";
import type { SettingSpec } from "../factory/config/settings.ts";
import { normalizeExternalUrl } from "../factory/config/value-checks.ts";
import { SettingValues } from "../factory/config/values.ts";
import { parseVersionTag } from "../talos/asset-path.ts";
import { MAX_SCHEMATIC_BYTES, parseSchematic, type Schematic, schematicId } from "../talos/schematic.ts";
import { bootAssetsCacheDir } from "../tools/debian-packages.ts";
import { type CommandFlag, flagTable, flagUsage, parseCommandFlags } from "./borrowed-flags.ts";
import { BuildProgress, formatBytes } from "./build-progress.ts";
import { rawSubcommandArgs } from "./raw-args.ts";

/** The factory's flags `build` takes as they are: where sources come from and how they are verified. */
const sharedFactoryFlags = [
  "image-registry",
  "insecure-image-registry",
  "imager-image",
  "installer-base-image",
  "installer-image",
  "extension-manifest-image",
  "container-signature-pubkey",
  "container-signature-pubkey-hashalgo",
  "container-signature-trusted-root",
  "container-signature-subject-regexp",
  "container-signature-issuer-regexp",
  "container-signature-issuer",
  "container-signature-disabled",
  "ca-file",
  "certs-dir",
  "external-url",
] as const;

const ownFlags: CommandFlag[] = [
  { name: "talos-version", kind: "value", help: "Talos version to build for, e.g. v1.10.3 (required)" },
  { name: "schematic", kind: "value", help: "schematic file (YAML or JSON), as POSTed to a factory (required)" },
  { name: "output-dir", kind: "value", help: 'directory the assets are written to (default ".")' },
  {
    name: "cache-dir",
    kind: "value",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell syntax of the default, shown to the user
    help: "cache directory; pulled images are kept under <dir>/sources (default ${XDG_CACHE_HOME:-~/.cache}/boot-assets)",
  },
  {
    name: "insecure",
    kind: "bool",
    help: "plain HTTP / unverified TLS to the image registry (as -insecure-image-registry)",
  },
];

/** Help of shared flags whose factory wording names what only the factory reaches. */
const buildHelp: Partial<Record<(typeof sharedFactoryFlags)[number], string>> = {
  "ca-file": "PEM file of extra CA certificates trusted for the image registry (besides the system roots)",
  "external-url":
    "the factory URL the schematic extension names as its author (give the factory's, and the assets equal its downloads)",
};

const buildFlags = flagTable(ownFlags, sharedFactoryFlags, buildHelp);

export function buildUsage(): string {
  return flagUsage(
    [
      "Usage: boot-assets build [flags] ASSET...",
      "",
      "Builds Talos boot assets offline from a registry's imager, installer and extensions (signatures verified",
      "before anything is pulled). ASSET names are the factory's /image paths, e.g. kernel-amd64,",
      "initramfs-amd64.xz, cmdline-metal-amd64, metal-amd64-uki.efi, installer-amd64.tar, metal-amd64.iso,",
      "metal-amd64.raw.zst, aws-amd64.raw.xz, gcp-amd64.raw.tar.gz, exoscale-amd64.qcow2, vmware-amd64.ova.",
      "Flags take one or two dashes and go before the assets (Go flag rules).",
      "",
    ],
    buildFlags,
  );
}

export interface BuildCommandLine {
  talosVersion: string;
  schematicFile: string;
  outputDir: string;
  cacheDir: string;
  assets: string[];
  settings: Awaited<ReturnType<typeof validateSourceSettings>>;
  /** -external-url as given (the schematic extension's author names it). */
  externalUrl: string;
}

/** Reads and checks the command line; every problem is reported at once (ConfigError, exit code 2). */
export async function readBuildCommandLine(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
): Promise<BuildCommandLine | { help: true }> {
  const parsed = parseCommandFlags(args, buildFlags);
  if (parsed.help) return { help: true };
  const problems = new Problems();
  const values = new SettingValues();
  const own = new Map<string, string>();
  const insecureSpec = buildFlags.get("insecure-image-registry")?.setting as SettingSpec;
  for (const occurrence of parsed.flags) {
    const flag = buildFlags.get(occurrence.name) as CommandFlag;
    if (flag.setting !== undefined) values.setFromFlag(flag.setting, occurrence.spelling, occurrence.value, problems);
    else if (flag.name === "insecure")
      values.setFromFlag(insecureSpec, occurrence.spelling, occurrence.value, problems);
    else own.set(flag.name, occurrence.value);
  }
  const misplaced = parsed.positional.find((arg) => arg.length > 1 && arg.startsWith("-"));
  if (misplaced !== undefined)
    problems.add(`${misplaced}: flags go before the asset names (Go flag rules stop reading flags at the first asset)`);
  for (const required of ["talos-version", "schematic"])
    if (!own.get(required)) problems.add(`-${required} is required`);
  if (parsed.positional.length === 0)
    problems.add("no asset to build: name at least one, e.g. kernel-amd64 initramfs-amd64.xz cmdline-metal-amd64");
  let settings: Awaited<ReturnType<typeof validateSourceSettings>> | undefined;
  try {
    settings = await validateSourceSettings(values, { cwd });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) problems.add(problem);
  }
  const externalUrl = values.value<string>("http.externalURL");
  try {
    normalizeExternalUrl(externalUrl);
  } catch (err) {
    problems.add(`${values.nameOf("http.externalURL")}: ${(err as Error).message}`);
  }
  problems.throwIfAny();
  return {
    externalUrl,
    talosVersion: parseVersionTag(own.get("talos-version") as string),
    schematicFile: resolve(cwd, own.get("schematic") as string),
    outputDir: resolve(cwd, own.get("output-dir") ?? "."),
    cacheDir: resolve(cwd, own.get("cache-dir") ?? bootAssetsCacheDir(env)),
    assets: [...new Set(parsed.positional)],
    settings: settings as NonNullable<typeof settings>,
  };
}

async function readSchematicFile(file: string): Promise<Schematic> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (err) {
    throw badRequest(`-schematic ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw badRequest(`-schematic ${file}: not a regular file`);
    if (info.size > MAX_SCHEMATIC_BYTES)
      throw badRequest(`-schematic ${file}: larger than ${MAX_SCHEMATIC_BYTES} bytes`);
    const body = await handle.readFile();
    try {
      return parseSchematic(body);
    } catch (err) {
      throw badRequest(`-schematic ${file}: ${(err as Error).message}`);
    }
  } finally {
    await handle.close();
  }
}

export async function buildCommand(args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const line = await readBuildCommandLine(args, env);
  if ("help" in line) {
    process.stdout.write(buildUsage());
    return;
  }
  const schematic = await readSchematicFile(line.schematicFile);
  const requests = planAssets(line.talosVersion, line.assets, schematic);
  const progress = new BuildProgress(process.stderr, process.stderr.isTTY === true);
  const { images, signatures } = line.settings;

  const controller = new AbortController();
  const interrupt = () => {
    // The first signal cancels cleanly (temporary files removed); a second one does not wait for that.
    if (controller.signal.aborted) process.exit(130);
    progress.line("interrupted: cleaning up (again to quit at once)");
    controller.abort(new Error("interrupted"));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    progress.line(
      `Talos ${line.talosVersion}, schematic ${schematicId(schematic)}, from ${images.registry}` +
        (signatures.loaded.disabled ? " (signature verification DISABLED)" : ""),
    );
    await buildAssetsOffline(
      {
        settings: line.settings,
        externalUrl: line.externalUrl,
        schematic,
        requests,
        cacheDir: line.cacheDir,
        outputDir: line.outputDir,
        signal: controller.signal,
        hooks: {
          step: (title, work) => progress.step(title, work),
          source: (event) => progress.source(event),
          warn: (text) => progress.line(`warning: ${text}`),
        },
      },
      (result) => {
        progress.line(
          `${result.built ? "built    " : "cache hit"} ${result.request.filename} (${formatBytes(result.size)})`,
        );
        process.stdout.write(`${result.path} ${result.size} ${result.sha256}\n`);
      },
    );
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
}

export function registerBuildCommand(program: Command): void {
  program
    .command("build")
    .description(
      "Build boot assets offline (kernel, initramfs, cmdline, UKI, installer, ISO, disk images) from a registry's signed Talos release; -h for the flags",
    )
    .argument("[args...]", "flags (the factory's source and signature flags), then asset names, e.g. kernel-amd64")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (parsed: string[], _options: unknown, command: Command) => {
      await buildCommand(rawSubcommandArgs(command, parsed), process.env);
    });
}
