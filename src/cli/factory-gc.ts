// `boot-assets factory gc [--max-age D] [--max-size S] [--dry-run] [factory flags…]`: one garbage collection
// of the factory's asset cache (src/factory/cache-gc.ts). `--max-age`/`--max-size` are short for the
// factory's -asset-cache-max-age/-asset-cache-max-size; without either, the configured ones apply.

import { collectFactoryCacheGarbage } from "../factory/cache-gc.ts";
import { readFactoryCommandLine } from "../factory/config/index.ts";
import { formatBytes } from "./build-progress.ts";

const aliases: Record<string, string> = {
  "max-age": "asset-cache-max-age",
  "max-size": "asset-cache-max-size",
};

/** Renames the gc flags to the factory's and takes out --dry-run. */
function translate(args: readonly string[]): { factoryArgs: string[]; dryRun: boolean } {
  const factoryArgs: string[] = [];
  let dryRun = false;
  for (const arg of args) {
    const match = /^--?([a-z-]+)(=.*)?$/.exec(arg);
    const name = match?.[1];
    if (name === "dry-run" && match?.[2] === undefined) {
      dryRun = true;
      continue;
    }
    const alias = name === undefined ? undefined : aliases[name];
    factoryArgs.push(alias === undefined ? arg : `-${alias}${match?.[2] ?? ""}`);
  }
  return { factoryArgs, dryRun };
}

export async function factoryGcCommand(args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { factoryArgs, dryRun } = translate(args);
  const commandLine = await readFactoryCommandLine(factoryArgs, env);
  if (commandLine.help) {
    process.stdout.write(
      "usage: boot-assets factory gc [--max-age D] [--max-size S] [--dry-run] [factory flags…]\n" +
        "  --max-age D   remove cached assets not used for D (e.g. 30d, 36h)\n" +
        "  --max-size S  then remove the least recently used until the rest fit in S (e.g. 50GiB)\n" +
        "  --dry-run     show what would be removed\n\n",
    );
    process.stdout.write(commandLine.usage);
    return;
  }
  const { config } = commandLine;
  const { maxAgeMs, maxSizeBytes } = config.cacheGc;
  if (maxAgeMs === undefined && maxSizeBytes === undefined)
    throw new Error("nothing to collect by: give --max-age, --max-size, or both");
  const result = await collectFactoryCacheGarbage(config, {
    maxAgeMs,
    maxSizeBytes,
    dryRun,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const verb = dryRun ? "would remove" : "removed";
  for (const entry of result.removed)
    process.stdout.write(
      `${verb} ${entry.key} ${formatBytes(entry.size)} (${entry.reason === "age" ? "max age" : "max size"})\n`,
    );
  const removedBytes = result.removed.reduce((sum, entry) => sum + entry.size, 0);
  process.stdout.write(
    `${result.cache}: ${verb} ${result.removed.length} entr${result.removed.length === 1 ? "y" : "ies"} (${formatBytes(removedBytes)}), ` +
      `kept ${result.kept} (${formatBytes(result.keptBytes)})` +
      (dryRun ? "\n" : `, freed ${formatBytes(result.sweptBytes)} of unreferenced blobs\n`),
  );
}
