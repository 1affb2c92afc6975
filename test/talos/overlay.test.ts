// Upstream's overlay rules, one row each (src/talos/overlay.ts, src/imager/profile.ts, src/formats/gpt.ts):
// the YAML an overlay installer gets and answers checked against gopkg.in/yaml.v3 itself with upstream's
// struct tags (go-overlay/main.go, built offline from Debian's Go packages like the schematic oracle).

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { planGpt } from "../../src/formats/gpt.ts";
import { createBuildProfile } from "../../src/imager/profile.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import {
  getOptionsInput,
  installInput,
  overlayUnavailableMessage,
  overlayUnsupportedMessage,
  parseOverlayOptions,
  schematicOverlay,
} from "../../src/talos/overlay.ts";
import { parseSchematic, schematicId } from "../../src/talos/schematic.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "../..");

function oracle(): string {
  const cacheDir = path.join(repoRoot, ".cache", "go-overlay");
  mkdirSync(cacheDir, { recursive: true });
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? cacheDir,
    GO111MODULE: "off",
    GOPATH: "/usr/share/gocode",
    GOCACHE: path.join(cacheDir, "go-build"),
    GOFLAGS: "",
    GOPROXY: "off",
    CGO_ENABLED: "0",
  };
  const source = readFileSync(path.join(here, "go-overlay", "main.go"));
  const key = createHash("sha256")
    .update(source)
    .update(execFileSync("go", ["version"], { env }))
    .digest("hex")
    .slice(0, 16);
  const binary = path.join(cacheDir, `oracle-${key}`);
  if (!existsSync(binary)) {
    const tmp = `${binary}.${process.pid}.tmp`;
    execFileSync("go", ["build", "-o", tmp, path.join(here, "go-overlay", "main.go")], { env, stdio: "pipe" });
    renameSync(tmp, binary);
  }
  return binary;
}

function ask<T>(requests: object[]): T[] {
  const result = spawnSync(oracle(), [], { input: `${requests.map((r) => JSON.stringify(r)).join("\n")}\n` });
  assert.equal(result.status, 0, result.stderr?.toString());
  return result.stdout
    .toString()
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as T);
}

const optionDocs = [
  "",
  "options:\n  kernelArg: overlay.option=yes\n",
  "options:\n  zeta: 1\n  alpha: true\n  b10: x\n  b9: y\n  nested:\n    list: [a, 1, 2.5, null]\n    '0x10': hex\n",
  "options:\n  text: |\n    two\n    lines\n  quoted: 'yes'\n  empty: ''\n  number_like: '012'\n",
  "options: {}\n",
];

