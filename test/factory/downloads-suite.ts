// Downloads from the factory started from the seed command line against the test bed release in a real
// registry, for one schematic: each asset asked for has upstream's status and Content-Type
// (internal/frontend/http/image.go, internal/mime/mime.go), is what its name says (checked with the format's
// own tool or magic bytes), and its bytes equal what `boot-assets build` (run as a user runs it, with its own
// cache, meanwhile) writes for the same request. Which assets: downloads.test.ts (the CI tier, one of each
// kind) and downloads.exhaustive.test.ts (the exhaustive tier, every other disk format and compression).
// A download is hashed as it arrives; the plain raw image (2.2 GiB) is not written out, only its first 4 KiB
// for the format check.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { after, before, describe, it } from "node:test";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  metricSum,
  type PublishedTestbed,
  type SeedBed,
  startSeedBed,
} from "./service-harness.ts";

const extraArg = "downloads.test=yes";
const metaValue = "downloaded META";
const schematicYaml = `customization:
  extraKernelArgs:
    - ${extraArg}
  meta:
    - key: 12
      value: ${metaValue}
  systemExtensions:
    officialExtensions:
      - siderolabs/testbed-dummy
`;

/** upstream internal/mime/mime.go, as served by its FROM-scratch image (no mime database): the rest is octet-stream. */
function upstreamContentType(path: string): string {
  const ext = path.slice(path.lastIndexOf("."));
  const known: Record<string, string> = {
    ".efi": "application/efi",
    ".iso": "application/x-iso9660-image",
    ".xz": "application/x-xz",
    ".gz": "application/gzip",
    ".qcow2": "application/x-qemu-disk",
  };
  return known[ext] ?? "application/octet-stream";
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { maxBuffer: 64 * 1024 * 1024, encoding: "utf8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, offset);
    return buffer;
  } finally {
    await handle.close();
  }
}

const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Checks that the file is what its asset name says, with the format's own tools or its magic bytes. */
const formatChecks = {
  "kernel-amd64": async (file) => assert.equal((await readAt(file, 0x202, 4)).toString("latin1"), "HdrS"),
  // Named .xz for every version, zstd-compressed since Talos 1.8 (as the test bed's v1.10.3 base).
  "initramfs-amd64.xz": async (file) => assert.ok((await readAt(file, 0, 4)).equals(zstdMagic), "zstd magic"),
  "cmdline-metal-amd64": async (file) => {
    const args = (await readAt(file, 0, 4096)).toString("utf8").replace(/\0+$/, "").split(" ");
    assert.ok(args.includes(extraArg), args.join(" "));
    assert.ok(args.includes("talos.platform=metal"), args.join(" "));
  },
  "metal-amd64-uki.efi": async (file) => assert.equal((await readAt(file, 0, 2)).toString("latin1"), "MZ"),
  "installer-amd64.tar": async (file) => assert.match(run("tar", ["-tf", file]), /^manifest\.json$/m),
  "metal-amd64.iso": async (file) => assert.equal((await readAt(file, 0x8001, 5)).toString("latin1"), "CD001"),
  "metal-amd64.raw": async (file) => assert.equal((await readAt(file, 512, 8)).toString("latin1"), "EFI PART"),
  "metal-amd64.qcow2": async (file) => {
    assert.equal((JSON.parse(run("qemu-img", ["info", "--output=json", file])) as { format: string }).format, "qcow2");
  },
  "metal-amd64.vhd": async (file) => {
    assert.equal((JSON.parse(run("qemu-img", ["info", "--output=json", file])) as { format: string }).format, "vpc");
  },
  "metal-amd64.ova": async (file) => {
    const members = run("tar", ["-tf", file]).trim().split("\n");
    assert.ok(members.some((m) => m.endsWith(".ovf")) && members.some((m) => m.endsWith(".vmdk")), members.join(" "));
  },
  "metal-amd64.raw.xz": async (file) => void run("xz", ["-t", file]),
  "metal-amd64.raw.zst": async (file) => void run("zstd", ["-t", "-q", file]),
  "metal-amd64.raw.gz": async (file) => void run("gzip", ["-t", file]),
  "metal-amd64.raw.tar.gz": async (file) => assert.equal(run("tar", ["-tzf", file]).trim(), "disk.raw"),
} satisfies Record<string, (file: string) => Promise<void>>;

/** Assets whose download is hashed as it arrives but not kept whole (the plain raw image: 2.2 GiB). */
const headOnly = new Set(["metal-amd64.raw"]);
const headBytes = 4096;

/** The assets every tier may ask for, with their checks. */
export type DownloadAsset = keyof typeof formatChecks;

/**
 * Streams the body into `file` (only its first 4 KiB when `whole` is false), hashing all of it; returns its
 * sha256 and length.
 */
async function download(res: Response, file: string, whole: boolean): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      let kept: Buffer | undefined = chunk;
      if (!whole) kept = bytes < headBytes ? chunk.subarray(0, headBytes - bytes) : undefined;
      bytes += chunk.length;
      callback(null, kept);
    },
  });
  await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), tee, createWriteStream(file));
  return { sha256: hash.digest("hex"), bytes };
}

