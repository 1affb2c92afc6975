// System extensions into the initramfs, as upstream's imager does it (talos pkg/imager/extensions and
// internal/pkg/extensions; docs/formats.md, "newc cpio"):
//   1. each extension gets a directory named by its index (the virtual `schematic` extension last), and the
//      list is read back sorted by that name as a string — upstream's order, "10" before "2" included;
//      each is validated for the Talos version (errors name the extension and the path);
//   2. CPU microcode (`<fw>/intel-ucode/*`, `<fw>/amd-ucode/microcode_amd*.bin`) is concatenated per vendor
//      into `kernel/x86/microcode/{GenuineIntel,AuthenticAMD}.bin`, packed as an uncompressed cpio that is
//      PREPENDED; the rest of `<fw>` leaves the extension for the appended cpio;
//   3. when an extension has kernel modules, the base rootfs.sqsh's module tree (read out of the base
//      initramfs) gets every extension's modules copied over it in order (a later extension's file replaces
//      an earlier one's, as upstream's copyFiles; never writing through a symlink), `depmod --all` indexes it
//      with upstream's configuration (hack/extra-modules.conf: `search extras built-in`, the host's
//      depmod.d never read), and its `modules.*` files become a last extension `modules.dep`;
//   4. each extension rootfs → `<dir>.sqsh` (mksquashfs -all-root, zstd level 18 or xz by version, one fixed
//      timestamp), run in parallel, one per core; from Talos 1.13 with the SELinux labels the extension's tar
//      gave (the embedded config's included) as pseudo xattrs and no other xattr, which takes squashfs-tools
//      ≥ 4.6 (docs/caches.md: without one, images are built unlabelled with a warning);
//   5. `extensions.yaml` lists the layers with their manifest metadata, printed as Go's yaml.v3 prints it;
//   6. the firmware, each squashfs image and extensions.yaml go in newc cpio members, each compressed on its
//      own like the version's initramfs (initramfs-members.ts), APPENDED to the base initramfs: the kernel
//      unpacks concatenated archives in order (upstream appends one archive of them all; same tree).
// Inputs are never modified: an extension whose firmware moves out is copied (without it) into the work dir.
// Nothing is held in memory: every file is streamed.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, lstat, mkdir, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { badRequest, integrity } from "../errors.ts";
import { type CpioEntry, cpioEntriesFromDirectory, cpioMtime, createCpio } from "../formats/cpio.ts";
import type { ExtensionMetadata } from "../talos/extension.ts";
import { validateExtensionTree } from "../talos/extension.ts";
import { emitGoYaml, type YamlNode } from "../talos/go-yaml-emitter.ts";
import { goStringCanBePlain } from "../talos/go-yaml-resolve.ts";
import { rulesFor, type VersionRules } from "../talos/version-rules.ts";
import { readInitramfs } from "../tools/compression.ts";
import { depmod } from "../tools/kmod.ts";
import { unsquashfs } from "../tools/squashfs.ts";
import { type ExtensionImageSource, makeExtensionImages } from "./extension-images.ts";
import { appendInitramfsMembers, type InitramfsMember } from "./initramfs-members.ts";
import type { LocalExtension } from "./inputs.ts";
import type { IntermediateCache } from "./intermediate-cache.ts";
import { embeddedConfigPath, embeddedConfigSelinuxLabel, rootfsLabels } from "./selinux-labels.ts";

/** The name of the virtual extension carrying the schematic ID (image-factory's SchematicIDExtensionName). */
export const schematicExtensionName = "schematic";
export const modulesDepExtensionName = "modules.dep";
export const extensionsConfigFile = "extensions.yaml";

export interface SchematicExtensionSpec {
  id: string;
  /** Canonical schematic YAML for `extraInfo` (Talos ≥ 1.7), or undefined. */
  yaml?: string;
  /** e.g. "Image Factory" or "Image Factory (https://factory.example)". */
  author: string;
}

