// Adds system extensions to a base initramfs BY HAND, the way upstream's imager does it (siderolabs/talos pkg/imager/extensions), so
// the guest's extension logic is proven before the imager exists: each extension rootfs → <n>.sqsh, a
// synthetic last "modules.dep" layer from depmod over the base modules plus the extensions' modules, an
// `extensions.yaml`, all in one compressed cpio appended to a copy of the base initramfs.

import { createWriteStream } from "node:fs";
import { copyFile, cp, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { CpioEntry } from "../../src/formats/cpio.ts";
import type { BaseBootAssets } from "../../src/testbed/initramfs.ts";
import { readInitramfs, writeCompressedCpio } from "../../src/tools/compression.ts";
import { depmod } from "../../src/tools/kmod.ts";
import { mksquashfs, unsquashfs } from "../../src/tools/squashfs.ts";

export interface HandExtension {
  name: string;
  version: string;
  /** Files of its rootfs: path inside the rootfs (no leading slash) → source file on the host, or content. */
  files: { path: string; source?: string; content?: string }[];
}

const mtime = 0;

/** Writes `<work>/initramfs.xz` = base + one appended cpio with the extensions; returns its path. */
export async function appendExtensionsByHand(
  base: BaseBootAssets,
  extensions: HandExtension[],
  work: string,
): Promise<string> {
  const { modulesPath, compression } = base.layout;
  const kver = base.kernelRelease;
  const layers: { image: string; dir: string; name: string; version: string; author: string }[] = [];
  for (const [i, ext] of extensions.entries()) {
    const dir = join(work, `ext-${i}`);
    for (const file of ext.files) {
      const target = join(dir, file.path);
      await mkdir(join(target, ".."), { recursive: true });
      if (file.source !== undefined) await copyFile(file.source, target);
      else await writeFile(target, file.content ?? "");
    }
    layers.push({ image: `${i}.sqsh`, dir, name: ext.name, version: ext.version, author: "Test Bed" });
  }

  // The merged module index: the base rootfs's modules plus every extension's, indexed by depmod; its
  // top-level modules.* files become a last layer (upstream: name "modules.dep", version = kver).
  const withModules = [];
  for (const layer of layers) if (await existsIn(layer.dir, join(modulesPath, kver))) withModules.push(layer);
  if (withModules.length > 0) {
    const rootfsImage = join(work, "rootfs.sqsh");
    for await (const record of readInitramfs(base.initramfs))
      if (record.path === "rootfs.sqsh") await pipeline(record.data, createWriteStream(rootfsImage));
    const merged = join(work, "merged");
    await unsquashfs(rootfsImage, merged, { paths: [`/${modulesPath}`] });
    for (const layer of withModules)
      await cp(join(layer.dir, modulesPath), join(merged, modulesPath), { recursive: true });
    await depmod({ basedir: modulesPath.startsWith("usr/") ? join(merged, "usr") : merged, kernelVersion: kver });
    const indexDir = join(work, "modules-dep", modulesPath, kver);
    await mkdir(indexDir, { recursive: true });
    for (const name of await readdir(join(merged, modulesPath, kver)))
      if (name.startsWith("modules.")) await copyFile(join(merged, modulesPath, kver, name), join(indexDir, name));
    layers.push({
      image: `${layers.length}.sqsh`,
      dir: join(work, "modules-dep"),
      name: "modules.dep",
      version: kver,
      author: "Talos Machinery",
    });
  }

  const entries: CpioEntry[] = [];
  for (const layer of layers) {
    const image = join(work, layer.image);
    await mksquashfs(layer.dir, image, { compression, mtime });
    entries.push({ type: "file", path: layer.image, sourcePath: image, size: (await stat(image)).size });
  }
  const yaml = [
    "layers:",
    ...layers.flatMap((l) => [
      `    - image: ${l.image}`,
      "      metadata:",
      `        name: ${l.name}`,
      `        version: "${l.version}"`,
      `        author: ${l.author}`,
      "        description: |",
      `            name: not-the-name (a description line that looks like a key)`,
      "        compatibility:",
      "            talos:",
      `                version: ">= v1.0.0"`,
    ]),
    "",
  ].join("\n");
  entries.push({ type: "file", path: "extensions.yaml", content: Buffer.from(yaml) });
  const out = join(work, "initramfs.xz");
  await copyFile(base.initramfs, out);
  await writeCompressedCpio(entries, out, { compression, level: 3, append: true, mtime });
  return out;
}

async function existsIn(dir: string, sub: string): Promise<boolean> {
  try {
    await stat(join(dir, sub));
    return true;
  } catch {
    return false;
  }
}
