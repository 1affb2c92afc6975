// qemu-img (Debian qemu-utils): converts raw disk images to the formats clouds take — qcow2, vpc (VHD),
// streamOptimized vmdk (inside an OVA) — and checks them.

import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const qemuImgTool: Tool = { command: "qemu-img", debianPackage: "qemu-utils" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

export type QemuImageFormat = "raw" | "qcow2" | "vpc" | "vmdk";

export interface QemuImgConvertOptions extends Options {
  from: QemuImageFormat;
  to: QemuImageFormat;
  /** `-o` format options, e.g. "cluster_size=8k" (qcow2), "subformat=fixed,force_size" (vpc). */
  formatOptions?: string;
}

export function qemuImgConvertArgs(input: string, output: string, options: QemuImgConvertOptions): string[] {
  const args = ["convert", "-f", options.from, "-O", options.to];
  if (options.formatOptions !== undefined && options.formatOptions !== "") args.push("-o", options.formatOptions);
  args.push(input, output);
  return args;
}

export async function qemuImgConvert(input: string, output: string, options: QemuImgConvertOptions): Promise<void> {
  await runTool(qemuImgTool, qemuImgConvertArgs(input, output, options), options);
}

export interface QemuImgInfo {
  format: string;
  "virtual-size": number;
  "actual-size"?: number;
  "format-specific"?: { type: string; data: Record<string, unknown> };
  "cluster-size"?: number;
  [key: string]: unknown;
}

/** `qemu-img info --output=json`. */
export async function qemuImgInfo(image: string, options: Options & { format?: QemuImageFormat } = {}) {
  const args = ["info", "--output=json"];
  if (options.format !== undefined) args.push("-f", options.format);
  return JSON.parse(await runToolText(qemuImgTool, [...args, image], options)) as QemuImgInfo;
}

/** `qemu-img check --output=json` (formats that support checks: qcow2, vmdk, vpc…); rejects on corruption. */
export async function qemuImgCheck(image: string, options: Options & { format?: QemuImageFormat } = {}) {
  const args = ["check", "--output=json"];
  if (options.format !== undefined) args.push("-f", options.format);
  return JSON.parse(await runToolText(qemuImgTool, [...args, image], options)) as Record<string, unknown>;
}