export interface ExtendInitramfsOptions {
  talosVersion: string;
  /** The imager's initramfs.xz. */
  baseInitramfs: string;
  /** The schematic's extensions, in its order. */
  extensions: readonly LocalExtension[];
  schematic: SchematicExtensionSpec;
  /** A machine configuration to embed (Talos ≥ 1.12): the `embedded-config` extension after the schematic's. */
  embeddedConfig?: string;
  /** Written (replaced) with the extended initramfs. */
  outPath: string;
  /** Scratch directory (empty, removed by the caller). */
  workDir: string;
  /** Timestamp of every file; default SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  /** Parallel mksquashfs runs; default one per core. */
  concurrency?: number;
  /**
   * An mksquashfs ≥ 4.6 (a path) for versions whose images carry SELinux labels, or undefined when there is
   * none; asked only when the version needs one. Default: the one on PATH when it is recent enough
   * (tools/squashfs-tools.ts labellingMksquashfs makes one that also fetches it).
   */
  labellingMksquashfs?: (signal?: AbortSignal) => Promise<string | undefined>;
  /**
   * The intermediate cache (intermediate-cache.ts): each extension's squashfs image is taken from it or put
   * in it, keyed by squashfsImageKey (extension-images.ts). Needs `arch` (an extension's digest may be a multi-arch index's).
   */
  intermediateCache?: IntermediateCache;
  /** The architecture the extensions were flattened for (part of the squashfs key). */
  arch?: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface ExtensionLayer {
  image: string;
  metadata: ExtensionMetadata;
}

export interface ExtendedInitramfs {
  layers: ExtensionLayer[];
  /** Kernel release of the merged module tree, when an extension has modules. */
  kernelRelease?: string;
  /** Microcode files prepended (paths inside the early cpio). */
  microcode: string[];
}

interface StagedExtension extends ExtensionImageSource {
  metadata: ExtensionMetadata;
}

// ---------------------------------------------------------------------------------------------------------
// extensions.yaml and manifests, in yaml.v3's output

/** A Go string as yaml.v3 encodes it: literal when multi-line, plain when it reads back as a string. */
function goString(value: string): YamlNode {
  if (value.includes("\n")) return { kind: "scalar", value, style: "literal" };
  return { kind: "scalar", value, style: goStringCanBePlain(value) ? "plain" : "double" };
}

const key = (name: string): YamlNode => ({ kind: "scalar", value: name, style: "plain" });

/** Upstream's extensions.Metadata struct, field order and `extraInfo,omitempty` included. */
function metadataNode(metadata: ExtensionMetadata): YamlNode {
  const entries: Array<[YamlNode, YamlNode]> = [
    [key("name"), goString(metadata.name)],
    [key("version"), goString(metadata.version)],
    [key("author"), goString(metadata.author)],
    [key("description"), goString(metadata.description)],
    [
      key("compatibility"),
      {
        kind: "map",
        entries: [
          [
            key("talos"),
            { kind: "map", entries: [[key("version"), goString(metadata.compatibility?.talos?.version ?? "")]] },
          ],
        ],
      },
    ],
  ];
  if (metadata.extraInfo !== undefined && metadata.extraInfo !== "")
    entries.push([key("extraInfo"), goString(metadata.extraInfo)]);
  return { kind: "map", entries };
}

/** `extensions.yaml`: `layers: [{image, metadata}]`. */
export function extensionsConfigYaml(layers: readonly ExtensionLayer[]): string {
  return emitGoYaml({
    kind: "map",
    entries: [
      [
        key("layers"),
        {
          kind: "seq",
          items: layers.map(
            (layer): YamlNode => ({
              kind: "map",
              entries: [
                [key("image"), goString(layer.image)],
                [key("metadata"), metadataNode(layer.metadata)],
              ],
            }),
          ),
        },
      ],
    ],
  });
}

/** manifest.yaml of an extension, as yaml.v3 marshals upstream's Manifest struct. */
export function extensionManifestYaml(metadata: ExtensionMetadata): string {
  return emitGoYaml({
    kind: "map",
    entries: [
      [key("version"), goString("v1alpha1")],
      [key("metadata"), metadataNode(metadata)],
    ],
  });
}

/** The schematic extension's author: the factory's name and its external URL as configured (schematic.go). */
export function schematicExtensionAuthor(externalUrl: string): string {
  return `Image Factory (${externalUrl})`;
}

/** The factory's default external URL (upstream's http.externalURL default), for the default author. */
export const defaultExternalUrl = "https://localhost/";

/** The virtual extension's metadata (image-factory's schematicExtension). */
export function schematicExtensionMetadata(spec: SchematicExtensionSpec): ExtensionMetadata {
  const metadata: ExtensionMetadata = {
    name: schematicExtensionName,
    version: spec.id,
    author: spec.author,
    // upstream's text, whose last word is its SchematicIDExtensionName constant (image-factory
    // internal/artifacts/schematic.go schematicExtension)
    description: "Virtual extension which specifies the schematic of the image built with schematic.",
    compatibility: { talos: { version: ">= 1.0.0" } },
  };
  if (spec.yaml !== undefined && spec.yaml !== "") metadata.extraInfo = spec.yaml;
  return metadata;
}

/** Writes the virtual schematic extension (manifest.yaml, empty `rootfs/usr/local/share/schematic/<id>`). */
export async function writeSchematicExtension(dir: string, spec: SchematicExtensionSpec): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(spec.id)) throw badRequest(`invalid schematic ID "${spec.id}"`);
  const share = join(dir, "rootfs", "usr", "local", "share", "schematic");
  await mkdir(share, { recursive: true, mode: 0o755 });
  await writeFile(join(dir, "manifest.yaml"), extensionManifestYaml(schematicExtensionMetadata(spec)), {
    mode: 0o644,
  });
  await writeFile(join(share, spec.id), "", { mode: 0o644 });
}