/** sha256 of the file. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

/**
 * The suite: `requests` maps a version to the assets asked for; `clientThatLeaves` adds the test of a client
 * that goes away while its uncached asset builds.
 */
export function describeDownloads(
  title: string,
  requests: Record<string, DownloadAsset[]>,
  options: { clientThatLeaves?: boolean } = {},
): void {
  describe(title, () => {
    let bed: SeedBed | undefined;
    let testbed: PublishedTestbed;
    let running: FactoryUnderTest;
    let base: string;
    let id: string;
    let work: string;

    const metrics = async (name: string) =>
      metricSum(await (await fetch(running.factory.metricsUrl as string)).text(), name);
    const postSchematic = (yaml: string) => createSchematic(base, yaml);

    before(async () => {
      bed = await startSeedBed({ schematic: schematicYaml });
      ({ testbed, running, base, id } = bed);
      work = await mkdtemp(join(running.dataDir, "..", "downloads-"));
    });
    after(async () => {
      await bed?.stop();
    });

    for (const [version, assets] of Object.entries(requests))
      it(`${version}: ${assets.join(", ")}`, async () => {
        // `boot-assets build` of the same request runs meanwhile, with its own cache.
        const schematicFile = join(work, `schematic-${version}.yaml`);
        await writeFile(schematicFile, schematicYaml);
        const out = join(work, `cli-${version}`);
        const cli = runCli(
          [
            "build",
            "--image-registry",
            testbed.registry,
            "--insecure",
            "-container-signature-pubkey",
            join(testbed.outDir, "cosign.pub"),
            "--talos-version",
            version,
            "--schematic",
            schematicFile,
            "--output-dir",
            out,
            "--cache-dir",
            join(work, `cli-cache-${version}`),
            // the factory's -external-url (seedArgv's): the schematic extension names it as its author
            "-external-url",
            "https://factory.example.test/",
            ...assets,
          ],
          isolatedEnv(work),
          600_000,
        );
        const downloads = join(work, `http-${version}`);
        await mkdir(downloads);
        const served = new Map<string, string>();
        for (const asset of assets) {
          const started = performance.now();
          const res = await fetch(`${base}/image/${id}/${version}/${asset}`);
          if (res.status !== 200) assert.fail(`${asset}: ${res.status} ${await res.text()}`);
          assert.equal(res.headers.get("content-type"), upstreamContentType(asset), asset);
          assert.equal(res.headers.get("content-disposition"), `attachment; filename="${asset}"`);
          const file = join(downloads, asset);
          const got = await download(res, file, !headOnly.has(asset));
          served.set(asset, got.sha256);
          const seconds = ((performance.now() - started) / 1000).toFixed(1);
          console.log(`${version} ${asset}: ${res.headers.get("content-length")} bytes in ${seconds} s`);
          assert.equal(String(got.bytes), res.headers.get("content-length"), asset);
          await formatChecks[asset](file);
        }

        const result = await cli;
        assert.equal(result.code, 0, result.stderr);
        // Byte for byte, every kind: the raw image's BOOT XFS is made under a stopped clock (src/tools/xfsprogs.ts);
        // the VHD footer's time and id and the VMDK's CID are set from the inputs (src/imager/disk/outputs.ts).
        for (const asset of assets)
          assert.equal(
            served.get(asset),
            await sha256File(join(out, asset)),
            `${version} ${asset}: not the CLI's bytes`,
          );
      });

    if (options.clientThatLeaves)
      it("a client that leaves while its asset builds: 499 in the request log, the build goes on, then a cache hit", async () => {
        const other = await postSchematic(schematicYaml.replace(extraArg, "downloads.test=left"));
        const path = `/image/${other}/v1.10.3/metal-amd64.iso`;
        const built = await metrics("image_factory_assets_built_total");
        const client = new AbortController();
        const request = fetch(`${base}${path}`, { signal: client.signal });
        // An ISO takes seconds to build: the client leaves long before it is ready.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        client.abort();
        await assert.rejects(request);

        const logged = async () => running.logs.find((line) => line.path === path && line.msg === "request");
        const deadline = Date.now() + 300_000;
        while ((await logged()) === undefined || (await metrics("image_factory_assets_built_total")) === built) {
          assert.ok(Date.now() < deadline, "no request log line or no build within 300 s");
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const line = (await logged()) as Record<string, unknown>;
        assert.equal(line.status, 499, JSON.stringify(line));
        assert.equal(line.level, 30, "info, as upstream logs a cancelled request");
        assert.equal(await metrics("image_factory_assets_built_total"), built + 1);

        const cached = await metrics("image_factory_assets_delivered_cached_total");
        const res = await fetch(`${base}${path}`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
        assert.equal(await metrics("image_factory_assets_delivered_cached_total"), cached + 1);
        assert.equal(await metrics("image_factory_assets_built_total"), built + 1);
      });
  });
}
