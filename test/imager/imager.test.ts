// The imager against the test bed release, checked with independent tools: cpio -t for the early and the
// appended archives, unsquashfs -l for the extension layers, objdump -h for the UKI, tar for the installer.
// Expected values come from upstream's formats (siderolabs/talos pkg/imager; docs/formats.md), written here by hand.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { buildExtendedInitramfs, writeEmbeddedConfigExtension } from "../../src/imager/extensions.ts";
import { profileHash } from "../../src/imager/profile.ts";
import { schematicId } from "../../src/talos/schematic.ts";
import { objdumpSections } from "../../src/tools/binutils.ts";
import { listSquashfs } from "../../src/tools/squashfs.ts";
import { cpioArchives, cpioExtract, cpioNames } from "./cpio-members.ts";
import { openReleaseFixture, type ReleaseFixture } from "./fixture.ts";
import {
  buildAsset,
  compatibleExtensions,
  type PreparedVersion,
  prepareVersion,
  profileFor,
  testSchematic,
} from "./helpers.ts";

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

function run(command: string, args: string[], input?: Buffer, cwd?: string): Buffer {
  const result = spawnSync(command, args, { input, cwd, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

/** The output split at the base initramfs: what precedes it (early cpio) and what follows (the appended part). */
function splitAtBase(output: Buffer, base: Buffer): { early: Buffer; appended: Buffer } {
  const at = output.indexOf(base.subarray(0, 4096));
  assert.ok(at >= 0, "the base initramfs is in the output");
  assert.ok(output.subarray(at, at + base.length).equals(base), "the base initramfs is kept byte for byte");
  return { early: output.subarray(0, at), appended: output.subarray(at + base.length) };
}

describe("imager: kernel, initramfs, cmdline, UKI, installer from local inputs", () => {
  let fixture: ReleaseFixture;
  let v110: PreparedVersion;
  let v18: PreparedVersion;
  let out: string;
  const schematic = testSchematic(compatibleExtensions, {
    extraKernelArgs: ["-consoleblank", "testbed.extra=yes"],
    meta: [{ key: 0xc, value: "hello meta" }],
  });
  const id = schematicId(schematic);

  before(async () => {
    fixture = await openReleaseFixture(["v1.8.2", "v1.10.3"]);
    v110 = await prepareVersion(fixture, "v1.10.3", compatibleExtensions);
    v18 = await prepareVersion(fixture, "v1.8.2", compatibleExtensions);
    out = await mkdtemp(join(fixture.scratch, "out-"));
  });
  after(async () => {
    await fixture?.close();
  });

  test("initramfs (1.10): microcode prepended, base kept, a zstd cpio member per image appended (firmware, images, extensions.yaml)", async () => {
    const dir = join(out, "initramfs-110");
    await mkdir(dir);
    const built = await buildAsset(v110, schematic, "initramfs-amd64.xz", dir);
    console.log(`initramfs v1.10.3 with 4 extensions: ${built.seconds} s, ${built.size} bytes`);
    const output = await readFile(built.path);
    const base = await readFile(join(v110.inputs.imagerDir, "usr/install/amd64/initramfs.xz"));
    const { early, appended } = splitAtBase(output, base);

    // The early archive is uncompressed and holds only the concatenated microcode.
    assert.deepEqual(run("cpio", ["-t", "--quiet"], early).toString().trim().split("\n"), [
      "kernel",
      "kernel/x86",
      "kernel/x86/microcode",
      "kernel/x86/microcode/GenuineIntel.bin",
    ]);
    const ucode = await readFile(
      join(v110.inputs.extensions[1]?.dir as string, "rootfs/usr/lib/firmware/intel-ucode/06-55-04"),
    );
    const extracted = await mkdtemp(join(out, "early-"));
    run("cpio", ["-id", "--quiet"], early, extracted);
    assert.ok((await readFile(join(extracted, "kernel/x86/microcode/GenuineIntel.bin"))).equals(ucode));

    // The appended part: zstd (Talos ≥ 1.8), one cpio per member: the firmware, each of the six images
    // (four extensions, the schematic's, modules.dep), extensions.yaml (src/imager/initramfs-members.ts).
    assert.deepEqual([...appended.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
    const cpio = run("zstd", ["-dc"], appended);
    assert.equal(cpioArchives(cpio).length, 8);
    const names = cpioNames(cpio).sort();
    assert.deepEqual(names, [
      "0.sqsh",
      "1.sqsh",
      "2.sqsh",
      "3.sqsh",
      "4.sqsh",
      "extensions.yaml",
      "modules.dep.sqsh",
      "usr",
      "usr/lib",
      "usr/lib/firmware",
      "usr/lib/firmware/intel-ucode",
      "usr/lib/firmware/testbed",
      "usr/lib/firmware/testbed/README",
    ]);
    const tree = await mkdtemp(join(out, "appended-"));
    cpioExtract(cpio, tree);

    const kver = fixture.packages.kernel.release;
    const list = async (image: string) => (await listSquashfs(join(tree, image))).map((e) => e.path);
    assert.ok((await list("0.sqsh")).includes(`/usr/lib/modules/${kver}/kernel/drivers/net/dummy.ko`));
    // The firmware left the ucode extension's layer for the initramfs itself.
    assert.ok(!(await list("1.sqsh")).some((p) => p.startsWith("/usr/lib/firmware")));
    assert.ok((await list("2.sqsh")).includes("/usr/local/etc/containers/testbed-hello.yaml"));
    assert.ok((await list("3.sqsh")).includes("/usr/lib/ld-linux-x86-64.so.2"));
    assert.deepEqual(
      (await listSquashfs(join(tree, "4.sqsh"))).filter((e) => e.mode.startsWith("-")),
      [{ path: `/usr/local/share/schematic/${id}`, mode: "-rw-r--r--", owner: "root/root", size: 0 }],
    );
    const depLayer = await listSquashfs(join(tree, "modules.dep.sqsh"));
    assert.ok(depLayer.some((e) => e.path === `/usr/lib/modules/${kver}/modules.dep`));
    assert.ok(depLayer.every((e) => e.owner === "root/root"));
    const modulesDep = run("unsquashfs", [
      "-cat",
      join(tree, "modules.dep.sqsh"),
      `usr/lib/modules/${kver}/modules.dep`,
    ]);
    assert.match(modulesDep.toString(), /^kernel\/drivers\/net\/dummy\.ko:/m);
    assert.match(modulesDep.toString(), /squashfs\.ko:/);

    // extensions.yaml as yaml.v3 prints upstream's Config{Layers: [{Image, Metadata}]}.
    const yaml = await readFile(join(tree, "extensions.yaml"), "utf8");
    assert.ok(yaml.startsWith("layers:\n    - image: 0.sqsh\n      metadata:\n        name: testbed-dummy\n"), yaml);
    const canonical = `customization:\n    extraKernelArgs:\n        - -consoleblank\n        - testbed.extra=yes\n    meta:\n        - key: 12\n          value: hello meta\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/testbed-dummy\n            - siderolabs/testbed-ucode\n            - siderolabs/testbed-hello\n            - siderolabs/testbed-glibc\n`;
    const indented = canonical
      .trimEnd()
      .split("\n")
      .map((line) => `            ${line}`)
      .join("\n");
    assert.ok(
      yaml.endsWith(
        [
          "    - image: 4.sqsh",
          "      metadata:",
          "        name: schematic",
          `        version: ${id}`,
          "        author: Image Factory (https://localhost/)",
          // upstream's text (image-factory internal/artifacts/schematic.go), its last word the extension's name
          "        description: Virtual extension which specifies the schematic of the image built with schematic.",
          "        compatibility:",
          "            talos:",
          "                version: '>= 1.0.0'",
          "        extraInfo: |",
          indented,
          "    - image: modules.dep.sqsh",
          "      metadata:",
          "        name: modules.dep",
          `        version: ${kver}`,
          "        author: Talos Machinery",
          "        description: Combined modules.dep for all extensions",
          "        compatibility:",
          "            talos:",
          '                version: ""',
          "",
        ].join("\n"),
      ),
      yaml,
    );
  });

  test("initramfs (1.8): lib/modules and lib/firmware, zstd layers", async () => {
    const dir = join(out, "initramfs-18");
    await mkdir(dir);
    const built = await buildAsset(v18, schematic, "initramfs-amd64.xz", dir);
    const { appended } = splitAtBase(
      await readFile(built.path),
      await readFile(join(v18.inputs.imagerDir, "usr/install/amd64/initramfs.xz")),
    );
    const cpio = run("zstd", ["-dc"], appended);
    const names = cpioNames(cpio);
    assert.ok(names.includes("lib/firmware/testbed/README"));
    const tree = await mkdtemp(join(out, "appended18-"));
    cpioExtract(cpio, tree);
    const kver = fixture.packages.kernel.release;
    const dep = (await listSquashfs(join(tree, "modules.dep.sqsh"))).map((e) => e.path);
    assert.ok(dep.includes(`/lib/modules/${kver}/modules.dep`));
    assert.match(run("unsquashfs", ["-s", join(tree, "0.sqsh")]).toString(), /Compression zstd/);
  });

  test("the incompatible extension is refused, naming it; nothing is left behind", async () => {
    const withLegacy = await prepareVersion(fixture, "v1.10.3", ["testbed-dummy", "testbed-legacy"]);
    const dir = join(out, "refused");
    await mkdir(dir);
    await assert.rejects(
      buildAsset(withLegacy, testSchematic(["testbed-dummy", "testbed-legacy"]), "initramfs-amd64.xz", dir),
      (err: unknown) =>
        isAppError(err, "BadRequest") && /testbed-legacy/.test(err.message) && /not compatible/.test(err.message),
    );
    assert.deepEqual(await readdir(dir), []);
  });

  test("an extension with a path outside the allowed ones is built with a warning naming it (upstream's imager checks no contents)", async () => {
    const prepared = await prepareVersion(fixture, "v1.10.3", ["testbed-hello"]);
    const extension = prepared.inputs.extensions[0] as { dir: string };
    const tampered = join(out, "tampered");
    await cp(extension.dir, tampered, { recursive: true, verbatimSymlinks: true });
    await mkdir(join(tampered, "rootfs/etc"), { recursive: true });
    await writeFile(join(tampered, "rootfs/etc/evil.conf"), "x");
    extension.dir = tampered;
    const lines: string[] = [];
    const built = await buildAsset(prepared, testSchematic(["testbed-hello"]), "initramfs-amd64.xz", out, {
      log: (line) => lines.push(line),
    });
    assert.ok(built.size > 0);
    const warning = lines.find((line) => line.startsWith("warning: "));
    assert.match(warning ?? "", /siderolabs\/testbed-hello.*\/etc\/evil\.conf is outside the paths allowed/);
  });

  test("merging module trees never writes through an extension's symlink", async () => {
    const prepared = await prepareVersion(fixture, "v1.10.3", ["testbed-dummy", "testbed-hello"]);
    const kver = fixture.packages.kernel.release;
    const outside = await mkdtemp(join(out, "outside-"));
    const first = prepared.inputs.extensions[0] as { dir: string };
    const second = prepared.inputs.extensions[1] as { dir: string };
    for (const [extension, name] of [
      [first, "hostile-0"],
      [second, "hostile-1"],
    ] as const) {
      const copy = join(out, name);
      await cp(extension.dir, copy, { recursive: true, verbatimSymlinks: true });
      extension.dir = copy;
    }
    // The first extension has a directory where the second has a link out of the tree.
    const moduleDir = (dir: string) => join(dir, `rootfs/usr/lib/modules/${kver}`);
    await mkdir(join(moduleDir(first.dir), "x"), { recursive: true });
    await writeFile(join(moduleDir(first.dir), "x/evil.ko"), "not a module");
    await mkdir(moduleDir(second.dir), { recursive: true });
    await symlink(outside, join(moduleDir(second.dir), "x"));
    const dir = join(out, "hostile-out");
    await mkdir(dir);
    await buildAsset(prepared, testSchematic(["testbed-dummy", "testbed-hello"]), "initramfs-amd64.xz", dir);
    assert.deepEqual(await readdir(outside), []);
  });

  test("depmod uses upstream's configuration only: extras/ before anything else, not the host's default search order (hack/extra-modules.conf)", async () => {
    const prepared = await prepareVersion(fixture, "v1.10.3", ["testbed-dummy", "testbed-hello"]);
    const kver = fixture.packages.kernel.release;
    const first = prepared.inputs.extensions[0] as { dir: string };
    const second = prepared.inputs.extensions[1] as { dir: string };
    const copy = join(out, "extras-hello");
    await cp(second.dir, copy, { recursive: true, verbatimSymlinks: true });
    second.dir = copy;
    const moduleDir = (dir: string) => join(dir, `rootfs/usr/lib/modules/${kver}`);
    // The same module in updates/ (first in depmod's default search order) and in extras/.
    for (const where of ["extras", "updates"]) {
      await mkdir(join(moduleDir(copy), where), { recursive: true });
      await cp(join(moduleDir(first.dir), "kernel/drivers/net/dummy.ko"), join(moduleDir(copy), where, "dummy.ko"));
    }
    const dir = join(out, "extras-out");
    await mkdir(dir);
    const built = await buildAsset(
      prepared,
      testSchematic(["testbed-dummy", "testbed-hello"]),
      "initramfs-amd64.xz",
      dir,
    );
    const { appended } = splitAtBase(
      await readFile(built.path),
      await readFile(join(prepared.inputs.imagerDir, "usr/install/amd64/initramfs.xz")),
    );
    const tree = await mkdtemp(join(out, "extras-tree-"));
    cpioExtract(run("zstd", ["-dc"], appended), tree);
    const modulesDep = run("unsquashfs", [
      "-cat",
      join(tree, "modules.dep.sqsh"),
      `usr/lib/modules/${kver}/modules.dep`,
    ]);
    assert.match(modulesDep.toString(), /^extras\/dummy\.ko:/m);
    assert.doesNotMatch(modulesDep.toString(), /^(kernel\/drivers\/net|updates)\/dummy\.ko:/m);
  });

  test("an embedded machine configuration: refused before 1.12 with upstream's words; from 1.12 the embedded-config extension after the schematic's (pkg/imager/embed.go)", async () => {
    const config = "version: v1alpha1\nmachine:\n  type: worker\n";
    const embedding = testSchematic(["testbed-hello"], { embeddedMachineConfiguration: config });
    // image-factory internal/profile/profile.go: kinds other than cmdline and kernel, below 1.12
    assert.throws(
      () => profileFor(v110, embedding, "initramfs-amd64.xz"),
      (err: unknown) =>
        isAppError(err, "BadRequest") &&
        err.message === "embedding configuration is not supported for Talos version v1.10.3",
    );
    assert.equal(profileFor(v110, embedding, "cmdline-metal-amd64").kind, "cmdline");

    // The extension itself, as Talos' BuildEmbeddedConfigExtension writes it.
    const dir = await mkdtemp(join(out, "embedded-"));
    await writeEmbeddedConfigExtension(join(dir, "ext"), config);
    const sha = createHash("sha256").update(config).digest("hex");
    assert.equal(
      await readFile(join(dir, "ext", "manifest.yaml"), "utf8"),
      [
        "version: v1alpha1",
        "metadata:",
        "    name: embedded-config",
        `    version: ${sha}`,
        "    author: Imager",
        "    description: Virtual extension which embeds the machine configuration.",
        "    compatibility:",
        "        talos:",
        "            version: '>= 1.0.0'",
        "",
      ].join("\n"),
    );
    // In the initramfs: after the schematic extension, its file mode 0400.
    const prepared = await prepareVersion(fixture, "v1.10.3", ["testbed-hello"]);
    const initramfs = join(dir, "initramfs.xz");
    const work = join(dir, "work");
    await mkdir(work);
    const result = await buildExtendedInitramfs({
      talosVersion: "v1.10.3",
      baseInitramfs: join(prepared.inputs.imagerDir, "usr/install/amd64/initramfs.xz"),
      extensions: prepared.inputs.extensions,
      schematic: { id: schematicId(embedding), author: "Image Factory (https://localhost/)" },
      embeddedConfig: config,
      outPath: initramfs,
      workDir: work,
    });
    assert.deepEqual(
      result.layers.map((l) => [l.image, l.metadata.name]),
      [
        ["0.sqsh", "testbed-hello"],
        ["1.sqsh", "schematic"],
        ["2.sqsh", "embedded-config"],
      ],
    );
    const { appended } = splitAtBase(
      await readFile(initramfs),
      await readFile(join(prepared.inputs.imagerDir, "usr/install/amd64/initramfs.xz")),
    );
    const tree = await mkdtemp(join(dir, "tree-"));
    cpioExtract(run("zstd", ["-dc"], appended), tree);
    const files = (await listSquashfs(join(tree, "2.sqsh"))).filter((e) => e.mode.startsWith("-"));
    assert.deepEqual(files, [
      { path: "/usr/local/etc/talos/config.yaml", mode: "-r--------", owner: "root/root", size: config.length },
    ]);
  });

  test("kernel is the imager's vmlinuz; cmdline follows the reference (extra arg, removed default, META)", async () => {
    const dir = join(out, "plain");
    await mkdir(dir);
    const kernel = await buildAsset(v110, schematic, "kernel-amd64", dir);
    assert.equal(
      sha256(await readFile(kernel.path)),
      sha256(await readFile(join(v110.inputs.imagerDir, "usr/install/amd64/vmlinuz"))),
    );
    const meta = Buffer.from("0xc=hello meta").toString("base64");
    const cmdline110 = await buildAsset(v110, schematic, "cmdline-metal-amd64", dir);
    assert.equal(
      await readFile(cmdline110.path, "utf8"),
      `talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1 talos.environment=INSTALLER_META_BASE64=${meta} testbed.extra=yes`,
    );
    const cmdline18 = await buildAsset(v18, schematic, "cmdline-metal-amd64", dir);
    assert.equal(
      await readFile(cmdline18.path, "utf8"),
      `talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 talos.environment=INSTALLER_META_BASE64=${meta} testbed.extra=yes`,
    );
  });

  // Talos ≥ 1.10 (internal/pkg/uki uki.go, generate.go): .splash after .uname, and the "main" profile last;
  // a UKI download gets no reset profile (pkg/imager/imager.go buildUKI adds those to ISOs, disks, installers).
  test("UKI: the stub's sections, then .osrel .cmdline .uname .splash .linux .initrd .profile (objdump -h)", async () => {
    const dir = join(out, "uki");
    await mkdir(dir);
    const uki = await buildAsset(v110, schematic, "metal-amd64-uki.efi", dir);
    console.log(`UKI v1.10.3: ${uki.seconds} s, ${uki.size} bytes`);
    const sections = await objdumpSections(uki.path);
    const names = sections.map((s) => s.name);
    assert.deepEqual(names.slice(names.indexOf(".osrel")), [
      ".osrel",
      ".cmdline",
      ".uname",
      ".splash",
      ".linux",
      ".initrd",
      ".profile",
    ]);
    assert.ok(names.indexOf(".sdmagic") < names.indexOf(".osrel"), "the stub's sections come first");
    assert.ok(names.includes(".sbat"));
    const dump = (section: string) => {
      const file = join(dir, `${section.slice(1)}.bin`);
      run("objcopy", ["-O", "binary", `--only-section=${section}`, uki.path, file]);
      return readFile(file);
    };
    const cmdline = (await dump(".cmdline")).toString();
    assert.match(cmdline, /^talos\.platform=metal console=tty0 /);
    assert.match(cmdline, / testbed\.extra=yes$/);
    assert.doesNotMatch(cmdline, /consoleblank/);
    assert.equal((await dump(".uname")).toString(), fixture.packages.kernel.release);
    assert.match((await dump(".osrel")).toString(), /^NAME="Talos"\nID=talos\nVERSION_ID=v1\.10\.3\n/);
    assert.equal((await dump(".profile")).toString(), "ID=main");
    assert.equal((await dump(".splash")).subarray(0, 2).toString(), "BM");
    const linux = sections.find((s) => s.name === ".linux");
    const vmlinuz = await readFile(join(v110.inputs.imagerDir, "usr/install/amd64/vmlinuz"));
    assert.equal(linux?.size, vmlinuz.length);
  });

  // Talos 1.5–1.9 (internal/pkg/secureboot/uki/uki.go Build, assemble.go): objcopy --add-section in the
  // generators' order — .osrel, .cmdline, .initrd, .splash, .uname, (.sbat stays the stub's), .pcrpkey, then
  // .linux last "to account for decompression"; no .profile.
  test("UKI (1.8): the stub's sections, then .osrel .cmdline .initrd .splash .uname .linux (objdump -h)", async () => {
    const dir = join(out, "uki-1.8");
    await mkdir(dir);
    const uki = await buildAsset(v18, schematic, "metal-amd64-uki.efi", dir);
    console.log(`UKI v1.8.2: ${uki.seconds} s, ${uki.size} bytes`);
    const sections = await objdumpSections(uki.path);
    const names = sections.map((s) => s.name);
    assert.deepEqual(names.slice(names.indexOf(".osrel")), [
      ".osrel",
      ".cmdline",
      ".initrd",
      ".splash",
      ".uname",
      ".linux",
    ]);
    assert.ok(names.indexOf(".sdmagic") < names.indexOf(".osrel"), "the stub's sections come first");
    const file = await readFile(uki.path);
    const content = (name: string) => {
      const s = sections.find((x) => x.name === name);
      assert.ok(s !== undefined, name);
      return file.subarray(s.fileOffset, s.fileOffset + s.size);
    };
    assert.match(content(".osrel").toString(), /^NAME="Talos"\nID=talos\nVERSION_ID=v1\.8\.2\n/);
    assert.equal(content(".uname").toString(), fixture.packages.kernel.release);
    assert.deepEqual(content(".linux"), await readFile(join(v18.inputs.imagerDir, "usr/install/amd64/vmlinuz")));
    // assemble.go: the first VMA is the stub's last section end (ImageBase included, as objdump shows it)
    // rounded up to 512 bytes, each next one the previous end rounded up likewise. The test bed's pre-1.10
    // stub (systemd 252) has a 512-byte SectionAlignment, so the project's placement gives the same addresses.
    const first = names.indexOf(".osrel");
    const last = sections[first - 1] as (typeof sections)[number];
    let vma = Math.ceil((Number(last.vma) + last.size) / 0x200) * 0x200;
    for (const s of sections.slice(first)) {
      assert.equal(Number(s.vma), vma, `${s.name} VMA`);
      vma = Math.ceil((vma + s.size) / 0x200) * 0x200;
    }
  });

  test("installer: base layer + artifacts layer in each version's layout, config for linux/amd64", async () => {
    for (const [prepared, artifacts] of [
      [v110, ["usr/install/amd64/systemd-boot.efi", "usr/install/amd64/vmlinuz.efi"]],
      [v18, ["usr/install/amd64/initramfs.xz", "usr/install/amd64/vmlinuz"]],
    ] as const) {
      const dir = join(out, `installer-${prepared.version}`);
      await mkdir(dir);
      const installer = await buildAsset(prepared, schematic, "installer-amd64.tar", dir);
      console.log(`installer ${prepared.version}: ${installer.seconds} s, ${installer.size} bytes`);
      const unpacked = join(dir, "unpacked");
      await mkdir(unpacked);
      run("tar", ["-xf", installer.path, "-C", unpacked]);
      const [entry] = JSON.parse(await readFile(join(unpacked, "manifest.json"), "utf8")) as {
        Config: string;
        Layers: string[];
        RepoTags: string[];
      }[];
      // image-factory's fake reference: <installer component>:<version> (internal/artifacts/fetch.go)
      const component = prepared.version === "v1.10.3" ? "installer-base" : "installer";
      assert.deepEqual(entry?.RepoTags, [`siderolabs/${component}:${prepared.version}`]);
      assert.equal(entry?.Layers.length, 2);
      assert.equal(entry?.Layers[0], `blobs/sha256/${prepared.inputs.installerBase?.layers[0]?.digest.slice(7)}`);
      const files = run("tar", ["-tzf", join(unpacked, entry?.Layers[1] as string)])
        .toString()
        .trim()
        .split("\n")
        .filter((p) => !p.endsWith("/"));
      assert.deepEqual(files.sort(), [...artifacts]);
      // Talos' imager writes the artifacts with mode 0 (pkg/imager/out.go: no ImageMode), in path order.
      const listing = run("tar", ["-tvzf", join(unpacked, entry?.Layers[1] as string)])
        .toString()
        .trim()
        .split("\n")
        .filter((line) => line.startsWith("-"));
      assert.deepEqual(
        listing.map((line) => line.split(/\s+/)[0]),
        artifacts.map(() => "----------"),
      );
      const config = JSON.parse(await readFile(join(unpacked, entry?.Config as string), "utf8"));
      assert.equal(config.architecture, "amd64");
      assert.equal(config.os, "linux");
      assert.equal(config.rootfs.diff_ids.length, 2);
      assert.deepEqual(config.config, { Entrypoint: ["/bin/installer"] });
    }
  });

  test("reproducible under SOURCE_DATE_EPOCH: initramfs, UKI and installer twice give the same bytes", async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1700000000";
    try {
      const digests: Record<string, string[]> = {};
      for (const round of [1, 2]) {
        const dir = join(out, `repro-${round}`);
        await mkdir(dir);
        for (const path of ["initramfs-amd64.xz", "metal-amd64-uki.efi", "installer-amd64.tar"]) {
          const built = await buildAsset(v110, schematic, path, dir);
          digests[path] = [...(digests[path] ?? []), sha256(await readFile(built.path))];
        }
      }
      for (const [path, [first, second]] of Object.entries(digests)) assert.equal(first, second, path);
      // The pinned time is in the installer's config.
      const unpacked = join(out, "repro-1", "unpacked");
      await mkdir(unpacked);
      run("tar", ["-xf", join(out, "repro-1", "installer-amd64.tar"), "-C", unpacked]);
      const [entry] = JSON.parse(await readFile(join(unpacked, "manifest.json"), "utf8"));
      const config = JSON.parse(await readFile(join(unpacked, entry.Config), "utf8"));
      assert.equal(config.created, "2023-11-14T22:13:20Z");
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  test("profile: normalized per kind, hashed with the salt, checked against the schematic", async () => {
    const initramfs = profileFor(v110, schematic, "initramfs-amd64.xz");
    assert.deepEqual(initramfs.schematic.extraKernelArgs, [], "initramfs carries no kernel args");
    assert.equal(initramfs.inputs.extensions.length, 4);
    const kernel = profileFor(v110, schematic, "kernel-amd64");
    assert.deepEqual(kernel.inputs.extensions, []);
    assert.equal(kernel.schematic.id, undefined);
    // The kernel does not depend on the schematic: another schematic, same key.
    assert.equal(profileHash(kernel), profileHash(profileFor(v110, testSchematic([]), "kernel-amd64")));
    // image-factory internal/profile/profile.go EnhanceFromSchematic: installers and UKIs take the extra
    // args (with Secure Boot or from Talos 1.10, the unified installer), never META
    const uki = profileFor(v110, schematic, "metal-amd64-uki.efi");
    assert.deepEqual(uki.schematic.meta, []);
    assert.deepEqual(uki.schematic.extraKernelArgs, schematic.customization.extraKernelArgs);
    const installer110 = profileFor(v110, schematic, "installer-amd64.tar");
    assert.deepEqual(installer110.schematic.extraKernelArgs, schematic.customization.extraKernelArgs);
    assert.deepEqual(installer110.schematic.meta, []);
    assert.deepEqual(profileFor(v18, schematic, "installer-amd64.tar").schematic.extraKernelArgs, []);
    assert.deepEqual(profileFor(v110, schematic, "cmdline-metal-amd64").schematic.meta, [
      { key: 0xc, value: "hello meta" },
    ]);
    assert.notEqual(profileHash(uki), profileHash(profileFor(v110, schematic, "nocloud-amd64-uki.efi")));
    // An extension digest is part of the key.
    const changed = {
      ...initramfs,
      inputs: {
        ...initramfs.inputs,
        extensions: initramfs.inputs.extensions.map((e, i) =>
          i === 0 ? { ...e, digest: `sha256:${"0".repeat(64)}` } : e,
        ),
      },
    };
    assert.notEqual(profileHash(changed), profileHash(initramfs));
    assert.match(profileHash(initramfs), /^[0-9a-f]{64}$/);
    // Installers before 1.10 are platform-independent.
    assert.equal(
      profileHash(profileFor(v18, schematic, "installer-amd64.tar")),
      profileHash(profileFor(v18, schematic, "metal-installer-amd64.tar")),
    );
    // ISOs and disk images are built too since part 2 (media.test.ts checks their profiles).
    assert.equal(profileFor(v110, schematic, "metal-amd64.iso").kind, "iso");
    // Without signing keys a Secure Boot asset is refused, leaving nothing behind.
    const dir = join(out, "secureboot");
    await mkdir(dir);
    await assert.rejects(
      buildAsset(v110, schematic, "metal-amd64-secureboot-uki.efi", dir),
      (err: unknown) => isAppError(err, "BadRequest") && /secure boot is disabled/.test(err.message),
    );
    assert.deepEqual(await readdir(dir), []);
    await rm(dir, { recursive: true });
  });
});
