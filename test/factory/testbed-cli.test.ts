// `boot-assets factory --testbed` as a newcomer runs it (`npm start`), as a child process: it publishes the
// test bed release into a registry served on loopback, starts the factory reading it with signature
// verification on, serves the versions, extensions and schematics, and stops cleanly on SIGTERM. A second
// start reuses what the first one published. The --testbed flag itself is read like every other flag.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { readFactoryCommandLine } from "../../src/factory/config/index.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { waitFor200 } from "./service-harness.ts";

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const nodeBinary = join(projectRoot, "node_modules", ".bin", "node");
const mainScript = join(projectRoot, "src", "cli", "main.ts");

interface StartedFactory {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  startupMs: number;
}

/** Starts `boot-assets factory ARGS` and resolves once it prints where it serves. */
function startFactoryProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<StartedFactory> {
  const started = performance.now();
  const child = spawn(nodeBinary, [mainScript, "factory", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString("utf8");
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the factory did not start within ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    const onData = () => {
      const match = /^factory serving on (http:\/\/\S+)$/m.exec(out);
      if (match === null) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      resolve({
        child,
        url: match[1] as string,
        stdout: () => out,
        stderr: () => err,
        startupMs: performance.now() - started,
      });
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the factory exited with ${code} before serving\n${out}\n${err}`));
    });
  });
}

function stopProcess(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });
}

describe("the --testbed flag", () => {
  it("is a boolean flag with Go's rules, off unless given, and listed by -h", async () => {
    const read = async (argv: string[]) => {
      const result = await readFactoryCommandLine(argv, {});
      assert.equal(result.help, false);
      return result.help ? undefined : result.testbed;
    };
    assert.equal(await read([]), false);
    assert.equal(await read(["--testbed"]), true);
    assert.equal(await read(["-testbed", "-http-port", "127.0.0.1:0"]), true);
    assert.equal(await read(["--testbed", "-testbed=false"]), false);
    const help = await readFactoryCommandLine(["-h"], {});
    assert.ok(help.help && /^ {2}-testbed$/m.test(help.usage));
  });
});

describe("boot-assets factory --testbed", () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let dataDir: string;
  const args = () => [
    "--testbed",
    "--data-dir",
    dataDir,
    "-http-port",
    "127.0.0.1:0",
    "-metrics-listen-addr",
    "127.0.0.1:0",
  ];

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "factory-testbed-cli-"));
    dataDir = join(home, "data");
    // HOME is isolated; the test bed's build cache (Debian packages, layers) is the machine's, as for npm start.
    env = { ...isolatedEnv(home), XDG_CACHE_HOME: dirname(bootAssetsCacheDir()) };
    for (const name of Object.keys(env)) if (name.startsWith("IF_")) delete env[name];
  });
  after(() => rm(home, { recursive: true, force: true }));

  /** Every file under `dir` with its bytes and modification time, to see that nothing changed. */
  async function snapshot(dir: string): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      const info = await stat(path);
      files.set(
        path,
        `${info.mtimeMs} ${createHash("sha256")
          .update(await readFile(path))
          .digest("hex")}`,
      );
    }
    return files;
  }

  async function checkConfig(extraEnv: NodeJS.ProcessEnv = {}) {
    const result = await runCli(["factory", ...args(), "--check-config"], { ...env, ...extraEnv });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString(), /^configuration is valid \(--check-config\): not starting$/m);
    assert.match(result.stderr, /^testbed: not published \(--check-config\)/m);
    return result;
  }

  it("--check-config on a fresh data directory publishes nothing and writes nothing", async () => {
    const result = await checkConfig();
    assert.match(result.stderr, /cosign\.pub is written at the first start/);
    assert.equal(existsSync(dataDir), false, "the data directory was not created");
  });

  it("comes up on loopback reading the test bed with verification on, serves versions, extensions and schematics, stops on SIGTERM", async (t) => {
    const factory = await startFactoryProcess(args(), env);
    try {
      t.diagnostic(`first start (publishing the test bed): ${(factory.startupMs / 1000).toFixed(1)} s`);
      const summary = factory.stdout();
      const registry = /^reading images from (127\.0\.0\.1:\d+) \(insecure\)/m.exec(summary)?.[1];
      assert.ok(registry, summary);
      assert.match(summary, new RegExp(`^trusting signatures by key ${join(dataDir, "testbed", "cosign.pub")}`, "m"));
      assert.match(summary, /^trusting keyless signatures of subject .*boot-assets\/testbed/m);
      assert.match(factory.url, /^http:\/\/127\.0\.0\.1:\d+$/);

      await waitFor200(`${factory.url}/readyz`, 30_000);
      const versions = (await (await fetch(`${factory.url}/versions`)).json()) as string[];
      assert.deepEqual(versions, ["v1.8.2", "v1.10.3", "v1.12.11", "v1.13.9", "v1.14.0-rc.1"]);
      const extensions = (await (await fetch(`${factory.url}/version/v1.10.3/extensions/official`)).json()) as Array<{
        name: string;
      }>;
      assert.ok(
        extensions.some((e) => e.name === "siderolabs/testbed-hello"),
        JSON.stringify(extensions),
      );

      const created = await fetch(`${factory.url}/schematics`, {
        method: "POST",
        body: "customization:\n  extraKernelArgs: [noapic, nolapic]\n",
      });
      assert.equal(created.status, 201);
      assert.equal(
        ((await created.json()) as { id: string }).id,
        "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
      );
      for (const file of ["cosign.pub", "trusted_root.json", "identity.json", "registry.json"])
        assert.ok(existsSync(join(dataDir, "testbed", file)), file);
      assert.ok(existsSync(join(dataDir, "testbed", "keys")), "the release's keys belong to the data directory");
      assert.ok(existsSync(join(dataDir, "store", "store-format.json")), "the embedded store under --data-dir");
    } finally {
      const code = await stopProcess(factory.child);
      assert.equal(code, 0, factory.stderr());
    }
    assert.match(factory.stdout(), /"msg":"factory stopped"/);
  });

  it("a second start reuses the published release and its registry port", async (t) => {
    const port = JSON.parse(await readFile(join(dataDir, "testbed", "registry.json"), "utf8")).port as number;
    const factory = await startFactoryProcess(args(), env);
    try {
      t.diagnostic(`second start: ${(factory.startupMs / 1000).toFixed(1)} s`);
      assert.match(factory.stdout(), new RegExp(`^reading images from 127\\.0\\.0\\.1:${port} `, "m"));
      assert.match(factory.stderr(), / 0 signature\(s\) written, [1-9]\d* already present/, "nothing re-signed");
      const fetched = await fetch(
        `${factory.url}/schematics/9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c`,
      );
      assert.equal(fetched.status, 200, "the schematic created by the first run is still there");
    } finally {
      assert.equal(await stopProcess(factory.child), 0);
    }
  });

  it("--check-config on a published data directory changes nothing, whatever the cache directory", async () => {
    const before = await snapshot(dataDir);
    const otherCache = await mkdtemp(join(home, "other-cache-"));
    const result = await checkConfig({ XDG_CACHE_HOME: otherCache });
    assert.doesNotMatch(result.stderr, /written at the first start/);
    assert.match(
      result.stdout.toString(),
      new RegExp(`^trusting signatures by key ${join(dataDir, "testbed", "cosign.pub")}`, "m"),
    );
    assert.deepEqual(await snapshot(dataDir), before);
    assert.deepEqual(await readdir(otherCache), [], "no keys made in the cache directory");
  });
});
