// Runs a program from an untrusted image (an overlay's installer) confined to a directory: util-linux's
// `unshare` gives it a network namespace of its own (only a down loopback: no network), a PID namespace
// (it and everything it starts die with it), that directory as its root (chroot), and the unprivileged
// user nobody (65534), so it cannot leave the root again. Its environment is empty but for PATH, and
// src/tools/run.ts kills it after the time limit. Needs root (the factory runs as root, as upstream's imager).

import { AppError } from "../errors.ts";
import { type RunOptions, type RunResult, runTool, type Tool } from "./run.ts";

export const unshareTool: Tool = { command: "unshare", debianPackage: "util-linux" };

/** The user and group the sandboxed program runs as (nobody / nogroup). */
export const sandboxUid = 65534;
export const sandboxGid = 65534;

export interface SandboxOptions extends Pick<RunOptions, "signal" | "stdin" | "maxStdoutBytes"> {
  /** Kill it after this long. */
  timeoutMs: number;
  /** What the program is, for messages ("overlay installer rpi_generic"). */
  what: string;
}

/** The `unshare` arguments that run `program` (a path inside `root`) with `args`, confined to `root`. */
export function sandboxArgs(root: string, program: string, args: readonly string[]): string[] {
  if (!program.startsWith("/")) throw new RangeError(`sandboxed program "${program}" must be an absolute path`);
  return [
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    `--root=${root}`,
    "--wd=/",
    "--setgid",
    String(sandboxGid),
    "--setuid",
    String(sandboxUid),
    "--",
    program,
    ...args,
  ];
}

/** Runs `program` inside `root` (see above). Failures name `what`; a timeout says so. */
export async function runSandboxed(
  root: string,
  program: string,
  args: readonly string[],
  options: SandboxOptions,
): Promise<RunResult> {
  if (process.getuid?.() !== 0)
    throw new AppError("Unsupported", `${options.what} can only be run as root (it is confined with unshare)`, {
      code: "SANDBOX_NEEDS_ROOT",
    });
  try {
    return await runTool(unshareTool, sandboxArgs(root, program, args), {
      cleanEnv: true,
      env: { PATH: "/bin:/usr/bin:/sbin:/usr/sbin" },
      timeoutMs: options.timeoutMs,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
      maxStdoutBytes: options.maxStdoutBytes ?? 1024 * 1024,
    });
  } catch (err) {
    if (err instanceof AppError && err.code === "TOOL_FAILED") {
      const detail = err.detail as { stderr?: string; exitCode?: number } | undefined;
      const timedOut = /timed out after/.test(err.message);
      const how = timedOut
        ? `did not finish within ${options.timeoutMs} ms and was killed`
        : detail?.exitCode !== undefined
          ? `exited with code ${detail.exitCode}`
          : "failed";
      const stderr = detail?.stderr?.trim() ?? "";
      throw new AppError("Upstream", `${options.what} ${how}${stderr === "" ? "" : `: ${stderr}`}`, {
        code: timedOut ? "SANDBOX_TIMEOUT" : "SANDBOX_FAILED",
        cause: err,
      });
    }
    throw err;
  }
}
