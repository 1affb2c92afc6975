import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  isCompatible,
  isValidExtensionVersion,
  parseExtensionManifest,
  parseExtensionServiceSpec,
  validateExtensionTree,
} from "../../src/talos/extension.ts";

const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

const manifestYaml = (constraint = ">= v1.8.0") => `version: v1alpha1
metadata:
  name: nvidia-driver-production
  version: "550.90.07-v1.8.2"
  author: Example Author
  description: |
    One paragraph.
  compatibility:
    talos:
      version: "${constraint}"
`;

async function extensionTree(files: Record<string, string>, manifest = manifestYaml()): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ext-test-"));
  temps.push(dir);
  await writeFile(join(dir, "manifest.yaml"), manifest);
  await mkdir(join(dir, "rootfs"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, "rootfs", path)), { recursive: true });
    await writeFile(join(dir, "rootfs", path), content, { mode: 0o644 });
  }
  return dir;
}

const badRequest = (pattern: RegExp) => (err: unknown) => {
  assert.ok(isAppError(err, "BadRequest"), String(err));
  assert.match(err.message, pattern);
  return true;
};

describe("extension manifest", () => {
  test("parses the reference example", () => {
    const manifest = parseExtensionManifest(manifestYaml(), "test");
    assert.equal(manifest.metadata.name, "nvidia-driver-production");
    assert.equal(manifest.metadata.version, "550.90.07-v1.8.2");
    assert.equal(manifest.metadata.description, "One paragraph.\n");
    assert.equal(manifest.metadata.compatibility?.talos?.version, ">= v1.8.0");
  });

  test("refuses a wrong version, missing name, multiple keys, alias bombs, huge input", () => {
    assert.throws(
      () => parseExtensionManifest("version: v1\nmetadata: {name: a, version: '1'}\n", "t"),
      badRequest(/unsupported version/),
    );
    assert.throws(
      () => parseExtensionManifest("version: v1alpha1\nmetadata: {version: '1'}\n", "t"),
      badRequest(/name is required/),
    );
    assert.throws(
      () => parseExtensionManifest("version: v1alpha1\nversion: v1alpha1\n", "t"),
      badRequest(/invalid YAML/),
    );
    const bomb = `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [${"*a,".repeat(60)}*a]\nc: [${"*b,".repeat(60)}*b]\n`;
    assert.throws(() => parseExtensionManifest(bomb, "t"), badRequest(/alias/i));
    assert.throws(() => parseExtensionManifest(`x: "${"a".repeat(70_000)}"`, "t"), badRequest(/larger than/));
  });

  test("compatibility constraints as Talos writes them", () => {
    const m = (c: string) => parseExtensionManifest(manifestYaml(c), "t");
    assert.equal(isCompatible(m(">= v1.8.0"), "v1.8.0"), true);
    assert.equal(isCompatible(m(">= v1.8.0"), "v1.7.9"), false);
    assert.equal(isCompatible(m(">= v1.8.0"), "v1.10.0-alpha.1"), true);
    // upstream judges the core version (pkg/machinery/extensions/validate.go coreVersion): pre-releases of
    // the first compatible version are accepted
    assert.equal(isCompatible(m(">= v1.8.0"), "v1.8.0-alpha.1"), true);
    assert.equal(isCompatible(m(">= v1.11.0"), "v1.11.0-beta.1"), true);
    assert.equal(isCompatible(m("< v1.11.0"), "v1.11.0-beta.1"), false);
    assert.equal(isCompatible(m(">=v1.8.0 <v1.10.0"), "v1.10.2"), false);
    assert.equal(isCompatible(m(">=v1.8.0 <v1.10.0"), "v1.9.1"), true);
    assert.equal(isCompatible(m("< v1.6.0"), "latest"), false);
    assert.equal(isCompatible(m(">= v1.6.0"), "latest"), true);
    assert.throws(() => m("not a range !!"), badRequest(/invalid Talos version constraint/));
  });

  test("version strings the upstream validator accepts", () => {
    for (const ok of ["1.2.3", "v1.2.3", "20240115", "20240115.1", "550.90.07-v1.8.2", "abc1234-v1.8.0", "v1.2"])
      assert.equal(isValidExtensionVersion(ok), true, ok);
    for (const bad of ["latest", "1", "2024-01-15"]) assert.equal(isValidExtensionVersion(bad), false, bad);
  });
});

