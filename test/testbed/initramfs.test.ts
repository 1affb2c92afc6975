// The base initramfs: upstream's layout per version, and deterministic bytes. Builds from Debian's packages
// (downloaded once into the cache); each build takes a few seconds.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { buildBaseBootAssets, layoutForTalosVersion } from "../../src/testbed/initramfs.ts";
import { readInitramfs } from "../../src/tools/compression.ts";
import { listSquashfs } from "../../src/tools/squashfs.ts";

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

async function head(path: string, n: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(n);
    await handle.read(buffer, 0, n, 0);
    return buffer;
  } finally {
    await handle.close();
  }
}

describe("test bed base initramfs", () => {
  let packages: TestbedPackages;
  let scratch: string;
  before(async () => {
    packages = await fetchTestbedPackages();
    scratch = await mkdtemp(join(tmpdir(), "testbed-initramfs-"));
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  test("the kernel package was resolved from linux-image-amd64 and its version recorded", () => {
    assert.match(packages.kernel.name, /^linux-image-6\.1\.0-\d+-amd64$/);
    assert.equal(`linux-image-${packages.kernel.release}`, packages.kernel.name);
    assert.match(packages.kernel.version, /^6\.1\.\d+-\d+/);
    assert.match(packages.kernel.sha256, /^[0-9a-f]{64}$/);
  });

  test("building twice from the same .debs gives the same bytes; another timestamp changes them", async () => {
    const layout = layoutForTalosVersion("v1.10.3");
    const one = await buildBaseBootAssets({ layout, packages, cacheDir: join(scratch, "a"), force: true });
    const two = await buildBaseBootAssets({ layout, packages, cacheDir: join(scratch, "b"), force: true });
    assert.notEqual(one.initramfs, two.initramfs);
    assert.equal(await sha256(one.initramfs), await sha256(two.initramfs));
    assert.equal(one.initramfsSha256, await sha256(two.initramfs));
    assert.equal(await sha256(one.vmlinuz), await sha256(packages.kernel.vmlinuz));
    const later = await buildBaseBootAssets({ layout, packages, cacheDir: join(scratch, "c"), mtime: 1700000000 });
    assert.notEqual(later.initramfsSha256, one.initramfsSha256);
    // A second call finds the cached build.
    const cached = await buildBaseBootAssets({ layout, packages, cacheDir: join(scratch, "a") });
    assert.deepEqual(cached, one);
  });

  for (const [version, compression, magic, modulesPath] of [
    ["v1.7.6", "xz", "fd377a585a00", "lib/modules"],
    ["v1.8.2", "zstd", "28b52ffd", "lib/modules"],
    ["v1.10.3", "zstd", "28b52ffd", "usr/lib/modules"],
  ] as const) {
    test(`${version}: a ${compression} newc cpio with init and rootfs.sqsh, modules under /${modulesPath}`, async () => {
      const assets = await buildBaseBootAssets({ layout: layoutForTalosVersion(version), packages });
      assert.equal((await head(assets.initramfs, magic.length / 2)).toString("hex"), magic);
      const paths = new Map<string, string>();
      const rootfs = join(scratch, `${version}-rootfs.sqsh`);
      for await (const record of readInitramfs(assets.initramfs)) {
        paths.set(record.path, record.type);
        if (record.path === "rootfs.sqsh") await pipeline(record.data, createWriteStream(rootfs));
        if (record.path === "init") {
          const chunks: Buffer[] = [];
          for await (const chunk of record.data) chunks.push(chunk);
          const text = Buffer.concat(chunks).toString();
          assert.match(text, /^#!\/bin\/busybox sh\n/);
          assert.equal(record.mode, 0o755);
        }
      }
      assert.equal(paths.get("init"), "file");
      assert.equal(paths.get("rootfs.sqsh"), "file");
      assert.equal(paths.get("bin/busybox"), "file");
      assert.equal(paths.get("dev/console"), "chardev");
      assert.equal(paths.get("etc/testbed/early-modules"), "file");

      const listing = new Map((await listSquashfs(rootfs)).map((e) => [e.path, e]));
      const kver = packages.kernel.release;
      const tree = `/${modulesPath}/${kver}`;
      assert.ok(listing.has(`${tree}/modules.dep`), `${tree}/modules.dep`);
      assert.ok(listing.has(`${tree}/kernel/fs/squashfs/squashfs.ko`));
      assert.ok(!listing.has(`${tree}/kernel/drivers/net/dummy.ko`), "dummy.ko is left out for test extensions");
      if (modulesPath === "usr/lib/modules") {
        assert.equal(listing.get("/lib")?.target, "usr/lib");
        assert.equal(listing.get("/bin")?.target, "usr/bin");
        assert.ok(listing.has("/usr/bin/busybox"));
      } else {
        assert.ok(!listing.has(`/usr/lib/modules`));
        assert.ok(listing.has("/bin/busybox"));
      }
      for (const entry of listing.values()) assert.equal(entry.owner, "root/root", entry.path);
    });
  }
});
