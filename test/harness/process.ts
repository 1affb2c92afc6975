import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { setTimeout as sleep } from "node:timers/promises";

/** Keeps only the tail of a child's output: enough to explain a failure, bounded in memory. */
const OUTPUT_TAIL_BYTES = 64 * 1024;

/** A child process started by a harness, with the tail of its stderr kept for error messages. */
export interface ServerProcess {
  child: ChildProcess;
  /** The last bytes the process wrote to stdout and stderr. */
  output(): string;
  /** Exit code or signal once the process has exited, else undefined. */
  exited(): string | undefined;
  /** SIGTERM, then SIGKILL if it lingers; resolves once the process is gone. */
  kill(): Promise<void>;
}

export function startServerProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): ServerProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exitStatus: string | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitStatus = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    });
    child.once("error", (err) => {
      exitStatus = `spawn error: ${err.message}`;
      resolve();
    });
  });
  return {
    child,
    output: () => tail,
    exited: () => exitStatus,
    async kill() {
      if (exitStatus !== undefined) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitedPromise;
      clearTimeout(timer);
    },
  };
}

/** One GET that resolves with the status code, or rejects on a connection error. TLS is not verified: this only asks "is it up?". */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;
    const req = request(url, { method: "GET", rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("probe timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** Polls `url` until it answers with one of `okStatuses`; fails with the server's output if it exits or never answers. */
export async function waitForHttp(
  server: ServerProcess,
  url: string,
  okStatuses: number[],
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = "no answer yet";
  while (Date.now() < deadline) {
    const exited = server.exited();
    if (exited !== undefined) {
      throw new Error(`${what} exited (${exited}) before answering ${url}:\n${server.output()}`);
    }
    try {
      const status = await probe(url);
      if (okStatuses.includes(status)) return;
      lastProblem = `status ${status}`;
    } catch (err) {
      lastProblem = err instanceof Error ? err.message : String(err);
    }
    await sleep(50);
  }
  await server.kill();
  throw new Error(`${what} did not answer ${url} within ${timeoutMs} ms (${lastProblem}):\n${server.output()}`);
}