describe("extension tree validation", () => {
  test("a module extension for 1.8 (lib/modules) and one for 1.10 (usr/lib/modules) pass", async () => {
    const old = await extensionTree({ "lib/modules/6.1.0/extras/x.ko": "ko", "usr/local/bin/x": "x" });
    assert.equal(
      (await validateExtensionTree(old, { talosVersion: "v1.8.2" })).metadata.name,
      "nvidia-driver-production",
    );
    const current = await extensionTree({ "usr/lib/modules/6.1.0/extras/x.ko": "ko", "usr/lib/firmware/a.bin": "fw" });
    await validateExtensionTree(current, { talosVersion: "v1.10.3" });
  });

  test("a path outside the version's allowed prefixes is refused, naming extension and path", async () => {
    const dir = await extensionTree({ "lib/modules/6.1.0/x.ko": "ko" });
    await assert.rejects(
      validateExtensionTree(dir, { talosVersion: "v1.10.0", name: "siderolabs/demo" }),
      badRequest(
        /^extension "siderolabs\/demo": \/lib\/modules\/6\.1\.0\/x\.ko is outside the paths allowed for Talos v1\.10\.0/,
      ),
    );
    const sneaky = await extensionTree({ "usr/localx/evil": "x" });
    await assert.rejects(validateExtensionTree(sneaky, { talosVersion: "v1.8.2" }), badRequest(/\/usr\/localx\/evil/));
  });

  test("upstream's current allow-list from 1.14 (talos pkg/machinery/extensions/extensions.go): ld.so files, NVIDIA's tools, nvme", async () => {
    const nvidia = await extensionTree({
      "usr/bin/nvidia-smi": "x",
      "usr/bin/nvidia-cdi-hook": "x",
      "etc/ld.so.conf": "x",
      "usr/bin/nvme": "x",
    });
    await validateExtensionTree(nvidia, { talosVersion: "v1.14.0" });
    await assert.rejects(validateExtensionTree(nvidia, { talosVersion: "v1.12.0" }), badRequest(/nvidia-smi|ld\.so/));
  });

  test("building assets: content problems are warnings, never refusals (upstream's imager does not check contents)", async () => {
    const nvidia = await extensionTree({ "usr/bin/nvidia-smi": "x", "usr/local/share/file": "x" });
    await chmod(join(nvidia, "rootfs/usr/local/share/file"), 0o666);
    const warnings: string[] = [];
    const manifest = await validateExtensionTree(nvidia, {
      talosVersion: "v1.12.0",
      contents: "warn",
      warn: (line) => warnings.push(line),
    });
    assert.equal(manifest.metadata.name, "nvidia-driver-production");
    assert.equal(warnings.length, 2);
    assert.match(warnings.join("\n"), /\/usr\/bin\/nvidia-smi is outside the paths allowed for Talos v1\.12\.0/);
    assert.match(warnings.join("\n"), /\/usr\/local\/share\/file is world-writable/);
    // the manifest is still judged strictly: an incompatible version is refused in either mode
    await assert.rejects(
      validateExtensionTree(nvidia, { talosVersion: "v1.7.0", contents: "warn" }),
      badRequest(/not compatible/),
    );
  });

  test("world-writable files and special files are refused", async () => {
    const dir = await extensionTree({ "usr/local/share/file": "x" });
    await chmod(join(dir, "rootfs/usr/local/share/file"), 0o666);
    await assert.rejects(
      validateExtensionTree(dir, { talosVersion: "v1.8.2" }),
      badRequest(/"nvidia-driver-production": \/usr\/local\/share\/file is world-writable/),
    );
    const fifoDir = await extensionTree({});
    await mkdir(join(fifoDir, "rootfs/usr/local"), { recursive: true });
    const { execFileSync } = await import("node:child_process");
    execFileSync("mkfifo", [join(fifoDir, "rootfs/usr/local/pipe")]);
    await assert.rejects(
      validateExtensionTree(fifoDir, { talosVersion: "v1.8.2" }),
      badRequest(/\/usr\/local\/pipe is a special file/),
    );
  });

  test("symlinks are judged by their own path and not followed", async () => {
    const dir = await extensionTree({ "usr/local/bin/tool": "t" });
    await symlink("/etc/shadow", join(dir, "rootfs/usr/local/bin/link"));
    await validateExtensionTree(dir, { talosVersion: "v1.8.2" });
    await symlink("/usr/local/bin/tool", join(dir, "rootfs/usr/evil"));
    await assert.rejects(validateExtensionTree(dir, { talosVersion: "v1.8.2" }), badRequest(/\/usr\/evil is outside/));
  });

  test("the image root holds exactly manifest.yaml and rootfs/", async () => {
    const dir = await extensionTree({});
    await writeFile(join(dir, "README"), "x");
    await assert.rejects(validateExtensionTree(dir, { talosVersion: "v1.8.2" }), badRequest(/unexpected "README"/));
  });

  test("an incompatible extension is refused", async () => {
    const dir = await extensionTree({ "usr/local/x": "x" }, manifestYaml("< v1.8.0"));
    await assert.rejects(
      validateExtensionTree(dir, { talosVersion: "v1.8.2" }),
      badRequest(/not compatible with Talos v1\.8\.2: requires < v1\.8\.0/),
    );
  });
});

describe("extension service spec", () => {
  test("parses a valid spec and checks name, entrypoint, depends and restart", () => {
    const spec = parseExtensionServiceSpec(
      "name: hello-world\ncontainer:\n  entrypoint: ./hello\n  args: [--port, 80]\ndepends:\n  - network: [addresses]\n  - service: cri\nrestart: untilSuccess\n",
      "hello-world.yaml",
    );
    assert.equal(spec.name, "hello-world");
    assert.deepEqual(spec.container.args, ["--port", "80"]);
    assert.deepEqual(spec.depends, [{ network: ["addresses"] }, { service: "cri" }]);
    assert.equal(spec.restart, "untilSuccess");
    assert.throws(
      () => parseExtensionServiceSpec("name: Hello\ncontainer: {entrypoint: x}\n"),
      badRequest(/name must match/),
    );
    assert.throws(() => parseExtensionServiceSpec("name: a\ncontainer: {}\n"), badRequest(/entrypoint is required/));
    assert.throws(
      () => parseExtensionServiceSpec("name: a\ncontainer: {entrypoint: x}\ndepends: [{service: a, path: b}]\n"),
      badRequest(/exactly one of/),
    );
    assert.throws(
      () => parseExtensionServiceSpec("name: a\ncontainer: {entrypoint: x}\nrestart: sometimes\n"),
      badRequest(/restart/),
    );
    assert.throws(
      () => parseExtensionServiceSpec("name: a\ncontainer: {entrypoint: x}\n", "b.yaml"),
      badRequest(/a\.yaml/),
    );
  });
});