/** The name of the virtual extension carrying an embedded machine configuration (Talos pkg/imager/embed.go). */
export const embeddedConfigExtensionName = "embedded-config";

/** The embedded-config extension's metadata: version = the configuration's SHA-256 (BuildEmbeddedConfigExtension). */
export function embeddedConfigExtensionMetadata(config: string): ExtensionMetadata {
  return {
    name: embeddedConfigExtensionName,
    version: createHash("sha256").update(config).digest("hex"),
    author: "Imager",
    description: "Virtual extension which embeds the machine configuration.",
    compatibility: { talos: { version: ">= 1.0.0" } },
  };
}

/**
 * Writes the embedded-config extension: manifest.yaml and `rootfs/usr/local/etc/talos/config.yaml` (mode 0400).
 * Upstream's tar gives the file a `security.selinux` PAX record (embeddedConfigSelinuxLabel), which its
 * squashfs carries from Talos 1.13 as every extension's labels do (buildExtendedInitramfs).
 */
export async function writeEmbeddedConfigExtension(dir: string, config: string): Promise<void> {
  const configDir = join(dir, "rootfs", "usr", "local", "etc", "talos");
  await mkdir(configDir, { recursive: true, mode: 0o755 });
  await writeFile(join(dir, "manifest.yaml"), extensionManifestYaml(embeddedConfigExtensionMetadata(config)), {
    mode: 0o644,
  });
  await writeFile(join(configDir, "config.yaml"), config, { mode: 0o400 });
}

// ---------------------------------------------------------------------------------------------------------
// helpers

