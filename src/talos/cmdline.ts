// The kernel command line of a boot asset, built as upstream's imager does (pkg/imager buildCmdline) on
// top of the go-procfs Cmdline semantics:
//   talos.platform=<p>; the platform's args (each key replaces); talos.halt_if_installed=1 for ISOs (when
//   the version has it); overlay args (replace); default args by version (append); secure-boot args
//   (append); talos.environment=INSTALLER_META_BASE64=… when the schematic has META and the asset is not a
//   disk image (disk images get a META partition); the schematic's extraKernelArgs, where `-key` removes
//   every value of key, `-key=v` removes that value, `console` and `talos.platform` replace, and anything
//   else appends.
// Values are kept grouped by key in first-appearance order; an empty value prints as a bare key.

import { type MetaValue, metaEnvironment } from "./meta.ts";
import { type Arch, platformByName } from "./platforms.ts";
import { rulesFor } from "./version-rules.ts";

/** What is being built; the cmdline differs for ISOs (halt_if_installed) and disk images (no META arg). */
export type OutputKind = "kernel" | "initramfs" | "cmdline" | "iso" | "uki" | "installer" | "disk";

interface Parameter {
  readonly key: string;
  values: string[];
}

/**
 * An ordered kernel command line: one entry per key, its values in order. Mirrors go-procfs' Cmdline,
 * including its edge cases (a `-key=v` removal leaves the key's slot in place, so a later value of that
 * key returns to the same position; `-key` removes the slot).
 */
export class KernelCmdline {
  private params: Parameter[] = [];

  /** Parses `args` (each may hold several space-separated args) into key groups, first appearance first. */
  static parse(args: readonly string[]): Parameter[] {
    const parsed: Parameter[] = [];
    for (const field of args.join(" ").split(/\s+/)) {
      if (field === "") continue;
      const at = field.indexOf("=");
      const [key, value] = at < 0 ? [field, ""] : [field.slice(0, at), field.slice(at + 1)];
      const existing = parsed.find((p) => p.key === key);
      if (existing) existing.values.push(value);
      else parsed.push({ key, values: [value] });
    }
    return parsed;
  }

  get(key: string): readonly string[] | undefined {
    return this.params.find((p) => p.key === key)?.values;
  }

  /** Adds a value to key (at the key's position, or a new key at the end). */
  append(key: string, value: string): void {
    const existing = this.params.find((p) => p.key === key);
    if (existing) existing.values.push(value);
    else this.params.push({ key, values: [value] });
  }

  /** Replaces all values of key (in its position, or at the end). */
  set(key: string, values: readonly string[]): void {
    const at = this.params.findIndex((p) => p.key === key);
    const param = { key, values: [...values] };
    if (at < 0) this.params.push(param);
    else this.params[at] = param;
  }

  /** Each key in `args` replaces that key's values. */
  setAll(args: readonly string[]): void {
    for (const p of KernelCmdline.parse(args)) this.set(p.key, p.values);
  }

  /** Removes the given values of key; the key keeps its position even when no value is left. */
  deleteValues(key: string, values: readonly string[]): void {
    const existing = this.params.find((p) => p.key === key);
    if (existing) existing.values = existing.values.filter((v) => !values.includes(v));
  }

  /** Removes key with all its values. */
  deleteKey(key: string): void {
    this.params = this.params.filter((p) => p.key !== key);
  }

  /**
   * Appends args. With `deleteNegated`, `-key` deletes key and `-key=v` deletes that value (a lone `-`
   * is a valid kernel arg and is kept); keys in `overwrite` replace instead of appending.
   */
  appendAll(args: readonly string[], options: { overwrite?: readonly string[]; deleteNegated?: boolean } = {}): void {
    for (const p of KernelCmdline.parse(args)) {
      if (options.deleteNegated && p.key.length > 1 && p.key.startsWith("-")) {
        // Like upstream, the first value decides: a bare `-key` anywhere first removes the key entirely.
        if (p.values[0] === "") this.deleteKey(p.key.slice(1));
        else this.deleteValues(p.key.slice(1), p.values);
        continue;
      }
      if (options.overwrite?.includes(p.key)) this.set(p.key, p.values);
      else for (const v of p.values) this.append(p.key, v);
    }
  }

  toString(): string {
    return this.params.flatMap((p) => p.values.map((v) => (v === "" ? p.key : `${p.key}=${v}`))).join(" ");
  }
}

export interface CmdlineRequest {
  talosVersion: string;
  platform: string;
  arch: Arch;
  secureBoot: boolean;
  outputKind: OutputKind;
  /** Kernel args of the board overlay, if any (they replace by key, like the platform's). */
  overlayKernelArgs?: readonly string[];
  schematic?: {
    extraKernelArgs?: readonly string[];
    meta?: readonly MetaValue[];
  };
}

/** The kernel command line for an asset (see the top of this file for the order and the rules). */
export function buildCmdline(request: CmdlineRequest): string {
  const rules = rulesFor(request.talosVersion);
  const platform = platformByName(request.platform);
  const cmdline = new KernelCmdline();
  cmdline.append("talos.platform", platform.name);
  cmdline.setAll(platform.kernelArgs(request.arch, rules));
  if (rules.haltIfInstalled && request.outputKind === "iso") cmdline.append("talos.halt_if_installed", "1");
  if (request.overlayKernelArgs !== undefined) cmdline.setAll(request.overlayKernelArgs);
  cmdline.appendAll(rules.defaultKernelArgs);
  if (request.secureBoot) cmdline.appendAll(rules.secureBootKernelArgs);
  const meta = request.schematic?.meta ?? [];
  if (meta.length > 0 && request.outputKind !== "disk")
    cmdline.append("talos.environment", metaEnvironment(meta, rules));
  cmdline.appendAll(request.schematic?.extraKernelArgs ?? [], {
    overwrite: ["console", "talos.platform"],
    deleteNegated: true,
  });
  return cmdline.toString();
}
