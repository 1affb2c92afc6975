// `boot-assets factory [flags…]`: the long-running factory service. Its flags follow Go's `flag` rules
// (upstream's legacy command lines must work as written), so they bypass commander and reach the factory's
// own parser untouched.

import type { Command } from "commander";
import { pino } from "pino";
import { readFactoryCommandLine } from "../factory/config/index.ts";
import { describeFactoryConfig } from "../factory/config/summary.ts";
import { runFactory } from "../factory/run.ts";
import { plannedTestbedArgs, startTestbed, type TestbedRegistry } from "../factory/testbed.ts";
import { factoryGcCommand } from "./factory-gc.ts";
import { rawSubcommandArgs } from "./raw-args.ts";

export async function factoryCommand(args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (args[0] === "gc") return factoryGcCommand(args.slice(1), env);
  let commandLine = await readFactoryCommandLine(args, env);
  if (commandLine.help) {
    process.stdout.write(commandLine.usage);
    return;
  }
  let testbed: TestbedRegistry | undefined;
  if (commandLine.testbed && commandLine.checkOnly) {
    // --check-config changes nothing: the test bed is neither published nor started, only its flags applied.
    const planned = await plannedTestbedArgs(commandLine.config.dataDir.testbed);
    process.stderr.write(
      `testbed: not published (--check-config); it would serve from ${commandLine.config.dataDir.testbed}\n`,
    );
    for (const file of planned.missing)
      process.stderr.write(`testbed: ${file} is written at the first start (left out of this check)\n`);
    const withTestbed = await readFactoryCommandLine([...planned.factoryArgs, ...args], env);
    if (withTestbed.help) throw new Error("unreachable: -help was handled above");
    commandLine = withTestbed;
  } else if (commandLine.testbed) {
    // The data directory comes from the command line as given; the test bed's flags go before the
    // operator's own, so an explicit -http-port (or any other) still wins.
    const started = Date.now();
    process.stderr.write(`testbed: publishing the test bed release under ${commandLine.config.dataDir.testbed}\n`);
    testbed = await startTestbed({
      dir: commandLine.config.dataDir.testbed,
      log: (line) => process.stderr.write(`testbed: ${line}\n`),
      logger: pino({ level: commandLine.config.logLevel }),
    });
    process.stderr.write(
      `testbed: registry ${testbed.registry} ready in ${((Date.now() - started) / 1000).toFixed(1)}s ` +
        `(Talos ${testbed.summary.versions.map((v) => v.version).join(", ")}; ` +
        `${testbed.summary.signatures.written} signature(s) written, ${testbed.summary.signatures.present} already present)\n`,
    );
    try {
      const withTestbed = await readFactoryCommandLine([...testbed.factoryArgs, ...args], env);
      if (withTestbed.help) throw new Error("unreachable: -help was handled above");
      commandLine = withTestbed;
    } catch (err) {
      await testbed.close();
      throw err;
    }
  }
  try {
    const { config } = commandLine;
    for (const line of describeFactoryConfig(config, { planned: commandLine.checkOnly }))
      process.stdout.write(`${line}\n`);
    if (commandLine.checkOnly) {
      process.stdout.write("configuration is valid (--check-config): not starting\n");
      return;
    }
    // Run by npm (`npm start`, npx), the factory stops with npm: npm's shell does not pass signals on.
    await runFactory(config, { stopWithParent: env.npm_lifecycle_event !== undefined });
  } finally {
    await testbed?.close();
  }
}

export function registerFactoryCommand(program: Command): void {
  program
    .command("factory")
    .description(
      "Run the factory service (upstream image-factory flags, Go flag rules; --config FILE|env=PREFIX; -h for the flags); `factory gc` collects its asset cache",
    )
    .argument("[args...]", "flags, e.g. -image-registry ghcr.io -http-port :8080")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (parsed: string[], _options: unknown, command: Command) => {
      await factoryCommand(rawSubcommandArgs(command, parsed), process.env);
    });
}
