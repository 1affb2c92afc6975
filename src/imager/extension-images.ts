// Each extension's rootfs → its squashfs image (step 4 of extensions.ts): mksquashfs with the version's
// options and one fixed timestamp, run in parallel; from Talos 1.13 with the extension's SELinux labels as
// pseudo xattrs. An image pulled by digest is taken from, or put in, the intermediate cache under
// squashfsImageKey.

import { createHash } from "node:crypto";
import { cp } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, sep } from "node:path";
import type { VersionRules } from "../talos/version-rules.ts";
import { mksquashfs, mksquashfsTool, mksquashfsVersion } from "../tools/squashfs.ts";
import { labellingMksquashfs } from "../tools/squashfs-tools.ts";
import { mapLimited } from "../util/concurrency.ts";
import type { IntermediateCache } from "./intermediate-cache.ts";
import { presentLabels } from "./selinux-labels.ts";

/** What an extension's squashfs image is made from. */
export interface ExtensionImageSource {
  /** Directory name upstream would give it (its index), which also names its squashfs image. */
  directory: string;
  /** How errors name it. */
  label: string;
  /** The tree that becomes the squashfs image. */
  rootfs: string;
  /** SELinux labels by path inside `rootfs` ("/" for itself, else "usr/bin/x"). */
  selinuxLabels: ReadonlyMap<string, string>;
  /** The image digest it was pulled by: only such an extension's squashfs is cached. */
  digest?: string;
  /** Its firmware directory (inside `rootfs`), moved to the initramfs: left out of its image. */
  firmwareDir?: string;
}

export interface ExtensionImagesOptions {
  rules: VersionRules;
  /** Timestamp of every file. */
  mtime: number;
  /** Where each image is written, as `<directory>.sqsh`. */
  imagesDir: string;
  /** Scratch directory for the copies of extensions whose firmware is left out. */
  workDir: string;
  /** Parallel mksquashfs runs; default one per core. */
  concurrency?: number | undefined;
  labellingMksquashfs?: ((signal?: AbortSignal) => Promise<string | undefined>) | undefined;
  intermediateCache?: IntermediateCache | undefined;
  arch?: string | undefined;
  signal?: AbortSignal | undefined;
  log: (line: string) => void;
}

const isUnder = (path: string, dir: string) => path === dir || path.startsWith(`${dir}${sep}`);

/** Bump when a change here or in flattening changes an extension image's bytes (stale entries then miss). */
const squashfsRecipe = 1;
const digestPattern = /^sha256:[0-9a-f]{64}$/;

/**
 * The intermediate cache key of an extension's squashfs image: everything its bytes depend on — the image
 * (digest, and the architecture it was flattened for), the firmware moved out (by path), the version's
 * mksquashfs options, whether SELinux labels were given (the labels come from the image), the timestamp, and
 * which mksquashfs made it (its version and path).
 */
export function squashfsImageKey(parts: {
  digest: string;
  arch: string;
  firmwarePath: string;
  compression: string;
  level: number | undefined;
  xzDictSize: string | undefined;
  mtime: number;
  processors: number;
  labelled: boolean;
  tool: string;
}): string {
  const fields = { recipe: squashfsRecipe, ...parts, level: parts.level ?? null, xzDictSize: parts.xzDictSize ?? null };
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)));
  return createHash("sha256").update(JSON.stringify(sorted)).digest("hex");
}

const toolVersions = new Map<string, Promise<string>>();

/** "path version" of the mksquashfs that runs (the labelling one, else the one on PATH), asked once per process. */
function toolIdentity(labelling: string | undefined, signal?: AbortSignal): Promise<string> {
  const command = labelling ?? mksquashfsTool.command;
  let identity = toolVersions.get(command);
  if (identity === undefined) {
    identity = mksquashfsVersion(command, { signal }).then((v) => `${command} ${v.join(".")}`);
    identity.catch(() => toolVersions.delete(command));
    toolVersions.set(command, identity);
  }
  return identity;
}

/**
 * Writes `<imagesDir>/<directory>.sqsh` for each extension. Returns the intermediate cache key of each image
 * that has one (by directory): its bytes are what the key says, so what contains it can be keyed by it.
 */
export async function makeExtensionImages(
  extensions: readonly ExtensionImageSource[],
  options: ExtensionImagesOptions,
): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  const { rules, mtime, imagesDir, workDir: work, signal, log } = options;
  log(`compressing ${extensions.length} system extensions (${rules.squashfsCompression})`);
  const labelling = rules.squashfsSelinuxLabels
    ? await (options.labellingMksquashfs ?? labellingMksquashfs())(signal)
    : undefined;
  if (rules.squashfsSelinuxLabels && labelling === undefined && extensions.some((e) => e.selinuxLabels.size > 0))
    log(
      "warning: no mksquashfs ≥ 4.6 (squashfs-tools) is available: the extension images are built without the SELinux labels Talos 1.13 gives them",
    );
  const squashfsOptions = {
    compression: rules.squashfsCompression,
    // internal/pkg/extensions/compress.go: zstd level 18, or xz with a dictionary as large as a block.
    level: rules.squashfsCompression === "zstd" ? 18 : undefined,
    xzDictSize: rules.squashfsCompression === "xz" ? "100%" : undefined,
    mtime,
    processors: 1,
  };
  const cache = options.intermediateCache;
  const toolVersion =
    cache === undefined || options.arch === undefined ? undefined : await toolIdentity(labelling, signal);
  let hits = 0;
  await mapLimited(extensions, options.concurrency ?? availableParallelism(), async (extension) => {
    signal?.throwIfAborted();
    const out = join(imagesDir, `${extension.directory}.sqsh`);
    const make = async (path: string) => {
      let source = extension.rootfs;
      const firmwareDir = extension.firmwareDir;
      if (firmwareDir !== undefined) {
        source = join(work, `rootfs-${extension.directory}`);
        await cp(extension.rootfs, source, {
          recursive: true,
          verbatimSymlinks: true,
          filter: (path) => !isUnder(path, firmwareDir),
        });
      }
      const xattrs =
        labelling === undefined
          ? {}
          : {
              command: labelling,
              selinuxLabels: await presentLabels(extension.label, source, extension.selinuxLabels),
            };
      await mksquashfs(source, path, { ...xattrs, ...squashfsOptions, signal });
    };
    if (
      cache === undefined ||
      toolVersion === undefined ||
      extension.digest === undefined ||
      !digestPattern.test(extension.digest)
    ) {
      await make(out);
      return;
    }
    const key = squashfsImageKey({
      digest: extension.digest,
      arch: options.arch as string,
      firmwarePath: rules.firmwarePath,
      ...squashfsOptions,
      labelled: labelling !== undefined,
      tool: toolVersion,
    });
    if (await cache.provide("squashfs", key, out, make, signal)) hits++;
    keys.set(extension.directory, key);
  });
  if (cache !== undefined) log(`extension images from the intermediate cache: ${hits} of ${extensions.length}`);
  return keys;
}
