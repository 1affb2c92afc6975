// Schematic overlays through the factory, against the test bed release in a real registry (its board overlay,
// src/testbed/release-overlay.ts): upstream's catalog route lists it; a disk image with it gets the files its
// installer wrote in the EFI partition (read back with mtools) and its kernel args on the command line
// (the UKI's .cmdline); the installer image gains upstream's third layer; upstream's refusals; a failing
// installer is a 502 naming the overlay and leaves nothing in the cache.
// Upstream: image-factory internal/profile/profile.go (EnhanceFromSchematic, MergeOverlayProfile), talos
// pkg/imager/imager.go (handleOverlay, buildCmdline), pkg/imager/out.go (outInstaller), cmd/installer/pkg/
// install/install.go (ExtraInstallStep), image-factory internal/integration/registry_test.go (three layers).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { after, before, describe, it } from "node:test";
import { parsePe, readSection } from "../../src/formats/pe.ts";
import { readDiskGpt } from "../../src/imager/disk/assemble.ts";
import { testbedBoardText, testbedProfileArg } from "../../src/testbed/release-overlay.ts";
import { mtype } from "../../src/tools/mtools.ts";
import { createSchematic, type PublishedTestbed, type SeedBed, startSeedBed } from "./service-harness.ts";

const version = "v1.10.3";
const schematicArg = "overlay.schematic=1";
const optionArg = "overlay.option=yes";
const overlaySchematic = (name: string) => `overlay:
  image: siderolabs/sbc-testbed
  name: ${name}
  options:
    kernelArg: ${optionArg}
customization:
  extraKernelArgs:
    - ${schematicArg}
`;

let bed: SeedBed | undefined;
let testbed: PublishedTestbed;
let base: string;
let scratch: string;

