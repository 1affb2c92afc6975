// sgdisk (Debian gdisk) and sfdisk (Debian fdisk): independent readers of the GPT this project writes,
// used to check disk images (never to write them).

import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const sgdiskTool: Tool = { command: "sgdisk", debianPackage: "gdisk" };
export const sfdiskTool: Tool = { command: "sfdisk", debianPackage: "fdisk" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

/** `sgdisk -v`: its verdict text ("No problems found. …" when the table is sound). */
export async function sgdiskVerify(disk: string, options: Options = {}): Promise<string> {
  // sgdisk exits non-zero for some problems; the text says which.
  return (await runTool(sgdiskTool, ["-v", disk], { ...options, okExitCodes: [0, 1, 2, 3, 4] })).stdout.toString();
}

/** `sgdisk -p`: the partition table as text. */
export async function sgdiskPrint(disk: string, options: Options = {}): Promise<string> {
  return await runToolText(sgdiskTool, ["-p", disk], options);
}

/** `sgdisk -i N`: one partition's details (unique GUID, attribute flags, name). */
export async function sgdiskInfo(disk: string, partition: number, options: Options = {}): Promise<string> {
  return await runToolText(sgdiskTool, ["-i", String(partition), disk], options);
}

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  attrs?: string;
}

export interface SfdiskTable {
  label: string;
  id: string;
  device: string;
  unit: string;
  firstlba?: number;
  lastlba?: number;
  sectorsize?: number;
  partitions: SfdiskPartition[];
}

/**
 * `sfdisk --json`: the partition table as sfdisk reads it. `sectorSize` reads a disk image file as a disk of
 * that logical sector size (`--sector-size`; a file is otherwise taken for 512-byte sectors).
 */
export async function sfdiskJson(disk: string, options: Options & { sectorSize?: number } = {}): Promise<SfdiskTable> {
  const sectorArgs = options.sectorSize === undefined ? [] : ["--sector-size", String(options.sectorSize)];
  const text = await runToolText(sfdiskTool, [...sectorArgs, "--json", disk], options);
  return (JSON.parse(text) as { partitiontable: SfdiskTable }).partitiontable;
}

export const fdiskTool: Tool = { command: "fdisk", debianPackage: "fdisk" };

export interface FdiskListing {
  /** "gpt", or "dos" when fdisk finds no GPT at this sector size (only the protective MBR). */
  label: string;
  /** The logical sector size fdisk read the disk with. */
  sectorSize: number;
  /** Partitions in sectors of `sectorSize`; GPT fields (type, uuid, name) only for a GPT. */
  partitions: { start: number; end: number; sectors: number; type?: string; uuid?: string; name?: string }[];
}

/**
 * `fdisk -b <size> -l`: the table as fdisk reads it with that logical sector size, from a plain file (no loop
 * device); sfdisk 2.38 has no such option.
 */
export async function fdiskList(disk: string, sectorSize: number, options: Options = {}): Promise<FdiskListing> {
  const run = (columns: string) =>
    runToolText(fdiskTool, ["-b", String(sectorSize), "-l", "-o", columns, disk], { ...options });
  const first = await run("Start,End,Sectors");
  const label = /^Disklabel type: (\S+)$/m.exec(first)?.[1] ?? "";
  const size = Number(/^Sector size \(logical\/physical\): (\d+) bytes/m.exec(first)?.[1]);
  const text = label === "gpt" ? await run("Start,End,Sectors,Type-UUID,UUID,Name") : first;
  const lines = text.split("\n");
  const header = lines.findIndex((l) => /^\s*Start\s+End\s+Sectors/.test(l));
  const partitions: FdiskListing["partitions"] = [];
  for (const line of header === -1 ? [] : lines.slice(header + 1)) {
    if (line.trim() === "") break;
    const [start, end, sectors, type, uuid, ...name] = line.trim().split(/\s+/);
    partitions.push({
      start: Number(start),
      end: Number(end),
      sectors: Number(sectors),
      ...(label === "gpt" ? { type, uuid, name: name.join(" ") } : {}),
    });
  }
  return { label, sectorSize: size, partitions };
}