async function isDirectory(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** Upstream's microcode globs, per firmware path. */
function microcodeSources(firmwarePath: string) {
  return [
    {
      dir: `${firmwarePath}/intel-ucode`,
      match: (_name: string) => true,
      dst: "kernel/x86/microcode/GenuineIntel.bin",
    },
    {
      dir: `${firmwarePath}/amd-ucode`,
      match: (name: string) => name.startsWith("microcode_amd") && name.endsWith(".bin"),
      dst: "kernel/x86/microcode/AuthenticAMD.bin",
    },
  ];
}

/**
 * Copies `source` over `target` the way an overlay shows an upper layer over a lower one: entries replace
 * what is there, directories merge. Nothing is ever written through a symlink: an existing link in the
 * target is replaced, never followed, so a hostile tree cannot make the copy land outside `target`.
 */
async function mergeTree(source: string, target: string): Promise<void> {
  for (const name of (await readdir(source)).sort()) {
    const from = join(source, name);
    const to = join(target, name);
    const info = await lstat(from);
    const existing = await lstat(to).catch(() => undefined);
    if (info.isDirectory()) {
      if (existing !== undefined && !existing.isDirectory()) await rm(to, { recursive: true, force: true });
      if (!existing?.isDirectory()) await mkdir(to, { mode: 0o755 });
      await mergeTree(from, to);
      continue;
    }
    if (existing !== undefined) await rm(to, { recursive: true, force: true });
    if (info.isSymbolicLink()) await symlink(await readlink(from), to);
    else if (info.isFile()) await copyFile(from, to);
  }
}

// ---------------------------------------------------------------------------------------------------------
// the build

/** The base initramfs's rootfs.sqsh, streamed out through the decompressor into `outPath`. */
export async function extractRootfsImage(initramfs: string, outPath: string, signal?: AbortSignal): Promise<void> {
  for await (const record of readInitramfs(initramfs, { signal })) {
    if (record.path !== "rootfs.sqsh" || record.type !== "file") continue;
    await pipeline(record.data, createWriteStream(outPath));
    return;
  }
  throw integrity("the imager's initramfs has no rootfs.sqsh");
}

/**
 * The merged module index as a `modules.dep` extension rootfs (in `workDir/modules.dep`), from the base
 * rootfs modules plus the extensions' modules.
 */
async function modulesDepExtension(
  rules: VersionRules,
  baseInitramfs: string,
  withModules: readonly StagedExtension[],
  workDir: string,
  signal?: AbortSignal,
): Promise<StagedExtension> {
  const rootfsImage = join(workDir, "rootfs.sqsh");
  await extractRootfsImage(baseInitramfs, rootfsImage, signal);
  const tree = join(workDir, "modules-tree");
  await unsquashfs(rootfsImage, tree, { paths: [`/${rules.modulesPath}`], signal });
  const moduleRoot = join(tree, rules.modulesPath);
  const releases = (await readdir(moduleRoot).catch(() => [] as string[])).sort();
  if (releases.length !== 1)
    throw integrity(
      `the imager's rootfs.sqsh must hold one kernel under /${rules.modulesPath}, found ${releases.length ? releases.join(", ") : "none"}`,
    );
  const kernelRelease = releases[0] as string;
  // Upstream copies each extension's modules over the tree in the extensions' order, so a later one's file
  // replaces an earlier one's (talos internal/pkg/extensions/kernel_modules.go, compress.go copyFiles).
  for (const extension of withModules) await mergeTree(join(extension.rootfs, rules.modulesPath), moduleRoot);
  const basedir = rules.modulesPath.startsWith("usr/") ? join(tree, "usr") : tree;
  // Upstream's imager runs depmod with its own configuration only (hack/extra-modules.conf, installed as
  // /etc/modules.d/10-extra-modules.conf): extension modules (extras) take priority over built-in ones.
  const config = join(workDir, "depmod-extra-modules.conf");
  await writeFile(config, "search extras built-in\n");
  await depmod({ basedir, kernelVersion: kernelRelease, config, signal });

  const rootfs = join(workDir, modulesDepExtensionName);
  const indexDir = join(rootfs, rules.modulesPath, kernelRelease);
  await mkdir(indexDir, { recursive: true, mode: 0o755 });
  for (const name of (await readdir(join(moduleRoot, kernelRelease))).sort()) {
    const source = join(moduleRoot, kernelRelease, name);
    if (name.startsWith("modules.") && (await lstat(source)).isFile()) await copyFile(source, join(indexDir, name));
  }
  return {
    directory: modulesDepExtensionName,
    label: modulesDepExtensionName,
    metadata: {
      name: modulesDepExtensionName,
      version: kernelRelease,
      author: "Talos Machinery",
      description: "Combined modules.dep for all extensions",
      compatibility: { talos: { version: "" } },
    },
    rootfs,
    selinuxLabels: new Map(),
  };
}

/** Builds the extended initramfs into `options.outPath`. */
export async function buildExtendedInitramfs(options: ExtendInitramfsOptions): Promise<ExtendedInitramfs> {
  const rules = rulesFor(options.talosVersion);
  const mtime = cpioMtime(options.mtime);
  const log = options.log ?? (() => {});
  const work = options.workDir;
  const signal = options.signal;

  // 1. Directories by index, the schematic extension last; upstream lists them sorted by name.
  const schematicDir = join(work, "schematic-extension");
  await writeSchematicExtension(schematicDir, options.schematic);
  const sources: Array<{
    directory: string;
    label: string;
    dir: string;
    selinuxLabels: Map<string, string>;
    digest?: string;
  }> = [
    ...options.extensions.map((e, i) => ({
      directory: String(i),
      label: e.name,
      dir: e.dir,
      selinuxLabels: rootfsLabels(e.selinuxLabels),
      digest: e.digest,
    })),
    {
      directory: String(options.extensions.length),
      label: schematicExtensionName,
      dir: schematicDir,
      selinuxLabels: new Map(),
    },
  ];
  if (options.embeddedConfig !== undefined) {
    // Talos' imager appends it after the factory's extensions (pkg/imager/embed.go handleEmbeddedConfig).
    const embeddedDir = join(work, "embedded-config-extension");
    await writeEmbeddedConfigExtension(embeddedDir, options.embeddedConfig);
    sources.push({
      directory: String(sources.length),
      label: embeddedConfigExtensionName,
      dir: embeddedDir,
      selinuxLabels: new Map([[embeddedConfigPath, embeddedConfigSelinuxLabel]]),
    });
  }
  sources.sort((a, b) => (a.directory < b.directory ? -1 : a.directory > b.directory ? 1 : 0));

  log(`validating ${sources.length} system extensions for Talos ${options.talosVersion}`);
  const staged: StagedExtension[] = [];
  for (const source of sources) {
    signal?.throwIfAborted();
    const manifest = await validateExtensionTree(source.dir, {
      talosVersion: options.talosVersion,
      name: source.label,
      contents: "warn",
      warn: (line) => log(`warning: ${line}`),
    });
    staged.push({
      directory: source.directory,
      label: source.label,
      metadata: manifest.metadata,
      rootfs: join(source.dir, "rootfs"),
      selinuxLabels: source.selinuxLabels,
      ...(source.digest === undefined ? {} : { digest: source.digest }),
    });
  }

  // 2. Microcode and firmware move out of the extensions.
  const initramfsTree = new Map<string, CpioEntry>();
  const microcode = new Map<string, string[]>();
  for (const extension of staged) {
    const firmwareDir = join(extension.rootfs, rules.firmwarePath);
    if (!(await isDirectory(firmwareDir))) continue;
    const consumed = new Set<string>();
    for (const source of microcodeSources(rules.firmwarePath)) {
      const dir = join(extension.rootfs, source.dir);
      if (!(await isDirectory(dir))) continue;
      for (const name of (await readdir(dir)).sort()) {
        const path = join(dir, name);
        if (!source.match(name) || !(await lstat(path)).isFile()) continue;
        consumed.add(path);
        microcode.set(source.dst, [...(microcode.get(source.dst) ?? []), path]);
      }
    }
    for (const entry of await cpioEntriesFromDirectory(firmwareDir, rules.firmwarePath)) {
      if (entry.type === "file" && "sourcePath" in entry && consumed.has(entry.sourcePath)) continue;
      // Later extensions overwrite files of earlier ones, as upstream's move into one tree does.
      if (entry.type !== "directory" || !initramfsTree.has(entry.path)) initramfsTree.set(entry.path, entry);
    }
    // Its image is made from a copy without the firmware, when it is made (not when the cache has it).
    extension.firmwareDir = firmwareDir;
  }

  // 3. The merged module index.
  let kernelRelease: string | undefined;
  const withModules: StagedExtension[] = [];
  for (const extension of staged)
    if (await isDirectory(join(extension.rootfs, rules.modulesPath))) withModules.push(extension);
  if (withModules.length > 0) {
    log(`running depmod over the base modules and ${withModules.length} extensions with modules`);
    const modulesDep = await modulesDepExtension(rules, options.baseInitramfs, withModules, work, signal);
    kernelRelease = modulesDep.metadata.version;
    staged.push(modulesDep);
  }

  // 4. One squashfs per extension, in parallel (extension-images.ts).
  const imagesDir = join(work, "initramfs");
  await mkdir(imagesDir, { recursive: true });
  const layers: ExtensionLayer[] = staged.map((e) => ({ image: `${e.directory}.sqsh`, metadata: e.metadata }));
  const imageKeys = await makeExtensionImages(staged, {
    rules,
    mtime,
    imagesDir,
    workDir: work,
    concurrency: options.concurrency,
    labellingMksquashfs: options.labellingMksquashfs,
    intermediateCache: options.intermediateCache,
    arch: options.arch,
    signal,
    log,
  });

  // 5, 6. The appended archive, as members (initramfs-members.ts): the firmware, each image, extensions.yaml.
  const groups: InitramfsMember[] = [{ entries: [...initramfsTree.values()] }];
  for (const [index, layer] of layers.entries()) {
    const sourcePath = join(imagesDir, layer.image);
    const size = (await lstat(sourcePath)).size;
    const imageKey = imageKeys.get((staged[index] as StagedExtension).directory);
    groups.push({
      entries: [{ type: "file", path: layer.image, mode: 0o644, sourcePath, size }],
      ...(imageKey === undefined ? {} : { dataKey: `squashfs ${imageKey}` }),
    });
  }
  groups.push({
    entries: [
      { type: "file", path: extensionsConfigFile, mode: 0o644, content: Buffer.from(extensionsConfigYaml(layers)) },
    ],
  });

  const microcodeFiles = [...microcode.keys()].sort();
  if (microcodeFiles.length > 0) {
    const early: CpioEntry[] = [];
    for (const dst of microcodeFiles) {
      const blob = join(work, dst.replaceAll("/", "_"));
      const out = createWriteStream(blob);
      for (const source of microcode.get(dst) ?? []) await pipeline(createReadStream(source), out, { end: false });
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      early.push({ type: "file", path: dst, mode: 0o644, sourcePath: blob, size: (await lstat(blob)).size });
    }
    await pipeline(createCpio(early, { mtime }), createWriteStream(options.outPath), { signal });
    await pipeline(createReadStream(options.baseInitramfs), createWriteStream(options.outPath, { flags: "a" }), {
      signal,
    });
  } else await copyFile(options.baseInitramfs, options.outPath);

  log(`appending the extensions archive (${rules.initramfsCompression}, one member per image)`);
  const membersDir = join(work, "members");
  await mkdir(membersDir);
  const appended = await appendInitramfsMembers(groups, options.outPath, {
    compression: rules.initramfsCompression,
    // Upstream: zstd -18 (multithreaded CLI), xz -0 with the crc32 check the kernel verifies.
    ...(rules.initramfsCompression === "zstd" ? { level: 18, engine: "cli" as const } : { level: 0 }),
    mtime,
    workDir: membersDir,
    ...(options.intermediateCache === undefined ? {} : { intermediateCache: options.intermediateCache }),
    signal,
  });
  if (options.intermediateCache !== undefined)
    log(`initramfs members from the intermediate cache: ${appended.hits} of ${appended.members}`);
  return {
    layers,
    ...(kernelRelease === undefined ? {} : { kernelRelease }),
    microcode: microcodeFiles,
  };
}
