// The docs test: the README's shell examples run as written, in order, in a fresh copy of the checkout, so
// the README cannot drift from the program. Which blocks run, and why the others do not, is marked in the
// README itself (see readme-blocks.ts). Not run, as marked there: `npm ci` (the copy links this checkout's
// node_modules; installing takes minutes and needs the npm registry), `npm test` (this test is part of it),
// the benchmarks (minutes long), and examples that reach the internet or need the operator's own files.
//
// The examples use fixed loopback ports (8080, 2122, 5000), as a reader on a fresh machine would. So that
// they cannot collide with anything else on a shared machine, the script runs in its own network namespace
// (`unshare -n`, as root) with only a loopback interface; the test bed's Debian packages are fetched into the
// cache beforehand, so nothing inside needs the network. Without unshare it runs in the host's namespace,
// and is skipped when one of those ports is taken.

import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fetchTestbedArm64Packages, fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { isolatedEnv } from "../cli/run-cli.ts";
import { type ReadmeBlock, readmeBlocks, scriptFor } from "./readme-blocks.ts";

const execFileAsync = promisify(execFile);
const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const fixedPorts = [5000, 8080, 2122];
const scriptTimeoutMs = 10 * 60_000;

let blocks: ReadmeBlock[];

before(async () => {
  blocks = readmeBlocks(await readFile(join(projectRoot, "README.md"), "utf8"));
});

/** The checkout as `git clone` plus the working tree's changes would give it: tracked and new files, not
 * ignored ones; node_modules linked. */
async function copyCheckout(to: string): Promise<void> {
  const { stdout } = await execFileAsync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: projectRoot,
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const file of stdout.split("\0").filter(Boolean)) {
    const source = join(projectRoot, file);
    if (!existsSync(source)) continue; // deleted in the working tree
    await mkdir(dirname(join(to, file)), { recursive: true });
    await copyFile(source, join(to, file));
  }
  await symlink(join(projectRoot, "node_modules"), join(to, "node_modules"));
}

/** The environment of a reader's shell: no npm script variables, no node_modules/.bin on PATH (the system's
 * npm and npx, which use the checkout's pinned Node themselves), HOME confined, the machine's build cache. */
function readerEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...isolatedEnv(home), XDG_CACHE_HOME: dirname(bootAssetsCacheDir()) };
  for (const name of Object.keys(env))
    if (/^npm_/i.test(name) || name.startsWith("IF_") || name === "COSIGN_PASSWORD") delete env[name];
  env.NPM_CONFIG_UPDATE_NOTIFIER = "false";
  env.PATH = (env.PATH ?? "")
    .split(delimiter)
    .filter((entry) => entry !== "" && !entry.includes(`node_modules${"/"}.bin`))
    .join(delimiter);
  return env;
}

