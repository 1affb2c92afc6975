// Issue 15's end-to-end proof, as an operator runs the toolkit: the shipped custom extensions
// (extensions/glibc, extensions/nvidia-driver-production) built from fixture trees by `boot-assets extension
// build`, pushed and signed; `boot-assets catalog merge` appends them to the test bed's catalog (the vendor's,
// here) and pushes the merged catalog, signed; a factory pointed at it (`-extension-manifest-image`, upstream's
// flag) with verification on serves an ISO for a schematic naming an upstream and both custom extensions; the
// ISO boots and the guest lists all three.

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { cp, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  publishTestbed,
  startSeedFactory,
  waitFor200,
} from "../factory/service-harness.ts";
import { ok, tree } from "../toolkit/fixture-tree.ts";
import { boot, bootUnavailable } from "./harness.ts";

const skip = bootUnavailable("bios");
const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const version = "v1.10.3";
const driver = "570.172.08";

describe("toolkit to boot: custom extensions built, merged into the catalog, served and booted", { skip }, () => {
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest | undefined;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let merged: { glibc: string; nvidia: string; catalog: string };

  before(async () => {
    testbed = await publishTestbed();
    work = await mkdtemp(join(tmpdir(), "toolkit-boot-"));
    env = { ...isolatedEnv(join(work, "home")), COSIGN_PASSWORD: "" };
    const registry = testbed.registry;
    const key = join(testbed.outDir, "cosign.key");
    await cp(join(projectRoot, "extensions"), join(work, "extensions"), { recursive: true, verbatimSymlinks: true });
    await tree(join(work, "trees/glibc"), {
      "usr/local/glibc/usr/lib/ld-linux-x86-64.so.2": ["fixture loader\n", 0o755],
      "usr/local/glibc/usr/lib/libc.so.6": ["fixture libc\n", 0o755],
      "usr/local/glibc/usr/bin/ldconfig": ["fixture ldconfig\n", 0o755],
    });
    await tree(join(work, "trees/nvidia"), {
      [`usr/lib/firmware/nvidia/${driver}/gsp_ga10x.bin`]: "fixture firmware\n",
      "usr/local/glibc/usr/bin/nvidia-smi": ["fixture nvidia-smi\n", 0o755],
      "usr/local/glibc/usr/bin/nvidia-persistenced": ["fixture nvidia-persistenced\n", 0o755],
      [`usr/local/glibc/usr/lib/libnvidia-ml.so.${driver}`]: "fixture library\n",
      "usr/local/lib/containers/nvidia-driver/bin/busybox": ["fixture busybox\n", 0o755],
    });
    await symlink("busybox", join(work, "trees/nvidia/usr/local/lib/containers/nvidia-driver/bin/sh"));

    const build = async (folder: string, tag: string, treeDir: string) => {
      const out = ok(
        await runCli(
          [
            "extension",
            "build",
            join(work, "extensions", folder),
            "--tag",
            tag,
            "--talos-version",
            version,
            "--platform",
            "linux/amd64",
            "--tree",
            `amd64=${treeDir}`,
            "--push",
            "--sign",
            "--key",
            key,
            "--insecure",
            "--json",
          ],
          env,
          180_000,
        ),
        `extension build ${folder}`,
      );
      const result = JSON.parse(out) as { reference: string; digest: string };
      return `${result.reference}@${result.digest}`;
    };
    const glibc = await build("glibc", `${registry}/acme/glibc:2.41`, join(work, "trees/glibc"));
    const nvidia = await build(
      "nvidia-driver-production",
      `${registry}/acme/nvidia-driver-production:${driver}-${version}`,
      join(work, "trees/nvidia"),
    );
    const catalog = `${registry}/acme/extensions:${version}`;
    const mergeOut = await runCli(
      [
        "catalog",
        "merge",
        "--from",
        `${registry}/siderolabs/extensions:${version}`,
        "--add",
        glibc,
        "--add",
        nvidia,
        "--tag",
        catalog,
        "--push",
        "--sign",
        "--key",
        key,
        "--insecure",
      ],
      env,
      180_000,
    );
    console.log(`catalog merge:\n${ok(mergeOut, "catalog merge")}${mergeOut.stderr}`);
    merged = { glibc, nvidia, catalog };
    running = await startSeedFactory(testbed, ["-extension-manifest-image", "acme/extensions"]);
    await waitFor200(`${running.factory.url.replace(/\/$/, "")}/readyz`);
  });
  after(async () => {
    await running?.stop();
    await testbed?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("the factory lists both catalogs' extensions, and an ISO with upstream and custom ones boots", async () => {
    const base = (running as FactoryUnderTest).factory.url.replace(/\/$/, "");
    const listed = (await (await fetch(`${base}/version/${version}/extensions/official`)).json()) as {
      name: string;
      ref: string;
      digest: string;
    }[];
    const names = listed.map((e) => e.name);
    for (const name of ["siderolabs/testbed-hello", "acme/glibc", "acme/nvidia-driver-production"])
      assert.ok(names.includes(name), `${name} not in ${names.join(", ")}`);
    assert.equal(listed.find((e) => e.name === "acme/glibc")?.digest, merged.glibc.split("@")[1]);

    const id = await createSchematic(
      base,
      `customization:
  extraKernelArgs:
    - console=ttyS0
  systemExtensions:
    officialExtensions:
      - siderolabs/testbed-hello
      - acme/glibc
      - acme/nvidia-driver-production
`,
    );
    const iso = join(work, "metal-amd64.iso");
    const started = performance.now();
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64.iso`);
    if (res.status !== 200) assert.fail(`ISO: ${res.status} ${await res.text()}`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(iso));
    console.log(`ISO built and downloaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const { report, seconds } = await boot({ iso, firmware: "bios" });
    console.log(
      `ISO boot: ${seconds} s; extensions: ${report.extensions.map((e) => `${e.name} ${e.version}`).join(", ")}`,
    );
    assert.deepEqual(report.errors, []);
    const booted = report.extensions.map((e) => [e.name, e.version]);
    for (const expected of [
      ["glibc", "2.41"],
      ["nvidia-driver-production", `${driver}-${version}`],
    ])
      assert.ok(
        booted.some(([n, v]) => n === expected[0] && v === expected[1]),
        `${expected.join(" ")} not booted: ${JSON.stringify(booted)}`,
      );
    assert.ok(
      booted.some(([n]) => n === "testbed-hello"),
      JSON.stringify(booted),
    );
    assert.equal(report.schematicId, id);
  });
});
