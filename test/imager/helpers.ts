// Building assets from the test bed release fixture: a schematic naming test bed extensions, the profile for
// an asset path, and the build with local inputs.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type BuildOptions, type BuildResult, build } from "../../src/imager/builders.ts";
import type { ImagerInputs } from "../../src/imager/inputs.ts";
import { type BuildProfile, createBuildProfile } from "../../src/imager/profile.ts";
import { parseAssetRequest } from "../../src/talos/asset-path.ts";
import { parseExtensionManifest } from "../../src/talos/extension.ts";
import { type Schematic, schematicId } from "../../src/talos/schematic.ts";
import type { TestbedArch } from "../../src/testbed/debian.ts";
import type { TestbedReport } from "../boot/harness.ts";
import { localInputs, type ReleaseFixture } from "./fixture.ts";

/** Every test bed extension whose constraint admits the release (testbed-legacy is the one that does not). */
export const compatibleExtensions = ["testbed-dummy", "testbed-ucode", "testbed-hello", "testbed-glibc"] as const;

export function testSchematic(
  extensions: readonly string[],
  customization: Omit<Schematic["customization"], "systemExtensions"> = {},
): Schematic {
  return {
    customization: {
      ...customization,
      ...(extensions.length > 0
        ? { systemExtensions: { officialExtensions: extensions.map((name) => `siderolabs/${name}`) } }
        : {}),
    },
  };
}

export interface PreparedVersion {
  version: string;
  inputs: ImagerInputs & { imagerDigest: string; installerDigest: string };
}

export async function prepareVersion(
  fixture: ReleaseFixture,
  version: string,
  extensions: readonly string[],
  arch: TestbedArch = "amd64",
): Promise<PreparedVersion> {
  return { version, inputs: await localInputs(fixture, version, extensions, arch) };
}

export function profileFor(prepared: PreparedVersion, schematic: Schematic, path: string): BuildProfile {
  const request = parseAssetRequest(schematicId(schematic), prepared.version, path);
  return createBuildProfile(request, schematic, {
    imager: prepared.inputs.imagerDigest,
    installerBase: prepared.inputs.installerDigest,
    extensions: prepared.inputs.extensions.map((e) => ({ name: e.name, digest: e.digest })),
    ...(prepared.inputs.overlay === undefined
      ? {}
      : { overlay: { image: prepared.inputs.overlay.image, digest: prepared.inputs.overlay.digest } }),
  });
}

/** Builds `path` into `outDir/path` (the profile decides whether the extensions are used). */
export async function buildAsset(
  prepared: PreparedVersion,
  schematic: Schematic,
  path: string,
  outDir: string,
  options?: BuildOptions,
): Promise<BuildResult & { profile: BuildProfile }> {
  const profile = profileFor(prepared, schematic, path);
  const inputs = { ...prepared.inputs, extensions: profile.inputs.extensions.length ? prepared.inputs.extensions : [] };
  const result = await build(profile, inputs, join(outDir, path), options);
  return { ...result, profile };
}

/**
 * What every booted asset's report must say for the boot schematic (every compatible test bed extension,
 * `-consoleblank`, `testbed.extra=yes`): each extension with its version from its own manifest, then the
 * schematic layer, any `afterSchematic` layers (name, version; e.g. the embedded-config one) and the
 * modules.dep layer, the dummy module loaded, the extra arg present, consoleblank gone, metal.
 */
export async function assertBootReport(
  report: TestbedReport,
  version: PreparedVersion,
  expected: {
    schematicId: string;
    kernelRelease: string;
    extraArgs?: boolean;
    afterSchematic?: readonly (readonly [string, string])[];
  },
): Promise<void> {
  assert.deepEqual(report.errors, []);
  const layers: [string, string, string][] = [];
  for (const [i, extension] of version.inputs.extensions.entries()) {
    const manifest = parseExtensionManifest(await readFile(join(extension.dir, "manifest.yaml")), extension.name);
    layers.push([`${i}.sqsh`, manifest.metadata.name, manifest.metadata.version]);
  }
  layers.push([`${layers.length}.sqsh`, "schematic", expected.schematicId]);
  for (const [name, version] of expected.afterSchematic ?? []) layers.push([`${layers.length}.sqsh`, name, version]);
  layers.push(["modules.dep.sqsh", "modules.dep", expected.kernelRelease]);
  assert.deepEqual(
    report.extensions.map((e) => [e.image, e.name, e.version]),
    layers,
  );
  assert.ok(report.modules.includes("dummy"), `dummy not loaded: ${report.modules.join(" ")}`);
  const args = report.cmdline.split(/\s+/);
  if (expected.extraArgs === false) {
    assert.ok(!args.includes("testbed.extra=yes"), report.cmdline);
  } else {
    assert.ok(args.includes("testbed.extra=yes"), report.cmdline);
    assert.ok(!args.some((a) => a.startsWith("consoleblank")), report.cmdline);
  }
  assert.ok(args.includes("talos.platform=metal"), report.cmdline);
  assert.equal(report.schematicId, expected.schematicId);
  // A UKI with reset profiles (Talos ≥ 1.10 ISOs, disks, installers) must boot its main one: never the wipe
  // argument the reset profiles' .cmdline carries (pkg/imager/imager.go buildUKI), and profile 0 whenever a
  // stub that knows profiles says which it booted.
  assert.ok(!args.some((a) => a.startsWith("talos.experimental.wipe")), report.cmdline);
  if (report.stub !== null && report.stub.profile !== null) assert.equal(report.stub.profile, 0, report.stub.info);
}
