// objdump / objcopy (Debian binutils). objdump -h is the independent check of PE sections in UKIs.

import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const objdumpTool: Tool = { command: "objdump", debianPackage: "binutils" };
export const objcopyTool: Tool = { command: "objcopy", debianPackage: "binutils" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

export interface ObjdumpSection {
  index: number;
  name: string;
  size: number;
  vma: bigint;
  fileOffset: number;
  /** log2 of the alignment, as objdump prints "2**N". */
  alignmentLog2: number;
  flags: string[];
}

// "  0 .text         0000a0c5  0000000000001000  0000000000001000  00000400  2**4"
const sectionLine = /^\s*(\d+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*(\d+)\s*$/;

/** Parses `objdump -h` output; each section line is followed by a line of flags. */
export function parseObjdumpSections(text: string): ObjdumpSection[] {
  const lines = text.split("\n");
  const out: ObjdumpSection[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = sectionLine.exec(lines[i] ?? "");
    if (match === null) continue;
    const [, index, name, size, vma, offset, align] = match as unknown as string[];
    out.push({
      index: Number(index),
      name: name as string,
      size: Number.parseInt(size as string, 16),
      vma: BigInt(`0x${vma}`),
      fileOffset: Number.parseInt(offset as string, 16),
      alignmentLog2: Number(align),
      flags: (lines[i + 1] ?? "")
        .trim()
        .split(",")
        .map((f) => f.trim())
        .filter(Boolean),
    });
  }
  return out;
}

export async function objdumpSections(file: string, options?: Options): Promise<ObjdumpSection[]> {
  return parseObjdumpSections(await runToolText(objdumpTool, ["-h", file], options));
}

/** Runs objcopy with the given arguments (thin: UKI assembly is done in TypeScript). */
export async function objcopy(args: string[], options?: Options): Promise<void> {
  await runTool(objcopyTool, args, options);
}
