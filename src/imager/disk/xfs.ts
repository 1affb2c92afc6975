// BOOT: an XFS file system made in an image file from a directory through an mkfs.xfs protofile, so no
// mount, loop device or root privilege is needed. As upstream (makefs.XFS): label BOOT, ftype=1, the
// file system UUID derived from the label, and the version's mkfs config (lts_X.Y.conf).
//
// Byte-reproducible given `mtime`: mkfs.xfs then runs with the clock stopped at it (tools/xfsprogs.ts).

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAppError } from "../../errors.ts";
import { guidFromLabel } from "../../formats/gpt.ts";
import { xfsProtofile } from "../../formats/xfs-protofile.ts";
import type { RunOptions } from "../../tools/run.ts";
import { type MkfsXfsOptions, mkfsXfs, resolveXfsConfig } from "../../tools/xfsprogs.ts";

export interface XfsImageOptions extends Pick<RunOptions, "signal" | "timeoutMs"> {
  sizeBytes: number;
  label: string;
  /** The tree to put in the file system; omitted for an empty one. */
  sourceDir?: string;
  /** The mkfs config upstream uses for the version (VersionRules.xfsMkfsConfig); the closest installed older one is used when it is missing. */
  configFile?: string;
  /** Every timestamp in the file system (seconds since the epoch). */
  mtime?: number;
  /** The disk's logical sector size (upstream makefs.WithSectorSize); default mkfs.xfs's 512 for a file. */
  sectorSize?: number;
}

export interface XfsImageResult {
  /** The mkfs config actually used (undefined: mkfs.xfs defaults). */
  configFile: string | undefined;
  /** Config options this mkfs.xfs does not know, left out ("metadata.nrext64=0"). */
  droppedOptions: string[];
  uuid: string;
}

/**
 * Runs mkfs.xfs with a copy of the config, leaving out options this mkfs.xfs rejects. Debian's xfsprogs 6.1
 * ships lts_*.conf files with `nrext64=0` that its own mkfs.xfs refuses; the option only turns off a
 * feature that release cannot make anyway, so leaving it out changes nothing in the result.
 */
async function mkfsWithConfig(
  image: string,
  options: MkfsXfsOptions,
  config: string,
  scratch: string,
): Promise<string[]> {
  const copy = join(scratch, "mkfs.conf");
  let lines = (await readFile(config, "utf8")).split("\n");
  const dropped: string[] = [];
  for (let attempt = 0; ; attempt++) {
    await writeFile(copy, lines.join("\n"));
    try {
      await mkfsXfs(image, { ...options, configFile: copy });
      return dropped;
    } catch (err) {
      const detail = isAppError(err) ? String((err.detail as { stderr?: string } | undefined)?.stderr ?? "") : "";
      const bad = /invalid config file option: \[(\w+)\]: (\w+)=(\S*)/.exec(detail);
      if (bad === null || attempt >= 8) throw err;
      const [, section, key, value] = bad as unknown as [string, string, string, string];
      dropped.push(`${section}.${key}=${value}`);
      lines = lines.filter((line) => line.split("=")[0]?.trim() !== key);
    }
  }
}

export async function buildXfsImage(image: string, options: XfsImageOptions): Promise<XfsImageResult> {
  const configFile = options.configFile === undefined ? undefined : resolveXfsConfig(options.configFile);
  const uuid = guidFromLabel(options.label);
  const scratch = await mkdtemp(join(tmpdir(), "xfs-image-"));
  try {
    let protofile: string | undefined;
    if (options.sourceDir !== undefined) {
      protofile = join(scratch, "protofile");
      await writeFile(protofile, await xfsProtofile(options.sourceDir));
    }
    const mkfsOptions: MkfsXfsOptions = {
      sizeBytes: options.sizeBytes,
      label: options.label,
      uuid,
      protofile,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      ...(options.mtime !== undefined ? { mtime: options.mtime } : {}),
      ...(options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {}),
    };
    const droppedOptions =
      configFile === undefined ? [] : await mkfsWithConfig(image, mkfsOptions, configFile, scratch);
    if (configFile === undefined) await mkfsXfs(image, mkfsOptions);
    return { configFile, droppedOptions, uuid };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
