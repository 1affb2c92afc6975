// Flattens an image's layers (uncompressed tar streams, lowest first) into one file tree, the way an
// overlay filesystem would show it, honouring whiteouts:
//   - `dir/.wh.name` removes `dir/name` (file or whole directory) coming from lower layers;
//   - `dir/.wh..wh..opq` makes `dir` opaque: everything lower layers put under it is removed, what the
//     same layer puts there stays (whatever the order of entries inside the layer);
//   - whiteout entries (and other `.wh..wh.` aufs metadata) never appear in the output.
//
// Layers are hostile input. Refused, with an error naming the entry (BadRequest, `detail.entry`):
//   - absolute paths, `..` components, NUL bytes;
//   - symlinks whose target, resolved lexically (relative targets from the link's directory, absolute
//     targets from the tree root, as in a chroot), climbs above the root. Absolute targets are allowed and
//     mean "inside the tree": whoever follows links in the result must resolve them against the root (a
//     chain of links can still leave the root physically: read through `resolveInTree` (tree-path.ts));
//   - hardlinks whose target is not a regular file already extracted inside the tree;
//   - writing through a symlink or a non-directory: every parent is checked with lstat from the root down,
//     and files are created with O_EXCL|O_NOFOLLOW, so no symlink is ever followed while writing;
//   - device nodes, fifos and other special kinds;
//   - bombs: limits on total bytes, single file size, entry count, path length and depth.
// Nothing is ever written outside the target directory. Modes are kept (without setuid/setgid unless
// allowed), mtimes come from the tar; ownership is not applied (the tree belongs to the calling user).
// Extended attributes are never set on disk. SELinux labels (PAX `SCHILY.xattr.security.selinux`, as Talos'
// pkg/archiver/untar.go reads them) are collected instead: for each path of the result, the label of the
// entry that put it there (the topmost layer's), none when that entry had none.

