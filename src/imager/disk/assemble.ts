// Puts a disk image together: a sparse file of the disk's size, the GPT written by our code, each
// partition's content (an image file or bytes) copied to its offset, and optionally GRUB for BIOS
// embedded. Copies read only where a partition image holds data (its holes are never read: a first read of a
// hole costs a zeroed page) and skip all-zero blocks, so the empty parts of file system images stay holes and
// a 1–8 GiB image costs only what its partitions hold.

import { type FileHandle, open, stat, truncate, writeFile } from "node:fs/promises";
import { badRequest } from "../../errors.ts";
import {
  encodeGpt,
  type GptLayout,
  type GptPartitionSpec,
  type GptTable,
  guidFromLabel,
  planGpt,
  readGpt,
} from "../../formats/gpt.ts";
import { fileDataSegments } from "../../tools/xfsprogs.ts";
import { readFully, writeFully } from "../../util/fs.ts";
import { embedGrubBios } from "./grub-bios.ts";

/** Upstream's image-mode disk GUID label (cmd/installer/pkg/install: diskImageLabel). */
export const diskImageGuidLabel = "talos-image-disk";

export type PartitionContentSource = { file: string } | { data: Uint8Array };

export interface DiskPartitionInput extends GptPartitionSpec {
  /** What the partition holds from its first byte; the rest stays zero. */
  content?: PartitionContentSource;
}

export interface AssembleDiskOptions {
  /** The image file (replaced). */
  path: string;
  sizeBytes: number;
  partitions: readonly DiskPartitionInput[];
  /** Default guidFromLabel("talos-image-disk"). */
  diskGuid?: string;
  sectorSize?: number;
  /** LBAs skipped after the GPT header (planGpt skipLbas). */
  skipLbas?: number;
  /** Embed GRUB for BIOS: core.img goes into the partition named `partition` (default "BIOS"). */
  grubBios?: { coreImage: string; bootImage?: string; partition?: string };
  signal?: AbortSignal;
}

const copyChunk = 8 * 1024 * 1024;

/**
 * Copies `source` into `target` at `offset`, reading only where the file system says it holds data (its
 * holes are zeros, and the target is zero there) and skipping all-zero chunks of that too.
 */
async function copySparse(source: string, target: FileHandle, offset: number, signal?: AbortSignal): Promise<void> {
  const { size } = await stat(source);
  const segments = await fileDataSegments(source, size, signal === undefined ? {} : { signal });
  const input = await open(source, "r");
  const buffer = Buffer.alloc(copyChunk);
  const zero = Buffer.alloc(copyChunk);
  try {
    for (const segment of segments) {
      const end = segment.offset + segment.length;
      for (let position = segment.offset; position < end; position += copyChunk) {
        signal?.throwIfAborted();
        const length = Math.min(copyChunk, end - position);
        const chunk = await readFully(input, buffer, length, position, source);
        if (!chunk.equals(zero.subarray(0, length))) await writeFully(target, chunk, offset + position);
      }
    }
  } finally {
    await input.close();
  }
}

async function contentSize(content: PartitionContentSource): Promise<number> {
  return "file" in content ? (await stat(content.file)).size : content.data.length;
}

/** Writes the disk image and returns its layout. */
export async function assembleDisk(options: AssembleDiskOptions): Promise<GptLayout> {
  const layout = planGpt({
    diskSizeBytes: options.sizeBytes,
    partitions: options.partitions,
    diskGuid: options.diskGuid ?? guidFromLabel(diskImageGuidLabel),
    sectorSize: options.sectorSize,
    ...(options.skipLbas === undefined ? {} : { skipLbas: options.skipLbas }),
  });
  // Check every content fits before writing anything.
  for (const [i, input] of options.partitions.entries()) {
    if (input.content === undefined) continue;
    const size = await contentSize(input.content);
    const partition = layout.partitions[i] as GptLayout["partitions"][number];
    if (size > partition.sizeBytes)
      throw badRequest(`content of partition ${partition.name} (${size} bytes) exceeds it (${partition.sizeBytes})`);
  }
  await writeFile(options.path, "");
  await truncate(options.path, options.sizeBytes);
  const handle = await open(options.path, "r+");
  try {
    for (const [i, input] of options.partitions.entries()) {
      const partition = layout.partitions[i] as GptLayout["partitions"][number];
      if (input.content === undefined) continue;
      if ("file" in input.content) await copySparse(input.content.file, handle, partition.offsetBytes, options.signal);
      else await writeFully(handle, input.content.data, partition.offsetBytes);
    }
    for (const { offset, data } of encodeGpt(layout)) await writeFully(handle, data, offset);
  } finally {
    await handle.close();
  }
  if (options.grubBios !== undefined) {
    const name = options.grubBios.partition ?? "BIOS";
    const bios = layout.partitions.find((p) => p.name === name);
    if (bios === undefined) throw badRequest(`GRUB for BIOS needs a partition named ${name}`);
    await embedGrubBios(options.path, {
      partition: bios,
      coreImage: options.grubBios.coreImage,
      bootImage: options.grubBios.bootImage,
    });
  }
  return layout;
}

/** Reads the GPT of a disk image file. */
export async function readDiskGpt(path: string, sectorSize = 512): Promise<GptTable> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    return await readGpt(
      async (offset, length) => {
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await handle.read(buffer, 0, length, offset);
        if (bytesRead !== length) throw badRequest(`disk image ${path} is truncated`);
        return buffer;
      },
      size,
      sectorSize,
    );
  } finally {
    await handle.close();
  }
}

/** Reads `length` bytes of a disk image at `offset` (e.g. a partition's first bytes). */
export async function readDiskBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
