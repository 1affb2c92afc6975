// Boot tier: the installer image pulled from the factory's registry front boots. The factory (seed command
// line, installers in its embedded store) builds `installer/<schematic>:v1.10.3`; skopeo pulls it; the UKI
// the artifacts layer carries for the Talos installer (`usr/install/amd64/vmlinuz.efi`: since Talos 1.10 the
// installer boots through systemd-boot, upstream internal/integration/registry_test.go testInstallerImage)
// is booted by OVMF, and the guest reports the schematic's ID (its extension is in the UKI's initramfs).
// From Talos 1.10 that UKI carries profiles (talos quirks SupportsUKIProfiles; pkg/imager/imager.go buildUKI
// adds "reset-maintenance" with talos.experimental.wipe to installers' UKIs): booted by the newer stub the
// test bed's 1.10 imager ships (trixie's systemd-stub 257), the guest must be in the main profile (0),
// i.e. the main command line without the wipe argument.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { objdumpSections } from "../../src/tools/binutils.ts";
import { layerFileContents, startEmbeddedFactory } from "../factory/registry-front-harness.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  publishTestbed,
  waitFor200,
} from "../factory/service-harness.ts";
import { skopeo } from "../realclients/skopeo.ts";
import { boot, bootUnavailable } from "./harness.ts";

const skip = bootUnavailable("uefi");
const version = "v1.10.3";

describe("an installer pulled from the registry front boots", { skip }, () => {
  let testbed: PublishedTestbed;
  let factory: FactoryUnderTest;
  let work: string;

  before(async () => {
    testbed = await publishTestbed();
    factory = await startEmbeddedFactory(testbed);
    await waitFor200(`${factory.factory.url}/readyz`);
    work = await mkdtemp(join(tmpdir(), "installer-boot-"));
  });
  after(async () => {
    await factory?.stop();
    await testbed?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("its UKI boots under UEFI and carries the schematic", async () => {
    const base = factory.factory.url;
    const id = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - installer.boot=yes\n");

    const layout = join(work, "layout");
    const host = new URL(base).host;
    await skopeo(
      ["copy", "--src-tls-verify=false", `docker://${host}/installer/${id}:${version}`, `oci:${layout}:${version}`],
      600_000,
    );
    const blob = (digest: string) => readFile(join(layout, "blobs", "sha256", digest.slice("sha256:".length)));
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
      manifests: Array<{ digest: string }>;
    };
    const manifest = JSON.parse((await blob(index.manifests[0]?.digest as string)).toString("utf8")) as {
      layers: Array<{ digest: string }>;
    };
    const artifacts = await layerFileContents(await blob(manifest.layers.at(-1)?.digest as string));
    const uki = artifacts.get("usr/install/amd64/vmlinuz.efi");
    assert.ok(uki, `no UKI in the artifacts layer: ${[...artifacts.keys()].join(", ")}`);
    const ukiPath = join(work, "vmlinuz.efi");
    await writeFile(ukiPath, uki);

    const sections = (await objdumpSections(ukiPath)).map((s) => s.name);
    assert.deepEqual(sections.slice(sections.indexOf(".osrel")), [
      ".osrel",
      ".cmdline",
      ".uname",
      ".splash",
      ".linux",
      ".initrd",
      ".profile",
      ".profile",
      ".cmdline",
    ]);

    const { report, seconds } = await boot({ uki: ukiPath, firmware: "uefi" });
    console.log(`installer UKI boot: ${seconds} s, stub ${JSON.stringify(report.stub)}`);
    assert.equal(report.firmware, "uefi");
    assert.match(report.stub?.info ?? "", /^systemd-stub 2(5[7-9]|[6-9]\d)/, "a stub that knows profiles booted it");
    assert.equal(report.stub?.profile, 0, "the main profile booted");
    assert.ok(!report.cmdline.includes("talos.experimental.wipe"), report.cmdline);
    assert.deepEqual(report.errors, []);
    assert.equal(report.schematicId, id);
    assert.ok(report.cmdline.split(" ").includes("talos.platform=metal"), report.cmdline);
    // From Talos 1.10 (the unified installer) the installer's UKI carries the schematic's extra kernel args
    // (image-factory internal/profile/profile.go EnhanceFromSchematic; src/imager/profile.ts).
    assert.ok(report.cmdline.split(" ").includes("installer.boot=yes"), report.cmdline);
  });
});
