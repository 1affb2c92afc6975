// Small helpers the toolkit tests share: a CLI run that must succeed, and fixture trees written from a table.

import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { CliResult } from "../cli/run-cli.ts";

/** The CLI's stdout, after asserting it exited 0 (the message names `what` and carries its stderr). */
export function ok(result: CliResult, what: string): string {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}): ${result.stderr}`);
  return result.stdout.toString("utf8");
}

/** Writes `files` (path → content, or [content, mode]) under `root`. */
export async function tree(root: string, files: Record<string, string | [string, number]>): Promise<string> {
  for (const [path, spec] of Object.entries(files)) {
    const [content, mode] = typeof spec === "string" ? [spec, 0o644] : spec;
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
    await chmod(join(root, path), mode);
  }
  return root;
}
