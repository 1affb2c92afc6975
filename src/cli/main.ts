import { Command, CommanderError } from "commander";
import { exitCodeOf } from "../errors.ts";
import { packageVersion } from "../util/package-version.ts";
import { registerBuildCommand } from "./build.ts";
import { registerCatalogCommands } from "./catalog.ts";
import { registerExtensionCommands } from "./extension.ts";
import { registerFactoryCommand } from "./factory.ts";
import { registerImageCommands } from "./image.ts";
import { registerKernelConfigCommands } from "./kernel-config.ts";
import { registerMirrorCommand } from "./mirror.ts";
import { registerRegistryCommand } from "./registry.ts";
import { explainRegistryFailure } from "./registry-options.ts";
import { registerSecureBootCommands } from "./secureboot.ts";
import { registerSignCommands } from "./sign.ts";
import { registerTestbedCommands } from "./testbed.ts";
import { registerVerifyCommand } from "./verify.ts";

export function buildProgram(): Command {
  const program = new Command("boot-assets")
    .description("Self-hosted factory and toolkit for Talos Linux boot assets")
    .version(packageVersion(), "-v, --version", "print the version and exit")
    .showHelpAfterError()
    // Options belong to the command they follow, so subcommands may reuse names (`registry export --root`).
    .enablePositionalOptions()
    .exitOverride();
  registerRegistryCommand(program);
  registerImageCommands(program);
  registerSignCommands(program);
  registerVerifyCommand(program);
  registerSecureBootCommands(program);
  registerFactoryCommand(program);
  registerBuildCommand(program);
  registerCatalogCommands(program);
  registerTestbedCommands(program);
  registerMirrorCommand(program);
  registerExtensionCommands(program);
  registerKernelConfigCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    // One mapping for every command: registry failures read the same whatever command met them.
    const explained = explainRegistryFailure(err);
    process.stderr.write(`boot-assets: ${explained instanceof Error ? explained.message : String(explained)}\n`);
    return exitCodeOf(err);
  }
}

process.exitCode = await main(process.argv.slice(2));