import { constants as fsConstants } from "node:fs";
import { chmod, link, lstat, lutimes, mkdir, open, readdir, rm, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { AppError } from "../errors.ts";

export interface FlattenLimits {
  /** Sum of all regular file sizes over all layers. Default 16 GiB. */
  maxTotalBytes?: number;
  /** Size of one regular file. Default 4 GiB. */
  maxFileBytes?: number;
  /** Entries over all layers, whiteouts included. Default 1,000,000. */
  maxEntries?: number;
  /** Bytes in an entry path or link target. Default 4096. */
  maxPathLength?: number;
  /** Components in an entry path. Default 128. */
  maxDepth?: number;
  /** Keep setuid/setgid bits. Default false: they are cleared. */
  allowSetuid?: boolean;
}

export interface FlattenStats {
  layers: number;
  entries: number;
  files: number;
  bytes: number;
  /** SELinux label by path ("usr/bin/x", no leading slash) of every entry in the result that had one. */
  selinuxLabels: Map<string, string>;
}

/** The PAX record carrying an entry's SELinux label (Talos constants.TarPaxHeaderSELinux). */
export const selinuxPaxRecord = "SCHILY.xattr.security.selinux";
/** Longest label accepted: the kernel's own limit for an xattr value (real labels are short). */
const maxLabelBytes = 64 * 1024;

const defaults: Required<FlattenLimits> = {
  maxTotalBytes: 16 * 1024 ** 3,
  maxFileBytes: 4 * 1024 ** 3,
  maxEntries: 1_000_000,
  maxPathLength: 4096,
  maxDepth: 128,
  allowSetuid: false,
};

export type LayerSource = Readable | (() => Promise<Readable>);

const whiteoutPrefix = ".wh.";
const whiteoutMetaPrefix = ".wh..wh.";
const opaqueMarker = ".wh..wh..opq";

function refuse(entry: string, problem: string): AppError {
  return new AppError("BadRequest", `layer entry "${entry}" refused: ${problem}`, { detail: { entry } });
}

/** Splits an entry name into safe path components, or refuses it. `[]` is the root itself. */
function entryParts(name: string, limits: Required<FlattenLimits>): string[] {
  if (Buffer.byteLength(name) > limits.maxPathLength)
    throw refuse(name, `path is longer than ${limits.maxPathLength} bytes`);
  if (name.includes("\0")) throw refuse(name, "path contains a NUL byte");
  if (name.startsWith("/")) throw refuse(name, "absolute path");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw refuse(name, 'path has a ".." component');
  if (parts.length > limits.maxDepth) throw refuse(name, `path is deeper than ${limits.maxDepth} components`);
  return parts;
}

/** Whether a symlink at `parts` pointing at `target` stays inside the root when resolved lexically. */
function symlinkStaysInside(parts: string[], target: string): boolean {
  const stack = target.startsWith("/") ? [] : parts.slice(0, -1);
  for (const component of target.split("/")) {
    if (component === "" || component === ".") continue;
    if (component === "..") {
      if (stack.length === 0) return false;
      stack.pop();
    } else stack.push(component);
  }
  return true;
}

const isNotFound = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

interface DirectoryMeta {
  mode: number;
  mtime: Date;
}

/** One flatten run: the target root and what has been learnt about it. */
class Flattener {
  readonly root: string;
  readonly limits: Required<FlattenLimits>;
  readonly stats: FlattenStats = { layers: 0, entries: 0, files: 0, bytes: 0, selinuxLabels: new Map() };
  /** Directories known to be real directories (not symlinks); reset whenever something is removed. */
  private knownDirectories = new Set<string>();
  /** Mode and mtime to give directories once everything is written (so read-only dirs don't block writes). */
  private readonly directoryMeta = new Map<string, DirectoryMeta>();
  /** Paths written by the current layer, and all their ancestors: what whiteouts of this layer must keep. */
  private writtenThisLayer = new Set<string>();

  constructor(root: string, limits: Required<FlattenLimits>) {
    this.root = root;
    this.limits = limits;
  }

  private full(parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** Makes sure every parent of `parts` is a real directory inside the root, creating missing ones. */
  private async ensureParents(entry: string, parts: string[]): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join("/");
      if (this.knownDirectories.has(rel)) continue;
      const path = this.full(parts.slice(0, i));
      const stat = await lstatOrUndefined(path);
      if (stat === undefined) await mkdir(path, { mode: 0o755 });
      else if (stat.isSymbolicLink()) throw refuse(entry, `parent "${rel}" is a symlink; refusing to write through it`);
      else if (!stat.isDirectory()) throw refuse(entry, `parent "${rel}" is not a directory`);
      this.knownDirectories.add(rel);
    }
  }

  /** Whether every parent of `parts` is a real directory (no symlink on the way); creates nothing. */
  private async parentsAreDirectories(parts: string[]): Promise<boolean> {
    for (let i = 1; i < parts.length; i++) {
      if (this.knownDirectories.has(parts.slice(0, i).join("/"))) continue;
      const stat = await lstatOrUndefined(this.full(parts.slice(0, i)));
      if (stat === undefined || !stat.isDirectory()) return false;
    }
    return true;
  }

  private async remove(parts: string[]): Promise<void> {
    // fs.rm never follows symlinks: a link is removed, not what it points at.
    await rm(this.full(parts), { recursive: true, force: true });
    this.knownDirectories = new Set();
    const rel = parts.join("/");
    for (const path of this.stats.selinuxLabels.keys())
      if (path === rel || path.startsWith(`${rel}/`)) this.stats.selinuxLabels.delete(path);
  }

  /** The entry's SELinux label (without the trailing NUL the kernel's form has), or undefined. */
  private selinuxLabel(name: string, header: tar.Header): string | undefined {
    const pax = (header as { pax?: Record<string, string> | null }).pax;
    const value = pax?.[selinuxPaxRecord];
    if (value === undefined || value === "") return undefined;
    // Kept as found otherwise: whether a label can be applied is the build's question (only Talos ≥ 1.13 asks).
    const label = value.replace(/\0+$/, "");
    if (Buffer.byteLength(label) > maxLabelBytes)
      throw refuse(name, `its SELinux label is over ${maxLabelBytes} bytes`);
    return label === "" ? undefined : label;
  }

  private markWritten(parts: string[]): void {
    for (let i = 1; i <= parts.length; i++) this.writtenThisLayer.add(parts.slice(0, i).join("/"));
  }

  /** Clears the way for a new non-directory entry at `parts` (an existing entry of any kind is replaced). */
  private async clearFinal(parts: string[]): Promise<void> {
    const stat = await lstatOrUndefined(this.full(parts));
    if (stat !== undefined) await this.remove(parts);
  }

  async flattenLayer(source: Readable): Promise<void> {
    this.stats.layers++;
    this.writtenThisLayer = new Set();
    const extract = tar.extract();
    const feeding = pipeline(source, extract as unknown as NodeJS.WritableStream).catch((err: unknown) => {
      extract.destroy(err as Error);
    });
    try {
      for await (const entry of extract) {
        try {
          await this.handleEntry(entry.header, entry as unknown as AsyncIterable<Buffer>);
        } finally {
          entry.resume();
        }
      }
    } catch (err) {
      // tar-stream reports a malformed archive with a plain Error; say which layer and keep the kind typed.
      if (err instanceof AppError) throw err;
      throw new AppError(
        "BadRequest",
        `layer ${this.stats.layers} is not a valid tar archive: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    } finally {
      if (!source.destroyed) source.destroy();
      await feeding;
    }
  }

  private async handleEntry(header: tar.Header, body: AsyncIterable<Buffer>): Promise<void> {
    const name = header.name;
    this.stats.entries++;
    if (this.stats.entries > this.limits.maxEntries)
      throw refuse(name, `more than ${this.limits.maxEntries} entries in the image`);
    const parts = entryParts(name, this.limits);
    if (parts.length === 0) return; // the root itself ("./")
    const base = parts[parts.length - 1] as string;
    if (parts.slice(0, -1).some((p) => p.startsWith(whiteoutPrefix)))
      throw refuse(name, "a whiteout name is used as a directory");

    if (base === opaqueMarker) return this.applyOpaque(name, parts.slice(0, -1));
    if (base.startsWith(whiteoutMetaPrefix)) return; // aufs metadata, meaningless outside aufs
    if (base.startsWith(whiteoutPrefix)) {
      const hidden = base.slice(whiteoutPrefix.length);
      if (hidden === "" || hidden === "." || hidden === "..") throw refuse(name, "whiteout names nothing");
      return this.applyWhiteout([...parts.slice(0, -1), hidden]);
    }

    const label = this.selinuxLabel(name, header);
    switch (header.type) {
      case "directory":
        await this.writeDirectory(name, parts, header);
        break;
      case "file":
      case "contiguous-file":
        await this.writeFile(name, parts, header, body);
        break;
      case "symlink":
        await this.writeSymlink(name, parts, header);
        break;
      case "link":
        await this.writeHardlink(name, parts, header);
        break;
      default:
        throw refuse(name, `unsupported entry type "${header.type}" (device nodes, fifos and the like are refused)`);
    }
    // The entry that put the path there decides its label, as the topmost layer's header does upstream.
    if (label === undefined) this.stats.selinuxLabels.delete(parts.join("/"));
    else this.stats.selinuxLabels.set(parts.join("/"), label);
  }

  private mode(header: tar.Header): number {
    const mask = this.limits.allowSetuid ? 0o7777 : 0o1777;
    return header.mode & mask;
  }

  private async applyWhiteout(parts: string[]): Promise<void> {
    // Whiteouts only hide lower layers; a hidden path that does not exist (or sits behind a symlink, so it
    // is not a path of this tree) hides nothing.
    if (this.writtenThisLayer.has(parts.join("/"))) return;
    if (!(await this.parentsAreDirectories(parts))) return;
    await this.remove(parts);
  }

  private async applyOpaque(name: string, dirParts: string[]): Promise<void> {
    if (dirParts.length === 0) throw refuse(name, "the root cannot be made opaque");
    await this.ensureParents(name, [...dirParts, opaqueMarker]);
    this.markWritten(dirParts);
    await this.clearLower(dirParts);
  }

  /** Removes everything under `dirParts` that the current layer did not write. */
  private async clearLower(dirParts: string[]): Promise<void> {
    for (const child of await readdir(this.full(dirParts))) {
      const parts = [...dirParts, child];
      if (!this.writtenThisLayer.has(parts.join("/"))) await this.remove(parts);
      else if ((await lstat(this.full(parts))).isDirectory()) await this.clearLower(parts);
    }
  }

  private async writeDirectory(name: string, parts: string[], header: tar.Header): Promise<void> {
    await this.ensureParents(name, parts);
    const path = this.full(parts);
    const stat = await lstatOrUndefined(path);
    // An existing directory merges with this one (overlay semantics); anything else is replaced.
    if (stat !== undefined && !stat.isDirectory()) await this.remove(parts);
    if (stat === undefined || !stat.isDirectory()) await mkdir(path, { mode: 0o755 });
    this.knownDirectories.add(parts.join("/"));
    this.directoryMeta.set(parts.join("/"), { mode: this.mode(header), mtime: header.mtime });
    this.markWritten(parts);
  }

  private async writeFile(name: string, parts: string[], header: tar.Header, body: AsyncIterable<Buffer>) {
    const size = header.size;
    if (size > this.limits.maxFileBytes) throw refuse(name, `file is larger than ${this.limits.maxFileBytes} bytes`);
    if (this.stats.bytes + size > this.limits.maxTotalBytes)
      throw refuse(name, `image content exceeds ${this.limits.maxTotalBytes} bytes`);
    await this.ensureParents(name, parts);
    await this.clearFinal(parts);
    const handle = await open(
      this.full(parts),
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
      0o600,
    );
    try {
      let written = 0;
      for await (const chunk of body) {
        written += chunk.length;
        if (written > size) throw refuse(name, "entry has more data than its header says");
        await handle.write(chunk);
      }
      await handle.chmod(this.mode(header));
      await handle.utimes(header.mtime, header.mtime);
    } finally {
      await handle.close();
    }
    this.stats.files++;
    this.stats.bytes += size;
    this.markWritten(parts);
  }

  private async writeSymlink(name: string, parts: string[], header: tar.Header): Promise<void> {
    const target = header.linkname ?? "";
    if (target === "") throw refuse(name, "symlink has no target");
    if (Buffer.byteLength(target) > this.limits.maxPathLength || target.includes("\0"))
      throw refuse(name, "symlink target is too long or contains NUL");
    if (!symlinkStaysInside(parts, target)) throw refuse(name, `symlink target "${target}" escapes the root`);
    await this.ensureParents(name, parts);
    await this.clearFinal(parts);
    const path = this.full(parts);
    await symlink(target, path);
    await lutimes(path, header.mtime, header.mtime);
    this.markWritten(parts);
  }

  private async writeHardlink(name: string, parts: string[], header: tar.Header): Promise<void> {
    const targetName = header.linkname ?? "";
    let targetParts: string[];
    try {
      targetParts = entryParts(targetName, this.limits);
    } catch {
      throw refuse(name, `hardlink target "${targetName}" is outside the tree`);
    }
    if (targetParts.length === 0) throw refuse(name, "hardlink to the root");
    const targetStat = (await this.parentsAreDirectories(targetParts))
      ? await lstatOrUndefined(this.full(targetParts))
      : undefined;
    if (targetStat === undefined || !targetStat.isFile())
      throw refuse(name, `hardlink target "${targetName}" is not a regular file extracted before it`);
    if (targetParts.join("/") === parts.join("/")) return; // a link to itself changes nothing
    await this.ensureParents(name, parts);
    await this.clearFinal(parts);
    await link(this.full(targetParts), this.full(parts));
    this.markWritten(parts);
  }

  /** Gives directories their modes and mtimes, deepest first, now that nothing more is written into them. */
  async finishDirectories(): Promise<void> {
    const byDepth = [...this.directoryMeta.entries()].sort((a, b) => b[0].split("/").length - a[0].split("/").length);
    for (const [rel, meta] of byDepth) {
      const parts = rel.split("/");
      if (!(await this.parentsAreDirectories(parts))) continue;
      const path = this.full(parts);
      const stat = await lstatOrUndefined(path);
      if (stat === undefined || !stat.isDirectory()) continue; // removed or replaced by a later layer
      await chmod(path, meta.mode);
      await utimes(path, meta.mtime, meta.mtime);
    }
  }
}

/**
 * Flattens layers (each an UNCOMPRESSED tar stream — see decompressLayer — or a function opening one,
 * lowest layer first) into `targetDir`, which must be empty or not exist. On failure the target holds a
 * partial tree that the caller should discard; nothing outside it is touched.
 */
export async function flattenLayers(
  layers: AsyncIterable<LayerSource> | Iterable<LayerSource>,
  targetDir: string,
  limits?: FlattenLimits,
): Promise<FlattenStats> {
  const effective: Required<FlattenLimits> = { ...defaults, ...limits };
  await mkdir(targetDir, { recursive: true });
  const stat = await lstat(targetDir);
  if (!stat.isDirectory()) throw new AppError("BadRequest", `flatten target "${targetDir}" is not a directory`);
  if ((await readdir(targetDir)).length > 0)
    throw new AppError("BadRequest", `flatten target "${targetDir}" is not empty`);
  const flattener = new Flattener(targetDir, effective);
  for await (const layer of layers) {
    const stream = typeof layer === "function" ? await layer() : layer;
    await flattener.flattenLayer(stream);
  }
  await flattener.finishDirectories();
  return flattener.stats;
}
