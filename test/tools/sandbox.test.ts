// The sandbox an overlay's installer runs in (src/tools/sandbox.ts), with a real static busybox as the
// confined program: no network (a server on the host's loopback is not reachable, only a down `lo` exists),
// the given root as `/` and the user nobody, a time limit that kills it and what it started, and a failure
// that names the program and carries its stderr.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { AppError } from "../../src/errors.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { runSandboxed } from "../../src/tools/sandbox.ts";

const execFileAsync = promisify(execFile);
let root: string;
let server: Server;
let connections = 0;

before(async () => {
  const packages = await fetchTestbedPackages();
  root = await mkdtemp(join(tmpdir(), "sandbox-test-"));
  await chmod(root, 0o755);
  await mkdir(join(root, "bin"));
  await copyFile(packages.busybox.binary, join(root, "bin", "busybox"));
  await chmod(join(root, "bin", "busybox"), 0o755);
  await mkdir(join(root, "root-only"), { mode: 0o755 });
  server = createServer((socket) => {
    connections++;
    socket.end("hello\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
after(async () => {
  server?.close();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  await writeFile(join(root, name), `#!/bin/busybox sh\n${body}\n`, { mode: 0o755 });
  return `/${name}`;
}

const sandboxed = (program: string, args: string[] = [], timeoutMs = 20_000, stdin?: string) =>
  runSandboxed(root, program, args, { what: "test program", timeoutMs, ...(stdin === undefined ? {} : { stdin }) });

describe("sandbox", () => {
  it("has no network: the host's loopback server is unreachable, and only a down lo exists", async () => {
    const port = (server.address() as { port: number }).port;
    const program = await script(
      "net.sh",
      `/bin/busybox ip -o link; if /bin/busybox nc -w 2 127.0.0.1 ${port} </dev/null; then echo CONNECTED; else echo REFUSED; fi`,
    );
    const { stdout } = await sandboxed(program);
    const text = stdout.toString("utf8");
    const links = text.split("\n").filter((line) => /^\d+: /.test(line));
    assert.equal(links.length, 1, text);
    assert.match(links[0] as string, /^1: lo: <LOOPBACK>/);
    assert.match(text, /REFUSED/);
    assert.equal(connections, 0);
    // The same nc outside the sandbox does reach it (the probe itself works).
    await execFileAsync(join(root, "bin", "busybox"), ["nc", "-w", "2", "127.0.0.1", String(port)]);
    assert.equal(connections, 1);
  });

  it("runs as nobody with the given directory as its root, and takes stdin and arguments", async () => {
    const program = await script(
      "who.sh",
      '/bin/busybox id -u; /bin/busybox ls /; echo "args: $*"; /bin/busybox cat; /bin/busybox touch /root-only/x 2>/dev/null && echo WROTE || echo DENIED; echo "env: $(/bin/busybox env | /bin/busybox sort | /bin/busybox tr "\\n" " ")"',
    );
    const { stdout } = await sandboxed(program, ["get-options"], 20_000, "a: 1\n");
    const lines = stdout.toString("utf8").split("\n");
    assert.equal(lines[0], "65534");
    const listed = lines.slice(1, lines.indexOf("args: get-options"));
    assert.deepEqual(listed.sort(), (await readdir(root)).sort());
    assert.ok(lines.includes("a: 1"));
    assert.ok(lines.includes("DENIED"));
    const env = lines.find((l) => l.startsWith("env: ")) ?? "";
    assert.ok(!env.includes("HOME=") && !env.includes("NODE"), env);
  });

  it("is killed after the time limit, with what it started", async () => {
    const program = await script(
      "slow.sh",
      "/bin/busybox sleep 3600 & echo $! > /started-pid; /bin/busybox sleep 3600",
    );
    const started = Date.now();
    await assert.rejects(
      sandboxed(program, [], 1500),
      (err: unknown) =>
        err instanceof AppError &&
        err.kind === "Upstream" &&
        err.code === "SANDBOX_TIMEOUT" &&
        /test program did not finish within 1500 ms and was killed/.test(err.message),
    );
    assert.ok(Date.now() - started < 15_000);
    // No `sleep 3600` confined to this root is left on the machine (the one in the background neither).
    await new Promise((resolve) => setTimeout(resolve, 500));
    let left = 0;
    for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      const rootLink = await readlink(`/proc/${pid}/root`).catch(() => "");
      if (cmdline.includes("sleep\u00003600") && rootLink === root) left++;
    }
    assert.equal(left, 0);
  });

  it("a failing program: an Upstream error naming it, its exit code and stderr", async () => {
    const program = await script("fail.sh", 'echo "no such board" >&2; exit 7');
    await assert.rejects(
      sandboxed(program),
      (err: unknown) =>
        err instanceof AppError &&
        err.kind === "Upstream" &&
        err.code === "SANDBOX_FAILED" &&
        err.message === "test program exited with code 7: no such board",
    );
  });
});
