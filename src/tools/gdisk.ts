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

/** `sfdisk --json`: the partition table as sfdisk reads it. */
export async function sfdiskJson(disk: string, options: Options = {}): Promise<SfdiskTable> {
  const text = await runToolText(sfdiskTool, ["--json", disk], options);
  return (JSON.parse(text) as { partitiontable: SfdiskTable }).partitiontable;
}
