// A FAT32 file system made as an image file and filled with mtools: the disk's EFI partition and the ISO's
// efiboot.img. No mount, no loop device. Reproducible: mkfs.vfat --invariant fixes the volume id and boot
// sector, mtools stamps everything it creates with the given time (SOURCE_DATE_EPOCH), and files and
// directories are added in sorted order.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { badRequest } from "../../errors.ts";
import { mkfsVfat } from "../../tools/dosfstools.ts";
import { mattrib, mcopy, mmd } from "../../tools/mtools.ts";
import type { RunOptions } from "../../tools/run.ts";

/** A file's content: a local file (streamed by mtools) or bytes (small files: configs). */
export type FileSource = string | Uint8Array;

export interface FatImageOptions extends Pick<RunOptions, "signal" | "timeoutMs"> {
  sizeBytes: number;
  label: string;
  /** Path in the file system ("EFI/BOOT/BOOTX64.EFI") → content. */
  files: ReadonlyMap<string, FileSource>;
  /** Timestamp of every file and directory (seconds); default SOURCE_DATE_EPOCH (else the FAT epoch). */
  mtime?: number;
  sectorsPerCluster?: number;
  /** Logical sector size (`mkfs.vfat -S`, upstream makefs.WithSectorSize); default 512. */
  sectorSize?: number;
  /** Paths marked read-only after copying (upstream: loader/random-seed on ISOs). */
  readOnly?: readonly string[];
}

function cleanPath(path: string): string {
  const clean = posix.normalize(path.replace(/^\/+/, ""));
  if (clean === "." || clean.startsWith("..") || clean.includes("/../"))
    throw badRequest(`invalid path in FAT image: "${path}"`);
  return clean;
}

/** Every directory the files need, parents before children, sorted. */
export function directoriesFor(paths: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const path of paths) {
    const parts = cleanPath(path).split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || (a < b ? -1 : a > b ? 1 : 0));
}

/** Creates the FAT image at `image` (replacing it) holding `files`. */
export async function buildFatImage(image: string, options: FatImageOptions): Promise<void> {
  await mkfsVfat(image, {
    sizeBytes: options.sizeBytes,
    label: options.label,
    sectorsPerCluster: options.sectorsPerCluster,
    sectorSize: options.sectorSize,
    signal: options.signal,
    timeoutMs: options.timeoutMs,
  });
  const mtoolsOptions = { mtime: options.mtime, signal: options.signal, timeoutMs: options.timeoutMs };
  const paths = [...options.files.keys()].map(cleanPath).sort();
  if (new Set(paths).size !== paths.length) throw badRequest("a path is given twice for the FAT image");
  await mmd(image, directoriesFor(paths), mtoolsOptions);
  const scratch = await mkdtemp(join(tmpdir(), "fat-image-"));
  try {
    let n = 0;
    for (const [path, source] of [...options.files].sort(([a], [b]) => (cleanPath(a) < cleanPath(b) ? -1 : 1))) {
      let local: string;
      if (typeof source === "string") local = source;
      else {
        local = join(scratch, `content-${n++}`);
        await writeFile(local, source);
      }
      await mcopy(image, local, cleanPath(path), mtoolsOptions);
    }
    for (const path of options.readOnly ?? []) await mattrib(image, "+r", cleanPath(path), mtoolsOptions);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Sectors per cluster for an ESP holding a UKI (upstream's fatSectorsPerCluster): the largest of 1, 2, 4, 8
 * that keeps the cluster count above FAT32's minimum (65525, plus room for reserved sectors and FATs).
 */
export function fatSectorsPerCluster(sizeBytes: number): number {
  const sectors = Math.floor(sizeBytes / 512);
  const minClusters = 65525 + 2048;
  let spc = 1;
  for (let next = 2; next <= 8; next *= 2) {
    if (sectors / next < minClusters) break;
    spc = next;
  }
  return spc;
}
