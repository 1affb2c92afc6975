// `boot-assets registry`: run the embedded OCI registry (`registry [serve] --listen … --root …`), or export a
// repository of a store to an OCI image layout (`registry export --root DIR REPO[:TAG] --output DIR`).

import { type Command, Option } from "commander";
import { pino } from "pino";
import { badRequest } from "../errors.ts";
import { startRegistryServer } from "../registry/server.ts";
import { openStore } from "../registry/store.ts";

interface ServeOptions {
  listen: string;
  root: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
}

function withServeOptions(command: Command): Command {
  return command
    .option("--listen <addr>", "address to listen on (host:port)", "127.0.0.1:5000")
    .option("--root <dir>", "storage root (created when missing)", "./data/registry")
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (chain)")
    .option("--tls-key <file>", "private key of --tls-cert")
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["trace", "debug", "info", "warn", "error", "silent"])
        .default("info"),
    );
}

async function serve(options: ServeOptions): Promise<void> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined))
    throw badRequest("--tls-cert and --tls-key go together");
  const logger = pino({ level: options.logLevel });
  const server = await startRegistryServer({
    root: options.root,
    listen: options.listen,
    logger,
    ...(options.tlsCert && options.tlsKey ? { tls: { certFile: options.tlsCert, keyFile: options.tlsKey } } : {}),
  });
  process.stdout.write(`boot-assets registry listening on ${server.url}, storage root ${server.store.root}\n`);
  // Run until asked to stop; closing releases the store lock so the next start needs no stale-lock takeover.
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  logger.info({ signal }, "stopping");
  await server.close();
}

/** `REPO[:TAG]`: the tag follows the last ":" after the last "/"; without one, every tag is exported. */
function parseExportTarget(target: string): { repository: string; tags: string[] | "all" } {
  const colon = target.lastIndexOf(":");
  if (colon > target.lastIndexOf("/")) return { repository: target.slice(0, colon), tags: [target.slice(colon + 1)] };
  return { repository: target, tags: "all" };
}

async function exportLayout(target: string, options: { root: string; output: string }): Promise<void> {
  const { repository, tags } = parseExportTarget(target);
  // Read-only: exporting works while a server has the store open for writing.
  const store = await openStore(options.root, { readOnly: true });
  try {
    const result = await store.export(repository, tags, options.output);
    for (const { tag, digest } of result.tags) process.stdout.write(`${repository}:${tag} ${digest}\n`);
    process.stdout.write(
      `exported ${result.tags.length} tag(s), ${result.objects} object(s) to OCI layout ${result.layoutDir}\n`,
    );
  } finally {
    await store.close();
  }
}

export function registerRegistryCommand(program: Command): void {
  // `registry` has options of its own (serve) and subcommands with same-named ones (`export --root`); the
  // program enables positional options (main.ts), or commander would give `registry export --root X` to
  // `registry` itself.
  const registry = withServeOptions(
    program
      .command("registry")
      .description("Run the embedded OCI distribution registry (default), or export from its store")
      .enablePositionalOptions(),
  ).action((options: ServeOptions) => serve(options));

  withServeOptions(registry.command("serve").description("Run the embedded OCI distribution registry")).action(
    (options: ServeOptions) => serve(options),
  );

  registry
    .command("export")
    .description("Export a repository (all tags, or one) to an OCI image layout readable by skopeo/oras")
    .argument("<repository>", "REPO or REPO:TAG")
    .requiredOption("--root <dir>", "storage root of the registry")
    .requiredOption("--output <dir>", "OCI image layout directory (created, or added to)")
    .action((target: string, options: { root: string; output: string }) => exportLayout(target, options));
}
