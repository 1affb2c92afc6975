import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { startServerProcess } from "./process.ts";

const execFileAsync = promisify(execFile);

export interface RunningContainerd {
  /** The containerd gRPC socket. */
  socket: string;
  /** Runs `ctr -a SOCKET ARGS…`; rejects with ctr's stderr if it fails. */
  ctr(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * Starts a private containerd (root, state and sockets in a temp dir; CRI off) for real-client tests.
 * It needs root and the containerd binary. Without them this throws: CI runs as root, so a missing
 * prerequisite must fail the test rather than skip it quietly.
 */
export async function startContainerd(): Promise<RunningContainerd> {
  if (process.getuid?.() !== 0) {
    throw new Error("containerd tests need root (CI runs them as root); run the tests as root");
  }
  const dir = await mkdtemp(join(tmpdir(), "containerd-"));
  const socket = join(dir, "containerd.sock");
  const configFile = join(dir, "config.toml");
  await writeFile(
    configFile,
    [
      "version = 2",
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      "[debug]",
      `  address = ${JSON.stringify(join(dir, "debug.sock"))}`,
      "",
    ].join("\n"),
  );

  const server = startServerProcess("containerd", ["--config", configFile, "--log-level", "warn"]);
  const ctr = async (args: string[], timeoutMs = 60_000) => {
    try {
      return await execFileAsync("ctr", ["-a", socket, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? "";
      throw new Error(`ctr ${args.join(" ")} failed: ${stderr.trim() || String(err)}`);
    }
  };
  const stop = async () => {
    await server.kill();
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    const exited = server.exited();
    if (exited !== undefined) {
      await stop();
      throw new Error(`containerd exited (${exited}) while starting:\n${server.output()}`);
    }
    try {
      await ctr(["version"], 5000);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`containerd did not answer on ${socket}: ${String(err)}\n${server.output()}`);
      }
      await sleep(100);
    }
  }

  let stopped = false;
  return {
    socket,
    ctr,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stop();
    },
  };
}
