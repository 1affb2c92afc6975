// The asset cache in the embedded store (no -cache-repository): a factory killed with SIGKILL in the middle
// of a build leaves no entry and no scratch space behind after its restart, and the next request builds;
// a damaged blob file is a miss and is written again; garbage collection by age and by size (least
// recently used first), by `boot-assets factory gc` on the stopped factory's data directory and in
// process, never removing an entry in use, and the store's unreferenced blobs freed.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { type RunningFactory, startFactory } from "../../src/factory/run.ts";
import { type ImageManifest, parseManifest } from "../../src/oci/manifest.ts";
import { openStore } from "../../src/registry/store.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import { parseSchematic } from "../../src/talos/schematic.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { type KeyFiles, makeKeyFiles } from "./config-fixtures.ts";
import {
  capturingLogger,
  createSchematic,
  metricSum,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const schematicYaml = `customization:
  extraKernelArgs:
    - store.test=yes
`;
const sha256 = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;
const projectRoot = join(import.meta.dirname, "..", "..");

describe("asset cache in the embedded store", () => {
  let testbed: PublishedTestbed;
  let keys: KeyFiles;
  let dataDir: string;
  let id: string;

  /** The seed's command line with the cache in the embedded store. */
  const args = () => [...seedArgv(testbed, keys, dataDir), "-cache-repository", ""];
  const start = async (): Promise<RunningFactory & { logs: Array<Record<string, unknown>> }> => {
    const logs: Array<Record<string, unknown>> = [];
    const factory = await startFactory(await parseFactoryCommandLine(args(), {}), {
      logger: capturingLogger(logs),
      print: () => {},
      processMetrics: false,
    });
    await waitFor200(`${factory.url}/readyz`);
    return Object.assign(factory, { logs });
  };
  const download = async (url: string, path: string) => {
    const res = await fetch(`${url}/image/${id}/${version}/${path}`);
    assert.equal(res.status, 200, await res.clone().text());
    return Buffer.from(await res.arrayBuffer());
  };
  const built = async (factory: RunningFactory) =>
    metricSum(await (await fetch(factory.metricsUrl as string)).text(), "image_factory_assets_built_total");
  /** Cache keys by the sha256 of their bytes, read from the store (of a stopped factory). */
  const entries = async () => {
    const store = await openStore(join(dataDir, "store"), { readOnly: true });
    const repository = store.repository("image-factory/cache");
    const byDigest = new Map<string, string>();
    let tags: string[] = [];
    try {
      tags = await repository.listTags();
    } catch {
      // never pushed to
    }
    for (const tag of tags.filter((t) => /^[0-9a-f]{64}$/.test(t))) {
      const record = await repository.getManifest(tag);
      const manifest = parseManifest(record.body, record.mediaType).manifest as ImageManifest;
      byDigest.set(manifest.layers[0]?.digest as string, tag);
    }
    await store.close();
    return byDigest;
  };
  const blobFile = (digest: string) => join(dataDir, "store", "blobs", "sha256", digest.slice("sha256:".length));
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );

  before(async () => {
    testbed = await publishTestbed();
    keys = await makeKeyFiles();
    dataDir = join(keys.dir, "data");
    const factory = await start();
    id = await createSchematic(factory.url, schematicYaml);
    await factory.close();
  });
  after(async () => {
    await keys?.cleanup();
    await testbed?.stop();
  });

  it("kill -9 during a build: no entry, the scratch space is cleared at the restart, and the next request builds", async () => {
    const spawnFactory = async (): Promise<{ child: ChildProcess; url: string }> => {
      const child = spawn(
        join(projectRoot, "node_modules", ".bin", "node"),
        ["src/cli/main.ts", "factory", ...args()],
        {
          cwd: projectRoot,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      child.stderr?.resume();
      const url = await new Promise<string>((resolve, reject) => {
        let text = "";
        child.stdout?.on("data", (chunk: Buffer) => {
          text += chunk.toString();
          const match = /factory serving on (\S+)/.exec(text);
          if (match) resolve(match[1] as string);
        });
        child.once("exit", (code) => reject(new Error(`the factory exited (${code}) before serving: ${text}`)));
      });
      await waitFor200(`${url}/readyz`);
      return { child, url };
    };
    const scratch = join(dataDir, "assets", "tmp");
    const first = await spawnFactory();
    const exited = new Promise((resolve) => first.child.once("exit", resolve));
    const request = fetch(`${first.url}/image/${id}/${version}/metal-amd64.iso`).catch((err: unknown) => err);
    // Killed while its build is under way: its scratch directory exists.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const names = await readdir(scratch).catch(() => [] as string[]);
      if (names.some((name) => name.startsWith(`${first.child.pid}-`))) break;
      assert.ok(Date.now() < deadline, "no build started within two minutes");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    first.child.kill("SIGKILL");
    await exited;
    assert.ok((await request) instanceof Error, "the killed factory's client got no asset");
    assert.ok(
      (await readdir(scratch)).some((name) => name.startsWith(`${first.child.pid}-`)),
      "the killed build's scratch space is left behind",
    );
    const isoEntries = [...(await entries()).values()];

    const second = await spawnFactory();
    try {
      assert.deepEqual(
        (await readdir(scratch)).filter((name) => name.startsWith(`${first.child.pid}-`)),
        [],
        "cleared at start",
      );
      const iso = await download(second.url, "metal-amd64.iso");
      const sum = await (await fetch(`${second.url}/image/${id}/${version}/metal-amd64.iso.sha256`)).text();
      assert.equal(sum.split(" ")[0], sha256(iso).slice("sha256:".length));
      assert.ok(iso.subarray(0x8001, 0x8006).equals(Buffer.from("CD001")), "an ISO 9660 image");
    } finally {
      const gone = new Promise((resolve) => second.child.once("exit", resolve));
      second.child.kill("SIGTERM");
      await gone;
    }
    const after = await entries();
    assert.equal(after.size, isoEntries.length + 1, "exactly one entry more: the ISO");
  });

  it("a damaged blob file (same size, one byte changed) is a miss: rebuilt, and the store holds good bytes again", async () => {
    let factory = await start();
    const kernel = await download(factory.url, "kernel-amd64");
    await factory.close();
    const file = blobFile(sha256(kernel));
    const bytes = await readFile(file);
    const middle = bytes.length >> 1;
    bytes.writeUInt8((bytes.readUInt8(middle) ^ 0xff) & 0xff, middle);
    await writeFile(file, bytes);

    factory = await start();
    try {
      assert.deepEqual(await download(factory.url, "kernel-amd64"), kernel);
      assert.equal(await built(factory), 1, "rebuilt");
      assert.equal(sha256(await readFile(file)), sha256(kernel), "the store's file is whole again");
      assert.ok(factory.logs.some((line) => String(line.msg).includes("bytes do not match")));
    } finally {
      await factory.close();
    }
  });

  it("`boot-assets factory gc`: --max-age removes what was not used for that long, --max-size the least recently used", async () => {
    let factory = await start();
    const kernel = await download(factory.url, "kernel-amd64");
    const cmdline = await download(factory.url, "cmdline-metal-amd64");
    const initramfs = await download(factory.url, "initramfs-amd64.xz");
    await factory.close();
    const keys = await entries();
    const keyOf = (bytes: Buffer) => keys.get(sha256(bytes)) as string;
    const used = (bytes: Buffer, daysAgo: number) => {
      const when = new Date(Date.now() - daysAgo * 24 * 3600 * 1000);
      return utimes(join(dataDir, "assets", "used", keyOf(bytes)), when, when);
    };
    await used(kernel, 10);
    await used(initramfs, 2);
    await used(cmdline, 0);
    const env = isolatedEnv(join(dataDir, ".."));

    const dry = await runCli(["factory", "gc", "--max-age", "7d", "--dry-run", ...args()], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout.toString(), new RegExp(`would remove ${keyOf(kernel)} .*\\(max age\\)`));
    assert.ok(await exists(blobFile(sha256(kernel))), "a dry run removes nothing");

    const byAge = await runCli(["factory", "gc", "--max-age", "7d", ...args()], env);
    assert.equal(byAge.code, 0, byAge.stderr);
    assert.match(byAge.stdout.toString(), new RegExp(`^removed ${keyOf(kernel)} .*\\(max age\\)$`, "m"));
    assert.match(byAge.stdout.toString(), /: removed 1 entry \(7\.9 MiB\).*freed [1-9]/, byAge.stderr);
    assert.equal((await entries()).has(sha256(kernel)), false);
    assert.equal(await exists(blobFile(sha256(kernel))), false, "its blob is freed");

    const byteLimit = String(cmdline.length + 100);
    const bySize = await runCli(["factory", "gc", "--max-size", byteLimit, ...args()], env);
    assert.equal(bySize.code, 0, bySize.stderr);
    assert.match(bySize.stdout.toString(), new RegExp(`^removed ${keyOf(initramfs)} .*\\(max size\\)$`, "m"));
    const left = await entries();
    assert.equal(left.has(sha256(initramfs)), false);
    assert.equal(left.has(sha256(kernel)), false);
    assert.ok(left.has(sha256(cmdline)), "the most recently used stays");

    factory = await start();
    try {
      assert.deepEqual(await download(factory.url, "kernel-amd64"), kernel, "a removed entry is rebuilt on demand");
      assert.equal(await built(factory), 1);
      assert.deepEqual(await download(factory.url, "cmdline-metal-amd64"), cmdline);
      assert.equal(await built(factory), 1, "the kept one is a hit");
    } finally {
      await factory.close();
    }
  });

  it("in process: an entry in use is never removed; once released, it is", async () => {
    const factory = await start();
    try {
      const kernel = await download(factory.url, "kernel-amd64");
      const schematic = parseSchematic(schematicYaml);
      const held = await factory.assets.get(parseAssetRequest(id, version, "kernel-amd64"), schematic);
      assert.equal(held.sha256, sha256(kernel));
      const first = await factory.assets.collectGarbage({ maxSizeBytes: 1 });
      assert.equal(first.inUse, 1);
      assert.ok(!first.removed.some((entry) => entry.key === held.key), "the held entry stays");
      assert.deepEqual(await readFile(held.path), kernel, "and its file is readable");
      held.release();
      const second = await factory.assets.collectGarbage({ maxSizeBytes: 1 });
      assert.ok(second.removed.some((entry) => entry.key === held.key));
      assert.equal(second.inUse, 0);
    } finally {
      await factory.close();
    }
  });
});
