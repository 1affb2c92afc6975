import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  aptDownload,
  aptShow,
  aptUpdate,
  privateAptConfig,
  resolveDependency,
  splitDepends,
} from "../../src/tools/apt.ts";
import {
  bookwormSourceFor,
  bootAssetsCacheDir,
  fetchForeignPackage,
  foreignAptConfig,
} from "../../src/tools/debian-packages.ts";
import { dpkgDebExtract, dpkgDebFields, parseControlFields } from "../../src/tools/dpkg.ts";
import { depmod, depmodTool } from "../../src/tools/kmod.ts";
import { findTool } from "../../src/tools/run.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "debian-tools-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("deb822 parsing", () => {
  test("fields, continuation lines, first paragraph only", () => {
    const fields = parseControlFields("Package: a\nDescription: short\n long line\n .\nVersion: 1\n\nPackage: b\n");
    assert.deepEqual(fields, { Package: "a", Description: "short\nlong line\n.", Version: "1" });
  });
  test("Depends: first alternative, bare names", () => {
    assert.deepEqual(splitDepends("linux-image-6.1.0-56-amd64 (= 6.1.192-2), a | b, c:any (>= 1)"), [
      "linux-image-6.1.0-56-amd64",
      "a",
      "c",
    ]);
  });
});

describe("dpkg-deb", () => {
  test("extracts a package's files and reads its control fields", async () => {
    const root = join(dir, "pkg");
    await mkdir(join(root, "DEBIAN"), { recursive: true });
    await mkdir(join(root, "usr/share/demo"), { recursive: true });
    await writeFile(
      join(root, "DEBIAN/control"),
      "Package: demo-pkg\nVersion: 1.2-3\nArchitecture: all\nMaintainer: Test <t@example.com>\nDescription: demo\n",
    );
    await writeFile(join(root, "usr/share/demo/hello"), "hello\n");
    const deb = join(dir, "demo.deb");
    execFileSync("dpkg-deb", ["--build", "--root-owner-group", root, deb], { stdio: "ignore" });
    const out = join(dir, "out");
    await dpkgDebExtract(deb, out);
    assert.equal(await readFile(join(out, "usr/share/demo/hello"), "utf8"), "hello\n");
    const fields = await dpkgDebFields(deb);
    assert.equal(fields.Package, "demo-pkg");
    assert.equal(fields.Version, "1.2-3");
  });
});

describe("depmod", { skip: findTool(depmodTool) ? false : "kmod is not installed" }, () => {
  test("writes the module index files under <basedir>/lib/modules/<kver>", async () => {
    const base = join(dir, "modtree");
    await mkdir(join(base, "lib/modules/6.1.0-test/kernel"), { recursive: true });
    await depmod({ basedir: base, kernelVersion: "6.1.0-test" });
    const files = await readdir(join(base, "lib/modules/6.1.0-test"));
    for (const name of ["modules.dep", "modules.dep.bin", "modules.alias", "modules.symbols"])
      assert.ok(files.includes(name), name);
    await assert.rejects(depmod({ basedir: base, kernelVersion: "../x y" }), /bad kernel version/);
  });
});

describe("apt", () => {
  test("resolves linux-image-amd64 to the versioned kernel package it depends on", async () => {
    const kernel = await resolveDependency("linux-image-amd64", /^linux-image-\d+\.\d+\.\d+-\d+-amd64$/);
    const independent = execFileSync("apt-cache", ["depends", "linux-image-amd64"], { encoding: "utf8" });
    assert.match(independent, new RegExp(`Depends: ${kernel.replace(/[.]/g, "\\.")}\\n`));
    const info = await aptShow(kernel);
    assert.equal(info.package, kernel);
    assert.match(info.sha256, /^[0-9a-f]{64}$/);
  });

  test("an unknown package is NotFound", async () => {
    await assert.rejects(aptShow("no-such-package-xyz"), /not known to apt/);
  });

  test("downloads a .deb whose sha256 is the one apt-cache announced", async () => {
    const dest = join(dir, "debs");
    await mkdir(dest);
    const files = await aptDownload(["cpio"], dest);
    const path = files.get("cpio") as string;
    const sha = execFileSync("sha256sum", [path], { encoding: "utf8" }).split(" ")[0];
    assert.equal(sha, (await aptShow("cpio")).sha256);
  });
});

describe("another architecture's package", () => {
  test("grub-efi-arm64-bin for arm64 through an apt configuration listing arm64 only; the machine's apt untouched", async () => {
    const cacheDir = bootAssetsCacheDir();
    const pkg = await fetchForeignPackage("grub-efi-arm64-bin", "arm64", { cacheDir });
    assert.match(pkg.debPath, /grub-efi-arm64-bin_[^/]+_arm64\.deb$/);
    const fields = await dpkgDebFields(pkg.debPath);
    assert.equal(fields.Architecture, "arm64");
    assert.equal(fields.Package, "grub-efi-arm64-bin");
    const modinfo = await readFile(join(pkg.root, "usr/lib/grub/arm64-efi/modinfo.sh"), "utf8");
    assert.match(modinfo, /^grub_modinfo_target_cpu=arm64$/m);
    assert.match(modinfo, /^grub_modinfo_platform=efi$/m);
    // The machine lists no arm64 packages (no foreign architecture is added to it).
    assert.doesNotMatch(execFileSync("dpkg", ["--print-foreign-architectures"], { encoding: "utf8" }), /arm64/);
  });
  test("a malformed architecture is refused before apt runs", async () => {
    await assert.rejects(
      privateAptConfig(join(dir, "apt-bad"), { ...bookwormSourceFor("arm64"), architecture: "arm64 -o x=y" }),
      RangeError,
    );
  });
});

describe("the apt configuration for Debian 12's arm64 packages", () => {
  test("lists main, updates and security for arm64 only, and resolves arm64 packages", async () => {
    const cacheDir = bootAssetsCacheDir();
    const config = await foreignAptConfig(cacheDir, "arm64");
    const lines = (await readFile(join(cacheDir, "apt", "bookworm-arm64", "sources.list"), "utf8")).trim().split("\n");
    assert.deepEqual(
      lines.map((line) => line.split(" ").slice(-3, -1).join(" ")),
      [
        "http://deb.debian.org/debian bookworm",
        "http://deb.debian.org/debian bookworm-updates",
        "http://deb.debian.org/debian-security bookworm-security",
      ],
    );
    assert.match(
      execFileSync("apt-config", [...config.args, "dump"], { encoding: "utf8" }),
      /^APT::Architecture "arm64";$/m,
    );
    const show = () => aptShow("busybox-static", { config });
    const info = await show().catch(async () => {
      await aptUpdate({ config });
      return await show();
    });
    assert.equal(info.architecture, "arm64");
    assert.match(info.filename, /_arm64\.deb$/);
  });
  test("sources of different architectures cannot share a configuration", async () => {
    await assert.rejects(
      privateAptConfig(join(dir, "apt-mixed"), [bookwormSourceFor("arm64"), bookwormSourceFor("amd64")]),
      RangeError,
    );
  });
});
