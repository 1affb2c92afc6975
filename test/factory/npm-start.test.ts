// `npm start` runs the factory under npm and a shell that do not pass SIGTERM on: stopping npm must stop the
// factory too, rather than leave it running orphaned (run.ts, stopWithParent).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const nodeBinary = join(projectRoot, "node_modules", ".bin", "node");
const mainScript = join(projectRoot, "src", "cli", "main.ts");

/** The pids of node processes (not the shell npm runs them from) whose command line contains `marker`. */
async function pidsWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.startsWith(`${nodeBinary}\0`) && cmdline.includes(marker)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe("the factory under npm", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "npm-start-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("stops (gracefully) when npm is stopped with SIGTERM", async () => {
    const dataDir = join(dir, "data");
    // The project's start script without its `exec` (so a shell sits in between, as without it) and the test bed.
    const script = `${[
      nodeBinary,
      mainScript,
      "factory",
      "-http-port",
      "127.0.0.1:0",
      "-metrics-listen-addr=",
      "-image-registry",
      "127.0.0.1:9",
      "--data-dir",
      dataDir,
    ].join(" ")} >${join(dir, "factory.log")} 2>&1`;
    await writeFile(
      join(dir, "package.json"),
      JSON.stringify({ name: "npm-start-test", private: true, scripts: { start: script } }),
    );
    const logFile = join(dir, "factory.log");
    const log = () => readFile(logFile, "utf8").catch(() => "");
    const npm = spawn("npm", ["start"], { cwd: dir, stdio: "ignore", env: { ...process.env } });
    const exited = new Promise((resolve) => npm.once("exit", resolve));
    try {
      for (let i = 0; i < 600 && !/factory serving on/.test(await log()); i++) await sleep(100);
      assert.match(await log(), /factory serving on http:\/\/127\.0\.0\.1:\d+/);
      const [factory] = await pidsWith(dataDir);
      assert.ok(factory !== undefined && factory !== npm.pid, `the factory process is found\n${await log()}`);

      npm.kill("SIGTERM");
      await exited;
      let gone = false;
      for (let i = 0; i < 100 && !gone; i++) {
        gone = !existsSync(`/proc/${factory}`);
        if (!gone) await sleep(100);
      }
      assert.ok(gone, `the factory (pid ${factory}) is still running 10 s after npm stopped`);
      const text = await log();
      assert.match(text, /"msg":"shutting down: finishing requests in flight"/, text.slice(-800));
      assert.match(text, /"msg":"factory stopped"/, "a graceful stop, not a kill");
    } finally {
      for (const pid of await pidsWith(dataDir)) process.kill(pid, "SIGKILL");
      npm.kill("SIGKILL");
    }
  });

  it("the start script execs node, so even a killed npm (SIGKILL: nothing forwarded) stops the factory", async () => {
    const startScript = (
      JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { scripts: { start: string } }
    ).scripts.start;
    // With exec there is no `sh -c` left between npm and the factory: the factory is npm's own child, so
    // npm going away re-parents it, which it notices (run.ts, stopWithParent).
    assert.match(startScript, /^exec node src\/cli\/main\.ts factory --testbed$/);
    const pkg = join(dir, "exec");
    const dataDir = join(pkg, "data");
    const script = startScript
      .replace(/^exec node /, `exec ${nodeBinary} `)
      .replace("src/cli/main.ts", mainScript)
      .replace(
        " --testbed",
        ` -http-port 127.0.0.1:0 -metrics-listen-addr= -image-registry 127.0.0.1:9 --data-dir ${dataDir}`,
      );
    await mkdir(pkg, { recursive: true });
    await writeFile(
      join(pkg, "package.json"),
      JSON.stringify({ name: "npm-exec-test", private: true, scripts: { start: script } }),
    );
    const logFile = join(pkg, "factory.log");
    const out = openSync(logFile, "w");
    const log = () => readFile(logFile, "utf8").catch(() => "");
    const npm = spawn("npm", ["start"], { cwd: pkg, stdio: ["ignore", out, out], env: { ...process.env } });
    const exited = new Promise((resolve) => npm.once("exit", resolve));
    try {
      for (let i = 0; i < 600 && !/factory serving on/.test(await log()); i++) await sleep(100);
      assert.match(await log(), /factory serving on http:\/\/127\.0\.0\.1:\d+/);
      const [factory] = await pidsWith(dataDir);
      assert.ok(factory !== undefined, `the factory process is found\n${await log()}`);
      const ppid = Number((await readFile(`/proc/${factory}/stat`, "utf8")).split(") ")[1]?.split(" ")[1]);
      assert.equal(ppid, npm.pid, "the factory is npm's child, no shell in between");

      const started = Date.now();
      npm.kill("SIGKILL");
      await exited;
      while (existsSync(`/proc/${factory}`) && Date.now() - started < 10_000) await sleep(100);
      const ms = Date.now() - started;
      assert.ok(
        !existsSync(`/proc/${factory}`),
        `the factory (pid ${factory}) still runs ${ms} ms after npm was killed`,
      );
      assert.match(await log(), /"msg":"factory stopped"/, "a graceful stop");
    } finally {
      for (const pid of await pidsWith(dataDir)) process.kill(pid, "SIGKILL");
    }
  });
});
