// SELinux labels in extension squashfs images, built with the real tools: an extension image whose tar
// entries carry PAX `SCHILY.xattr.security.selinux` records (and a `SCHILY.xattr.user.foo` one that must
// not survive) is flattened as the factory does it, then built into the initramfs for Talos 1.13 and 1.12.
// The images are unpacked with squashfs-tools 4.6's unsquashfs (xattrs on) and read with getfattr (Debian's
// attr). Upstream: talos pkg/archiver/untar.go records the labels, internal/pkg/extensions/compress.go
// xattrPseudoFlags passes them (from 1.13), pkg/imager/embed.go labels the embedded config.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { factoryLabellingMksquashfs } from "../../src/factory/assets/labelling-mksquashfs.ts";
import { buildExtendedInitramfs, extensionManifestYaml } from "../../src/imager/extensions.ts";
import type { LocalExtension } from "../../src/imager/inputs.ts";
import { flattenLayers } from "../../src/oci/flatten.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { mksquashfs } from "../../src/tools/squashfs.ts";
import { rawTar } from "../oci/raw-tar.ts";
import { cpioExtract } from "./cpio-members.ts";

function run(command: string, args: string[], options: { input?: Buffer; cwd?: string } = {}): string {
  const result = spawnSync(command, args, { ...options, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr?.toString()}`);
  return result.stdout.toString();
}

const selinux = (type: string) => ({ "SCHILY.xattr.security.selinux": `system_u:object_r:${type}:s0` });

/** `getfattr` over an unpacked image: path ("." the root) → every xattr as name=value. */
function xattrsOf(dir: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let current = "";
  for (const line of run("getfattr", ["-R", "-h", "-d", "-m", "-", "."], { cwd: dir }).split("\n")) {
    if (line.startsWith("# file: ")) current = line.slice("# file: ".length);
    else if (line.includes("=")) out[current] = [...(out[current] ?? []), line];
  }
  return out;
}

describe("extension squashfs: SELinux labels from the tar, by version", () => {
  let scratch: string;
  let extension: LocalExtension;
  let base: Buffer;
  const labelling = factoryLabellingMksquashfs(bootAssetsCacheDir(), (line) => console.log(line));
  let unsquashfs = "";

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "selinux-labels-"));
    const manifest = extensionManifestYaml({
      name: "labelled",
      version: "1.0.0",
      author: "test",
      description: "labelled files",
      compatibility: { talos: { version: ">= v1.0.0" } },
    });
    const layers = [
      await rawTar([
        { name: "manifest.yaml", content: manifest },
        { name: "rootfs/", type: "directory", pax: selinux("root_t") },
        { name: "rootfs/usr/", type: "directory" },
        { name: "rootfs/usr/local/", type: "directory" },
        { name: "rootfs/usr/local/bin/", type: "directory", pax: selinux("bin_t") },
        {
          name: "rootfs/usr/local/bin/hello",
          content: "hello\n",
          pax: { ...selinux("bin_t"), "SCHILY.xattr.user.foo": "bar" },
        },
        { name: "rootfs/usr/local/bin/plain", content: "plain\n" },
        { name: "rootfs/usr/local/bin/user-only", content: "u\n", pax: { "SCHILY.xattr.user.foo": "bar" } },
        { name: "rootfs/usr/local/bin/replaced", content: "old\n", pax: selinux("old_t") },
        // Firmware leaves the extension for the initramfs: its label goes with it (not in the image).
        { name: "rootfs/usr/lib/firmware/blob.bin", content: "fw\n", pax: selinux("firmware_t") },
      ]),
      await rawTar([
        { name: "rootfs/usr/local/bin/replaced", content: "new\n", pax: selinux("new_t") },
        { name: "rootfs/usr/local/bin/link", type: "symlink", linkname: "hello", pax: selinux("link_t") },
      ]),
    ];
    const dir = join(scratch, "extension");
    const stats = await flattenLayers(
      layers.map((l) => Readable.from([l])),
      dir,
    );
    extension = {
      name: "example.org/labelled",
      dir,
      digest: `sha256:${"0".repeat(64)}`,
      selinuxLabels: stats.selinuxLabels,
    };
    // Any bytes do as the base initramfs: nothing reads it without kernel modules in the extensions.
    base = Buffer.from("base initramfs stand-in\n".repeat(200));
    await writeFile(join(scratch, "base.xz"), base);
    const mksquashfs = await labelling();
    assert.ok(mksquashfs !== undefined, "squashfs-tools ≥ 4.6 is on PATH or could be fetched from trixie");
    unsquashfs = mksquashfs === "mksquashfs" ? "unsquashfs" : join(dirname(mksquashfs), "unsquashfs");
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  /** Builds for `version` with an embedded config; returns each image's xattrs by image name. */
  async function build(version: string, log: string[]): Promise<Record<string, Record<string, string[]>>> {
    const dir = await mkdtemp(join(scratch, `${version}-`));
    const work = join(dir, "work");
    await mkdir(work);
    const out = join(dir, "initramfs.xz");
    await buildExtendedInitramfs({
      talosVersion: version,
      baseInitramfs: join(scratch, "base.xz"),
      extensions: [extension],
      schematic: { id: "a".repeat(64), author: "test" },
      embeddedConfig: "version: v1alpha1\n",
      outPath: out,
      workDir: work,
      labellingMksquashfs: labelling,
      log: (line) => log.push(line),
    });
    const output = await readFile(out);
    assert.ok(output.subarray(0, base.length).equals(base));
    const tree = join(dir, "tree");
    await mkdir(tree);
    const cpio = spawnSync("zstd", ["-dc"], { input: output.subarray(base.length), maxBuffer: 64 * 1024 * 1024 });
    cpioExtract(cpio.stdout, tree);
    const images: Record<string, Record<string, string[]>> = {};
    for (const name of (await readdir(tree)).filter((n) => n.endsWith(".sqsh")).sort()) {
      const unpacked = join(dir, name.replace(".sqsh", ""));
      run(unsquashfs, ["-d", unpacked, "-n", join(tree, name)]);
      images[name] = xattrsOf(unpacked);
    }
    return images;
  }

  test("1.13: the topmost entry's label on each file still in the extension, nothing else; the embedded config labelled", async () => {
    const log: string[] = [];
    // An xattr on disk (none of the flattened files has one) is excluded too: `-xattrs-exclude '.*'`.
    const plain = join(extension.dir, "rootfs/usr/local/bin/plain");
    run("setfattr", ["-n", "user.foo", "-v", "on-disk", plain]);
    const images = await build("v1.13.0", log).finally(() => run("setfattr", ["-x", "user.foo", plain]));
    assert.deepEqual(images, {
      "0.sqsh": {
        ".": ['security.selinux="system_u:object_r:root_t:s0"'],
        "usr/local/bin": ['security.selinux="system_u:object_r:bin_t:s0"'],
        "usr/local/bin/hello": ['security.selinux="system_u:object_r:bin_t:s0"'],
        "usr/local/bin/link": ['security.selinux="system_u:object_r:link_t:s0"'],
        "usr/local/bin/replaced": ['security.selinux="system_u:object_r:new_t:s0"'],
      },
      "1.sqsh": {},
      "2.sqsh": { "usr/local/etc/talos/config.yaml": ['security.selinux="system_u:object_r:system_state_t:s0"'] },
    });
    assert.ok(!log.some((line) => line.startsWith("warning: no mksquashfs")));
  });

  test("many labels go in a pseudo file (-pf) instead of arguments: the same image", async () => {
    const dir = await mkdtemp(join(scratch, "pf-"));
    const command = (await labelling()) as string;
    const labels = new Map([
      ["/", "system_u:object_r:root_t:s0"],
      ["usr/local/bin/hello", "system_u:object_r:bin_t:s0"],
    ]);
    const options = { compression: "zstd" as const, level: 18, mtime: 0, command, selinuxLabels: labels };
    await mksquashfs(join(extension.dir, "rootfs"), join(dir, "args.sqsh"), options);
    await mksquashfs(join(extension.dir, "rootfs"), join(dir, "file.sqsh"), { ...options, pseudoArgBytes: 0 });
    assert.ok((await readFile(join(dir, "args.sqsh"))).equals(await readFile(join(dir, "file.sqsh"))));
    assert.deepEqual((await readdir(dir)).sort(), ["args.sqsh", "file.sqsh"], "the pseudo file is removed");
    run(unsquashfs, ["-d", join(dir, "out"), "-n", join(dir, "file.sqsh")]);
    assert.deepEqual(xattrsOf(join(dir, "out")), {
      ".": ['security.selinux="system_u:object_r:root_t:s0"'],
      "usr/local/bin/hello": ['security.selinux="system_u:object_r:bin_t:s0"'],
    });
  });

  test("1.13: a label mksquashfs cannot take (a newline) is a 400 naming the extension and the path; 1.12 builds it", async () => {
    const dir = await mkdtemp(join(scratch, "bad-"));
    const bad: LocalExtension = {
      ...extension,
      selinuxLabels: new Map([["rootfs/usr/local/bin/plain", "a\nb"]]),
    };
    const attempt = async (talosVersion: string) => {
      const work = await mkdtemp(join(dir, "work-"));
      await buildExtendedInitramfs({
        talosVersion,
        baseInitramfs: join(scratch, "base.xz"),
        extensions: [bad],
        schematic: { id: "a".repeat(64), author: "test" },
        outPath: join(work, "initramfs.xz"),
        workDir: work,
        labellingMksquashfs: labelling,
      });
    };
    await assert.rejects(
      attempt("v1.13.0"),
      (err: unknown) =>
        isAppError(err, "BadRequest") &&
        err.message ===
          "extension example.org/labelled: the SELinux label of /usr/local/bin/plain holds a NUL or a newline",
    );
    await attempt("v1.12.0");
  });

  test("1.12: no xattr in any image (upstream passes no xattr flags before 1.13)", async () => {
    const images = await build("v1.12.0", []);
    assert.deepEqual(images, { "0.sqsh": {}, "1.sqsh": {}, "2.sqsh": {} });
  });

  test("1.13 without an mksquashfs ≥ 4.6: built anyway, unlabelled, with a warning", async () => {
    const log: string[] = [];
    const dir = await mkdtemp(join(scratch, "none-"));
    await mkdir(join(dir, "work"));
    await buildExtendedInitramfs({
      talosVersion: "v1.13.0",
      baseInitramfs: join(scratch, "base.xz"),
      extensions: [extension],
      schematic: { id: "a".repeat(64), author: "test" },
      outPath: join(dir, "initramfs.xz"),
      workDir: join(dir, "work"),
      labellingMksquashfs: async () => undefined,
      log: (line) => log.push(line),
    });
    assert.ok(log.some((line) => /^warning: no mksquashfs ≥ 4\.6 .* without the SELinux labels/.test(line)));
  });
});
