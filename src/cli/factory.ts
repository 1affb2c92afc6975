// `boot-assets factory [flags…]`: the long-running factory service. Its flags follow Go's `flag` rules
// (upstream's legacy command lines must work as written), so they bypass commander and reach the factory's
// own parser untouched.

import type { Command } from "commander";
import { readFactoryCommandLine } from "../factory/config/index.ts";
import { describeFactoryConfig } from "../factory/config/summary.ts";
import { runFactory } from "../factory/run.ts";

export async function factoryCommand(args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const commandLine = await readFactoryCommandLine(args, env);
  if (commandLine.help) {
    process.stdout.write(commandLine.usage);
    return;
  }
  const { config } = commandLine;
  for (const line of describeFactoryConfig(config)) process.stdout.write(`${line}\n`);
  if (commandLine.checkOnly) {
    process.stdout.write("configuration is valid (--check-config): not starting; serving is not built yet\n");
    return;
  }
  await runFactory(config);
}

/** The arguments after `factory` exactly as given (commander would treat `-http-port` as short options). */
function rawFactoryArgs(command: Command, parsed: string[]): string[] {
  // commander keeps the program's raw arguments in `rawArgs` (not in its typings).
  const raw = (command.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs;
  const at = raw?.indexOf(command.name()) ?? -1;
  return raw !== undefined && at !== -1 ? raw.slice(at + 1) : parsed;
}

export function registerFactoryCommand(program: Command): void {
  program
    .command("factory")
    .description(
      "Run the factory service (upstream image-factory flags, Go flag rules; --config FILE|env=PREFIX; -h for the flags)",
    )
    .argument("[args...]", "flags, e.g. -image-registry ghcr.io -http-port :8080")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (parsed: string[], _options: unknown, command: Command) => {
      await factoryCommand(rawFactoryArgs(command, parsed), process.env);
    });
}