before(async () => {
  bed = await startSeedBed({ ready: "/versions" });
  ({ testbed, base } = bed);
  scratch = await mkdtemp(join(tmpdir(), "overlay-test-"));
});
after(async () => {
  await bed?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

async function download(url: string, file: string): Promise<void> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: ${res.status} ${res.status === 200 ? "" : await res.text()}`);
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(file));
}

async function cacheTags(): Promise<string[]> {
  const res = await fetch(`http://${testbed.registry}/v2/cache/tags/list`);
  if (res.status === 404) return [];
  return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
}

describe("overlays", () => {
  it("the catalog route lists the test bed's overlays as upstream shapes them (name, image, ref, digest)", async () => {
    const res = await fetch(`${base}/version/${version}/overlays/official`);
    assert.equal(res.status, 200);
    const list = (await res.json()) as Array<Record<string, string>>;
    const board = list.find((o) => o.name === "testbed_board");
    assert.ok(board, JSON.stringify(list));
    assert.deepEqual(Object.keys(board).sort(), ["digest", "image", "name", "ref"]);
    assert.equal(board.image, "siderolabs/sbc-testbed");
    assert.match(board.digest ?? "", /^sha256:[0-9a-f]{64}$/);
  });

  it("a disk image: the installer's file is in the EFI partition, its and its profile's args on the command line", async () => {
    const id = await createSchematic(base, overlaySchematic("testbed_board"));
    const disk = join(scratch, "board.raw");
    await download(`${base}/image/${id}/${version}/metal-amd64.raw`, disk);
    const efi = (await readDiskGpt(disk)).partitions.find((p) => p.name === "EFI");
    assert.ok(efi);
    const at = { offset: efi.offsetBytes };
    // The file the installer copied from artifacts/amd64/ under <mountPrefix>/boot/EFI.
    assert.equal(await mtype(disk, "testbed/board.txt", at), testbedBoardText);
    // What it was given on stdin: upstream's overlay.InstallOptions, with the schematic's options.
    const input = await mtype(disk, "testbed/install.yaml", at);
    assert.match(input, /^installDisk: \/\S+$/m);
    assert.match(input, /^mountPrefix: \/\S+$/m);
    assert.match(input, /^artifactsPath: \/\S+$/m);
    assert.match(input, new RegExp(`^extraOptions:\\n {4}kernelArg: ${optionArg}$`, "m"));
    // The boot loader's files are still there, and the UKI's command line has the overlay's args.
    const uki = join(scratch, "board.efi");
    execFileSync("mcopy", ["-n", "-i", `${disk}@@${efi.offsetBytes}`, `::/EFI/Linux/Talos-${version}.efi`, uki]);
    const data = await readFile(uki);
    const cmdline = readSection(data, parsePe(data), ".cmdline")?.toString("utf8") ?? "";
    const args = cmdline.split(" ");
    for (const arg of ["testbed.overlay=testbed_board", optionArg, testbedProfileArg, schematicArg])
      assert.ok(args.includes(arg), `${arg} missing from ${cmdline}`);
    // The overlay's profile args come before the schematic's (MergeOverlayProfile runs before they are appended).
    assert.ok(args.indexOf(testbedProfileArg) < args.indexOf(schematicArg), cmdline);
  });

  it("the cmdline download has no overlay args (upstream hands the overlay to the imager for other outputs only)", async () => {
    const id = await createSchematic(base, overlaySchematic("testbed_board"));
    const res = await fetch(`${base}/image/${id}/${version}/cmdline-metal-amd64`);
    assert.equal(res.status, 200);
    const cmdline = await res.text();
    assert.ok(cmdline.includes(schematicArg), cmdline);
    assert.ok(!cmdline.includes("testbed.overlay"), cmdline);
  });

  it("the installer image gains a third layer: overlay/artifacts, overlay/installers/default, overlay/extra-options", async () => {
    const id = await createSchematic(base, overlaySchematic("testbed_board"));
    const tarball = join(scratch, "installer.tar");
    await download(`${base}/image/${id}/${version}/installer-amd64.tar`, tarball);
    const dir = join(scratch, "installer");
    execFileSync("mkdir", ["-p", dir]);
    execFileSync("tar", ["-xf", tarball, "-C", dir]);
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Array<{ Layers: string[] }>;
    const layers = manifest[0]?.Layers ?? [];
    assert.equal(layers.length, 3, "base, artifacts and overlay");
    const listing = execFileSync("tar", ["-tvzf", join(dir, layers[2] as string)]).toString();
    const names = execFileSync("tar", ["-tzf", join(dir, layers[2] as string)])
      .toString()
      .trim()
      .split("\n");
    for (const name of ["overlay/artifacts/amd64/board.txt", "overlay/installers/default", "overlay/extra-options"])
      assert.ok(names.includes(name), `${name} missing from ${names.join(", ")}`);
    assert.match(listing, /^-rwxr-xr-x .* overlay\/installers\/default$/m);
    const options = execFileSync("tar", ["-xOzf", join(dir, layers[2] as string), "overlay/extra-options"]).toString();
    assert.equal(options, `kernelArg: ${optionArg}\n`);
  });

  it("an overlay the catalog does not have: upstream's 400 (its message names no overlay)", async () => {
    const id = await createSchematic(base, overlaySchematic("no_such_board"));
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64.raw`);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /official overlay \{"" "" ""\} is not available for Talos version v1\.10\.3/);
  });

  it("a failing installer: 502 naming the overlay with its stderr, and no cache entry", async () => {
    const id = await createSchematic(base, overlaySchematic("testbed_broken"));
    const before = await cacheTags();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await fetch(`${base}/image/${id}/${version}/metal-amd64.raw`);
      const text = await res.text();
      assert.equal(res.status, 502, text);
      assert.match(text, /overlay installer testbed_broken \(siderolabs\/sbc-testbed\) install exited with code 3/);
      assert.match(text, /this board cannot be installed/);
    }
    assert.deepEqual(await cacheTags(), before);
  });
});
