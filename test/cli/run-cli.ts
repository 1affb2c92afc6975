// Runs the real `boot-assets` CLI as a child process on the project's Node, the way a user would.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const nodeBinary = join(projectRoot, "node_modules", ".bin", "node");
const mainScript = join(projectRoot, "src", "cli", "main.ts");

export interface CliResult {
  code: number | null;
  /** Raw bytes: `inspect --raw` output is compared byte for byte. */
  stdout: Buffer;
  stderr: string;
}

/** Runs `boot-assets ARGS…` with `env`, collecting its output; never rejects on a non-zero exit. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBinary, [mainScript, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

/** The environment a CLI test runs in: HOME and auth/certs lookups confined to `home`, so the machine's
 * ~/.docker, ~/.config/containers and REGISTRY_AUTH_FILE cannot change the outcome. */
export function isolatedEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, ".docker") };
  delete env.REGISTRY_AUTH_FILE;
  delete env.XDG_RUNTIME_DIR;
  return env;
}
