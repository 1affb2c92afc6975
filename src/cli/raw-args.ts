import type { Command } from "commander";

/**
 * The arguments after a subcommand's name, exactly as typed. Commands that take Go-style flags (`factory`,
 * `build`) parse them themselves, so they must see them before commander interprets any dash.
 */
export function rawSubcommandArgs(command: Command, parsed: string[]): string[] {
  // commander keeps the program's raw arguments in `rawArgs` (not in its typings).
  const raw = (command.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs;
  const at = raw?.indexOf(command.name()) ?? -1;
  return raw !== undefined && at !== -1 ? raw.slice(at + 1) : parsed;
}
