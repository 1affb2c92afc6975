// The one way this project runs an external program: an argument array (never a shell), a timeout,
// cancellation through an AbortSignal, stdout captured (bounded) or streamed, stderr's tail kept for the
// error message, and the exit code checked. A missing program is reported with the Debian package that
// provides it, so the fix is one `apt-get install` away.

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { delimiter, join } from "node:path";
import { Duplex, Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError } from "../errors.ts";

/** An external program and where it comes from. */
export interface Tool {
  /** Executable name looked up in PATH (plus the sbin directories). */
  command: string;
  /** The Debian package that provides it. */
  debianPackage: string;
}

export interface RunOptions {
  cwd?: string;
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>;
  /** Start from an empty environment instead of this process's (only `env` is passed). */
  cleanEnv?: boolean;
  /** Kill the program after this long (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Data for the program's stdin; without it stdin is empty. */
  stdin?: Readable | Uint8Array | string;
  /** Stream stdout here instead of capturing it. */
  stdout?: Writable;
  /** Largest stdout captured when not streamed (default 16 MiB; more is an error). */
  maxStdoutBytes?: number;
  /** Exit codes that count as success (default [0]). */
  okExitCodes?: number[];
}

export interface RunResult {
  /** Captured stdout (empty when streamed). */
  stdout: Buffer;
  /** The tail of stderr. */
  stderr: string;
  exitCode: number;
}

const defaultTimeoutMs = 10 * 60 * 1000;
const stderrTailBytes = 8 * 1024;
// Root's PATH has these, a user's may not; depmod, mkfs.* and sgdisk live there.
const extraSearchDirs = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** The absolute path of the tool's executable, or undefined when it is not installed. */
export function findTool(tool: Tool): string | undefined {
  if (tool.command.includes("/")) return isExecutable(tool.command) ? tool.command : undefined;
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...extraSearchDirs];
  for (const dir of dirs) {
    const candidate = join(dir, tool.command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function toolMissingError(tool: Tool): AppError {
  return new AppError(
    "Unsupported",
    `${tool.command} is not installed: install the Debian package "${tool.debianPackage}" (apt-get install ${tool.debianPackage})`,
    { code: "TOOL_MISSING", detail: { tool: tool.command, package: tool.debianPackage } },
  );
}

function resolveOrThrow(tool: Tool): string {
  const path = findTool(tool);
  if (path === undefined) throw toolMissingError(tool);
  return path;
}

/** Keeps the last `limit` bytes written to it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit) this.size -= this.chunks.shift()?.length ?? 0;
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString("utf8");
  }
}

function describeCommand(tool: Tool, args: readonly string[]): string {
  const shown = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
  return `${tool.command} ${shown}`.slice(0, 1000);
}

function failure(tool: Tool, args: readonly string[], message: string, stderr: string, exitCode?: number): AppError {
  const tail = stderr.trim();
  return new AppError("Internal", `${tool.command} ${message}${tail === "" ? "" : `: ${tail}`}`, {
    code: "TOOL_FAILED",
    detail: { tool: tool.command, command: describeCommand(tool, args), exitCode, stderr: tail },
  });
}

interface Started {
  child: ChildProcess;
  stderr: Tail;
  /** Resolves with the exit code when the program has exited and its pipes closed; rejects on failure. */
  exited: Promise<number>;
}

function start(tool: Tool, args: readonly string[], options: RunOptions): Started {
  const executable = resolveOrThrow(tool);
  options.signal?.throwIfAborted();
  const env: NodeJS.ProcessEnv = options.cleanEnv === true ? {} : { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {}))
    if (value === undefined) delete env[key];
    else env[key] = value;
  const child = spawn(executable, [...args], {
    cwd: options.cwd,
    env,
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group, so a timeout or abort can kill helpers it spawned too.
    detached: true,
  });
  const stderr = new Tail(stderrTailBytes);
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  const okExitCodes = options.okExitCodes ?? [0];
  let stopReason: AppError | Error | undefined;
  const kill = (reason: AppError | Error) => {
    stopReason ??= reason;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  };
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const timer = setTimeout(
    () => kill(failure(tool, args, `timed out after ${timeoutMs} ms`, stderr.text())),
    timeoutMs,
  );
  const onAbort = () => kill(options.signal?.reason instanceof Error ? options.signal.reason : new Error("aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const exited = new Promise<number>((resolve, reject) => {
    child.once("error", (err) => {
      stopReason ??= failure(tool, args, `could not be started (${err.message})`, "");
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (stopReason !== undefined) reject(stopReason);
      else if (code !== null && okExitCodes.includes(code)) resolve(code);
      else
        reject(
          failure(
            tool,
            args,
            code === null ? `was killed by ${signal}` : `exited with code ${code}`,
            stderr.text(),
            code ?? undefined,
          ),
        );
    });
  });
  return { child, stderr, exited };
}

