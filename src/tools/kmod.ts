// depmod (Debian kmod). Upstream regenerates the merged module index of the base rootfs plus the
// extensions' modules with `depmod --all --basedir <dir>/usr <kver>` (≥ 1.10, modules in usr/lib/modules)
// or with the tree root as basedir before 1.10 (lib/modules): depmod always looks in <basedir>/lib/modules.

import { type RunOptions, runTool, type Tool } from "./run.ts";

export const depmodTool: Tool = { command: "depmod", debianPackage: "kmod" };

export interface DepmodOptions extends Pick<RunOptions, "signal" | "timeoutMs"> {
  /** The directory that holds lib/modules/<kernelVersion>. */
  basedir: string;
  kernelVersion: string;
  /** A configuration file read instead of the host's /etc/depmod.d (`--config`). */
  config?: string;
}

export function depmodArgs(options: DepmodOptions): string[] {
  if (!/^[\w.+~-]+$/.test(options.kernelVersion)) throw new RangeError(`bad kernel version "${options.kernelVersion}"`);
  const config = options.config === undefined ? [] : ["--config", options.config];
  return ["--all", "--basedir", options.basedir, ...config, options.kernelVersion];
}

/** Writes modules.dep, modules.alias, … into <basedir>/lib/modules/<kernelVersion>/. */
export async function depmod(options: DepmodOptions): Promise<void> {
  await runTool(depmodTool, depmodArgs(options), options);
}