async function canUnshareNetwork(): Promise<boolean> {
  try {
    await execFileAsync("unshare", ["-n", "sh", "-c", "ip link set lo up"], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Ends every process the script left (its background services): the whole process group, TERM then KILL. */
async function endGroup(child: ChildProcess): Promise<void> {
  const group = child.pid as number;
  const alive = () => {
    try {
      process.kill(-group, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(-group, "SIGTERM");
  for (let i = 0; i < 300 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(-group, "SIGKILL");
}

describe("README", () => {
  it("marks every shell block: run, background or skip with a reason", () => {
    assert.ok(blocks.length > 0);
    const run = blocks.filter((b) => b.mode !== "skip");
    assert.ok(run.length >= 10, `only ${run.length} blocks run`);
    for (const block of blocks.filter((b) => b.mode === "skip")) assert.ok(block.reason, `line ${block.line}`);
  });

  it("the script stops at the first failing block, and a README curl that gets an HTTP error fails", async () => {
    const server = createHttpServer((_request, response) => response.writeHead(404).end("no such page\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const run = async (texts: string[]) => {
        const script = scriptFor(
          texts.map((text, i) => ({ line: i + 1, mode: "run", text })),
          5,
        );
        return await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          execFile("bash", ["-c", script], (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
          );
        });
      };
      const failing = await run(["echo first\n", "false\n", "echo never\n"]);
      assert.notEqual(failing.code, 0);
      assert.match(failing.stderr, /docs-test: README line 2\n$/);
      assert.equal(failing.stdout, "first\n");
      const notFound = await run([`curl http://127.0.0.1:${port}/missing\n`, "echo never\n"]);
      assert.notEqual(notFound.code, 0);
      assert.doesNotMatch(notFound.stdout, /never/);
    } finally {
      server.close();
    }
  });

  describe("its marked blocks, run as written in order in a fresh copy of the checkout", () => {
    let work: string;
    let child: ChildProcess | undefined;
    before(async () => {
      work = await mkdtemp(join(tmpdir(), "docs-test-"));
    });
    after(async () => {
      if (child) await endGroup(child);
      if (work) await rm(work, { recursive: true, force: true });
    });

    it("all succeed and make what the text says", async (t) => {
      const isolated = await canUnshareNetwork();
      if (!isolated) {
        const taken = [];
        for (const port of fixedPorts) if (!(await portFree(port))) taken.push(port);
        if (taken.length > 0) {
          t.skip(`no network namespace (not root?) and port(s) ${taken.join(", ")} in use on the host`);
          return;
        }
      }
      const checkout = join(work, "checkout");
      await copyCheckout(checkout);
      // What the test bed release needs from Debian's mirror, fetched outside the namespace (cached after):
      // `npm start` releases amd64 and arm64 (src/factory/testbed.ts), so both architectures' packages.
      const amd64 = fetchTestbedPackages({ cacheDir: bootAssetsCacheDir() });
      await Promise.all([amd64, fetchTestbedArm64Packages(amd64, { cacheDir: bootAssetsCacheDir() })]);
      await writeFile(join(work, "docs-test.sh"), scriptFor(blocks, 300));
      const script = join(work, "docs-test.sh");
      const [command, args] = isolated
        ? ["unshare", ["-n", "sh", "-c", `ip link set lo up && exec bash ${script}`]]
        : ["bash", [script]];

      let stdout = "";
      let stderr = "";
      const started = Date.now();
      const code = await new Promise<number | null>((resolve, reject) => {
        const spawned = spawn(command as string, args as string[], {
          cwd: checkout,
          env: readerEnv(join(work, "home")),
          detached: true, // its own process group: the services it leaves behind are ended with it
          stdio: ["ignore", "pipe", "pipe"],
        });
        child = spawned;
        spawned.stdout?.on("data", (chunk: Buffer) => {
          stdout += chunk.toString("utf8");
        });
        spawned.stderr?.on("data", (chunk: Buffer) => {
          stderr += chunk.toString("utf8");
        });
        const timer = setTimeout(() => endGroup(spawned), scriptTimeoutMs);
        spawned.once("error", reject);
        // `exit`, not `close`: the services the script started in the background still hold its output open.
        spawned.once("exit", (exit) => {
          clearTimeout(timer);
          resolve(exit);
        });
      });
      if (child) await endGroup(child);
      const ran = blocks.filter((b) => b.mode !== "skip").length;
      t.diagnostic(
        `README blocks run: ${ran} of ${blocks.length} (${blocks.length - ran} marked skip), ` +
          `${((Date.now() - started) / 1000).toFixed(0)} s${isolated ? ", in a network namespace" : ""}`,
      );
      const backgroundLogs = (await readdir(checkout))
        .filter((name) => name.startsWith("docs-test-background-"))
        .map((name) => join(checkout, name));
      const fullLogs = await Promise.all(backgroundLogs.map((f) => readFile(f, "utf8")));
      const logs = fullLogs.map((text, i) => `--- ${backgroundLogs[i]}\n${text.slice(-4000)}`);
      assert.equal(
        code,
        0,
        `the README script failed at ${/.*docs-test: README line \d+/s.exec(stderr)?.[0].split("\n").pop()}\n` +
          `stderr (end):\n${stderr.slice(-6000)}\n${logs.join("\n")}`,
      );

      // What the text around the blocks says they do.
      const port = JSON.parse(await readFile(join(checkout, "data", "testbed", "registry.json"), "utf8")).port;
      assert.ok(
        fullLogs.some((log) => log.includes(`testbed: registry 127.0.0.1:${port} ready`)),
        "npm start names its test bed registry, whose port registry.json keeps",
      );
      assert.ok(
        stdout.includes('["v1.8.2","v1.10.3","v1.12.11","v1.13.9","v1.14.0-rc.1"]'),
        "GET /versions as the README shows",
      );
      assert.match(stdout, /^0\.\d+\.\d+|^\d+\.\d+\.\d+$/m, "--version prints a version");
      for (const asset of [
        "kernel-amd64",
        "initramfs-amd64.xz",
        "cmdline-metal-amd64",
        "metal-amd64-uki.efi",
        "installer-amd64.tar",
        "metal-amd64.iso",
      ]) {
        const info = await stat(join(checkout, "assets", asset));
        assert.ok(info.size > 0, asset);
        assert.match(
          stdout,
          new RegExp(`assets/${asset.replace(/\./g, "\\.")} ${info.size} sha256:[0-9a-f]{64}$`, "m"),
        );
      }
      for (const made of [
        "schematics-layout/index.json",
        "layout/index.json",
        "cosign.key",
        "cosign.pub",
        "data/release/cosign.pub",
      ])
        assert.ok(existsSync(join(checkout, made)), made);
    });
  });
});