function feedStdin(child: ChildProcess, stdin: RunOptions["stdin"]): Promise<void> {
  const sink = child.stdin;
  if (sink === null) return Promise.resolve();
  // A program may exit without reading all its input; that is its exit code's business, not an EPIPE.
  sink.on("error", () => {});
  if (stdin === undefined) {
    sink.end();
    return Promise.resolve();
  }
  const source = stdin instanceof Readable ? stdin : Readable.from([Buffer.from(stdin)]);
  return pipeline(source, sink).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_PREMATURE_CLOSE") throw err;
  });
}

/** Runs the tool to completion. Rejects with a Tool error (missing, failed, timed out) or the abort reason. */
export async function runTool(tool: Tool, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { child, stderr, exited } = start(tool, args, options);
  const maxStdout = options.maxStdoutBytes ?? 16 * 1024 * 1024;
  const captured: Buffer[] = [];
  let capturedBytes = 0;
  const stdoutDone =
    options.stdout !== undefined
      ? pipeline(child.stdout as Readable, options.stdout)
      : new Promise<void>((resolve, reject) => {
          child.stdout?.on("data", (chunk: Buffer) => {
            capturedBytes += chunk.length;
            if (capturedBytes > maxStdout) {
              reject(failure(tool, args, `wrote more than ${maxStdout} bytes to stdout`, ""));
              child.kill("SIGKILL");
            } else captured.push(chunk);
          });
          child.stdout?.once("end", resolve);
        });
  try {
    const [exitCode] = await Promise.all([exited, stdoutDone, feedStdin(child, options.stdin)]);
    return { stdout: Buffer.concat(captured), stderr: stderr.text(), exitCode };
  } catch (err) {
    child.kill("SIGKILL");
    await exited.catch(() => {});
    throw err;
  }
}

/** Runs the tool and returns its stdout as text. */
export async function runToolText(tool: Tool, args: readonly string[], options?: RunOptions): Promise<string> {
  return (await runTool(tool, args, options)).stdout.toString("utf8");
}

const toolVersions = new Map<string, Promise<string>>();

/** The tool's `--version` text (trimmed), asked once per process: part of cache keys whose bytes depend on it. */
export function toolVersionText(tool: Tool, signal?: AbortSignal): Promise<string> {
  let version = toolVersions.get(tool.command);
  if (version === undefined) {
    version = runToolText(tool, ["--version"], { signal }).then((text) => text.trim());
    version.catch(() => toolVersions.delete(tool.command));
    toolVersions.set(tool.command, version);
  }
  return version;
}

/**
 * The tool as a stream transform (stdin → stdout), e.g. a compressor in a pipeline. The readable side
 * ends only after the program exited successfully, so a failing program can never look like a short but
 * complete output.
 */
export function toolTransform(
  tool: Tool,
  args: readonly string[],
  options: Omit<RunOptions, "stdin" | "stdout"> = {},
): Duplex {
  const { child, exited } = start(tool, args, options);
  const stdin = child.stdin as Writable;
  const stdout = child.stdout as Readable;
  stdin.on("error", () => {}); // the exit code tells what went wrong
  let stdoutEnded = false;
  const duplex = new Duplex({
    write(chunk, _encoding, callback) {
      if (stdin.write(chunk)) callback();
      else stdin.once("drain", () => callback());
    },
    final(callback) {
      stdin.end(() => callback());
    },
    read() {
      stdout.resume();
    },
    destroy(err, callback) {
      if (!stdoutEnded || err) child.kill("SIGKILL");
      // A paused stdout with unread data never closes, so the child's "close" (which clears the timeout)
      // would never come: the pipe and a 10-minute timer stayed behind every refused decompression bomb.
      stdout.destroy();
      stdin.destroy();
      exited.catch(() => {});
      callback(err);
    },
  });
  stdout.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) stdout.pause();
  });
  stdout.once("end", () => {
    stdoutEnded = true;
    exited.then(
      () => duplex.push(null),
      (err: Error) => duplex.destroy(err),
    );
  });
  exited.catch((err: Error) => duplex.destroy(err));
  return duplex;
}