describe("overlay rules (upstream)", () => {
  test("get-options reads yaml.Marshal(overlay.ExtraOptions), install yaml.Marshal(&overlay.InstallOptions) (executor.go)", () => {
    const answers = ask<{ getOptions: string; install: string }>(
      optionDocs.map((doc) => ({
        mode: "options",
        schematic: doc,
        disk: "/.boot-assets/disk.raw",
        prefix: "/.boot-assets/image",
        artifacts: "/artifacts",
      })),
    );
    for (const [i, doc] of optionDocs.entries()) {
      const schematic = parseSchematic(
        `overlay:\n  image: siderolabs/sbc-x\n  name: board\n${doc.replace(/^/gm, "  ")}`,
      );
      const options = schematic.overlay?.options;
      assert.equal(getOptionsInput(options), answers[i]?.getOptions, doc);
      assert.equal(
        installInput({
          installDisk: "/.boot-assets/disk.raw",
          mountPrefix: "/.boot-assets/image",
          artifactsPath: "/artifacts",
          options,
        }),
        answers[i]?.install,
        doc,
      );
    }
  });

  test("get-options' answer is read as yaml.Unmarshal into overlay.Options", () => {
    const texts = [
      "name: rpi_generic\nkernelArgs:\n    - console=tty1\n    - console=ttyAMA0,115200\n",
      "name: rock\npartitionOptions:\n    offset: 2048\n",
      "",
      "name: x\nkernelArgs: []\nextra: ignored\n",
      "{name: flow, kernelArgs: [a=1]}\n",
    ];
    const answers = ask<{ ok: boolean; name?: string; kernelArgs?: string[]; offset?: number }>(
      texts.map((text) => ({ mode: "parse", text })),
    );
    for (const [i, text] of texts.entries()) {
      const answer = answers[i];
      assert.ok(answer?.ok, text);
      assert.deepEqual(
        parseOverlayOptions(text, "test"),
        { name: answer.name, kernelArgs: answer.kernelArgs, partitionOffset: answer.offset },
        text,
      );
    }
  });

  test("an answer that is not overlay.Options fails naming the overlay (502: the source's fault)", () => {
    for (const text of ["- a list\n", "kernelArgs: {a: 1}\n", "partitionOptions:\n  offset: -1\n", "name: [x]\n"])
      assert.throws(
        () => parseOverlayOptions(text, "siderolabs/sbc-x"),
        (err: Error & { kind?: string }) => err.kind === "Upstream" && /overlay siderolabs\/sbc-x/.test(err.message),
        text,
      );
  });

  const request = (schematicYaml: string, version: string, file: string) => {
    const schematic = parseSchematic(schematicYaml);
    return { schematic, request: parseAssetRequest(schematicId(schematic), version, file) };
  };
  const digest = `sha256:${"1".repeat(64)}`;
  const overlayYaml = "overlay:\n  image: siderolabs/sbc-x\n  name: board\n";

  test("EnhanceFromSchematic: a named overlay before 1.7 is refused for every output, in upstream's words", () => {
    assert.equal(rulesFor("v1.6.7").overlays, false);
    assert.equal(rulesFor("v1.7.0").overlays, true);
    for (const file of ["cmdline-metal-amd64", "kernel-amd64", "metal-amd64.raw"]) {
      const { schematic, request: r } = request(overlayYaml, "v1.6.7", file);
      assert.throws(
        () => createBuildProfile(r, schematic, { imager: digest, extensions: [], overlay: { image: "x", digest } }),
        { message: "overlay is not supported for Talos version v1.6.7" },
      );
    }
    assert.equal(overlayUnsupportedMessage("v1.6.7"), "overlay is not supported for Talos version v1.6.7");
    // %q of the zero OverlayRef it did not find: upstream's message names no overlay.
    assert.equal(
      overlayUnavailableMessage("v1.10.3"),
      'official overlay {"" "" ""} is not available for Talos version v1.10.3',
    );
  });

  test("EnhanceFromSchematic: only a named overlay counts (an image without a name is ignored)", () => {
    assert.equal(schematicOverlay(parseSchematic("overlay:\n  image: siderolabs/sbc-x\n")), undefined);
    const { schematic, request: r } = request("overlay:\n  image: siderolabs/sbc-x\n", "v1.6.7", "metal-amd64.raw");
    assert.equal(createBuildProfile(r, schematic, { imager: digest, extensions: [] }).overlay, undefined);
  });

  test("the overlay is part of UKI, installer, ISO and disk profiles (it changes their bytes), not the others", () => {
    const files: Record<string, boolean> = {
      "metal-amd64.raw": true,
      "metal-amd64.iso": true,
      "metal-amd64-uki.efi": true,
      "installer-amd64.tar": true,
      "initramfs-amd64.xz": false,
      "kernel-amd64": false,
      "cmdline-metal-amd64": false,
    };
    for (const [file, has] of Object.entries(files)) {
      const { schematic, request: r } = request(overlayYaml, "v1.10.3", file);
      const profile = createBuildProfile(r, schematic, {
        imager: digest,
        installerBase: digest,
        extensions: [],
        overlay: { image: "siderolabs/sbc-x", digest },
      });
      assert.equal(profile.overlay !== undefined, has, file);
    }
  });

  test("PartitionOptions.Offset skips LBAs after the GPT header (go-blockdevice gpt.WithSkipLBAs)", () => {
    const plan = (skipLbas?: number) =>
      planGpt({
        diskSizeBytes: 64 * 1024 * 1024,
        diskGuid: "00000000-0000-0000-0000-000000000001",
        partitions: [{ name: "EFI", typeGuid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", sizeBytes: 1024 * 1024 }],
        ...(skipLbas === undefined ? {} : { skipLbas }),
      });
    // primaryPartitionsLBA = header + 1 + skip; first usable = entries + 32 LBAs, aligned up to 2048.
    assert.equal(plan().primaryEntriesLba, 2);
    assert.equal(plan(1024).primaryEntriesLba, 1026);
    assert.equal(plan(1024).firstUsableLba, 2048);
    assert.equal(plan(4096).primaryEntriesLba, 4098);
    assert.equal(plan(4096).firstUsableLba, 6144);
    assert.equal(plan(4096).partitions[0]?.firstLba, 6144);
  });
});
