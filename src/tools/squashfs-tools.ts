// Which mksquashfs builds labelled extension images (Talos ≥ 1.13: `-xattrs-exclude` and `x` pseudo
// definitions, squashfs-tools ≥ 4.6). Debian 12 ships 4.5.1, so unless the machine's own is recent enough,
// Debian trixie's squashfs-tools (4.6.1, which needs nothing newer than Debian 12's libraries) is fetched
// once into the package store and run from there (docs/caches.md). Nothing is installed, and a machine
// that cannot get one still builds: unlabelled, with a warning (the imager's).

import { join } from "node:path";
import { mksquashfsVersion, supportsPseudoXattrs } from "./squashfs.ts";

export interface LabellingMksquashfsOptions {
  /** Unpacks squashfs-tools ≥ 4.6 somewhere and returns the root it was unpacked into (`<root>/usr/bin/mksquashfs`). */
  fetchPackage?: (signal?: AbortSignal) => Promise<string>;
  log?: (line: string) => void;
}

/**
 * A function answering the path of an mksquashfs ≥ 4.6, or undefined when there is none to be had: the one on
 * PATH when it is recent enough, else the fetched one. Asked once per process (the first labelled build);
 * a failed fetch is logged and asked again no sooner than ten minutes later.
 */
export function labellingMksquashfs(
  options: LabellingMksquashfsOptions = {},
): (signal?: AbortSignal) => Promise<string | undefined> {
  let answer: Promise<string | undefined> | undefined;
  let failedAt = 0;
  const find = async (signal?: AbortSignal): Promise<string | undefined> => {
    if (await recentEnough("mksquashfs", signal)) return "mksquashfs";
    if (options.fetchPackage === undefined) return undefined;
    try {
      const command = join(await options.fetchPackage(signal), "usr", "bin", "mksquashfs");
      if (await recentEnough(command, signal)) return command;
      options.log?.(`warning: ${command} is not squashfs-tools 4.6 or newer`);
    } catch (err) {
      if (signal?.aborted) {
        answer = undefined;
        throw err;
      }
      options.log?.(`warning: fetching squashfs-tools ≥ 4.6 failed: ${(err as Error).message}`);
    }
    failedAt = Date.now();
    return undefined;
  };
  return (signal) => {
    if (answer === undefined || (failedAt !== 0 && Date.now() - failedAt > 10 * 60 * 1000)) {
      failedAt = 0;
      answer = find(signal);
    }
    return answer;
  };
}

async function recentEnough(command: string, signal?: AbortSignal): Promise<boolean> {
  const version = await mksquashfsVersion(command, { signal }).catch(() => undefined);
  return version !== undefined && supportsPseudoXattrs(version);
}
