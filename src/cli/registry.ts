import type { Command } from "commander";

// Placeholder: the `registry` subcommand is wired to src/registry/server.ts.
export function registerRegistryCommand(program: Command): void {
  program
    .command("registry")
    .description("Run the embedded OCI distribution registry")
    .option("--listen <addr>", "address to listen on", "127.0.0.1:5000")
    .option("--root <dir>", "storage root", "./data/registry")
    .action(() => {
      throw new Error("not implemented yet");
    });
}
