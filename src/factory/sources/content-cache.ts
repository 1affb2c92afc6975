// The local content cache of source images: what was pulled by digest (and verified) and unpacked, kept on
// disk so later builds — in this process or the next — do not pull it again.
//
//   <dir>/sha256-<hex>/entry.json   what the entry holds: digest, kind, caller metadata, and an inventory of
//                                   every path (type, mode, size, sha256 of files, link targets)
//   <dir>/sha256-<hex>/content/     the content itself
//
// An entry is filled in a temporary directory beside it and renamed into place only when complete, so a
// crash or a failed pull never leaves a partial entry under the final name. An entry is used only when its
// content matches its inventory (checked once per process): a truncated, edited or half-deleted entry is
// set aside and filled again. Concurrent requests for one digest in this process share one fill
// (single-flight); another process filling the same digest at the same time loses nothing — whichever
// rename lands first wins and the other copy is dropped.
//
// The cache is bounded: after each fill, the least recently used entries are removed until the total is
// under `maxBytes`, never an entry leased in this process nor one used in the last `keepRecentMs` (another
// process may be building from it).

import { randomUUID } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { integrity } from "../../errors.ts";
import { type Digest, digestAlgorithm, digestHex } from "../../oci/digest.ts";
import { SingleFlight } from "../../util/concurrency.ts";
import { sha256HexOfFile } from "../../util/file-digest.ts";
import { isNotFoundError } from "../../util/fs.ts";

/** What an entry holds: a flattened image (`tree`) or an image's layer blobs and config (`layers`). */
export type ContentKind = "tree" | "layers";

export interface InventoryItem {
  path: string;
  type: "dir" | "file" | "symlink";
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

interface EntryRecord {
  format: 1;
  digest: string;
  kind: ContentKind;
  bytes: number;
  meta: unknown;
  inventory: InventoryItem[];
}

export interface ContentCacheOptions {
  /** The cache directory, e.g. `<cache-dir>/sources`. */
  dir: string;
  /** Total size kept (sum of content bytes). Default 32 GiB. */
  maxBytes?: number;
  /** Entries used this recently are never evicted (another process may be reading them). Default 10 min. */
  keepRecentMs?: number;
  /** Entries in an inventory, at most. Default 500,000. */
  maxInventory?: number;
}

/** An entry handed out; it is not evicted by this process until released. */
export interface ContentLease<M> {
  digest: Digest;
  /** The content directory. */
  dir: string;
  meta: M;
  /** True when the entry was already in the cache (nothing was pulled). */
  hit: boolean;
  release(): void;
}

export interface ObtainOptions {
  /** Called when an entry on disk was unusable and is being replaced. */
  onDiscard?: (reason: string) => void;
  /**
   * Whether an entry's metadata is what this caller needs; an entry whose metadata is not (written by an
   * older version that recorded less) is replaced as if unusable. Returns why not, or undefined.
   */
  checkMeta?: (meta: unknown) => string | undefined;
}

const entryFile = "entry.json";
const contentDir = "content";
const maxEntryFileBytes = 128 * 1024 * 1024;
const staleTempMs = 24 * 60 * 60 * 1000;

function keyOf(digest: Digest): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}`;
}

/** Every path under `root`, sorted, described well enough to notice any change. */
async function takeInventory(root: string, maxItems: number): Promise<{ items: InventoryItem[]; bytes: number }> {
  const items: InventoryItem[] = [];
  let bytes = 0;
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      if (items.length >= maxItems) throw integrity(`more than ${maxItems} files to cache`);
      const path = join(dir, name);
      const relative = prefix === "" ? name : `${prefix}/${name}`;
      const info = await lstat(path);
      const mode = info.mode & 0o7777;
      if (info.isDirectory()) {
        items.push({ path: relative, type: "dir", mode });
        await walk(path, relative);
      } else if (info.isFile()) {
        items.push({ path: relative, type: "file", mode, size: info.size, sha256: await sha256HexOfFile(path) });
        bytes += info.size;
      } else if (info.isSymbolicLink()) {
        items.push({ path: relative, type: "symlink", mode: 0, target: await readlink(path) });
      } else {
        throw integrity(`${relative}: a special file cannot be cached`);
      }
    }
  };
  await walk(root, "");
  return { items, bytes };
}

function sameItem(a: InventoryItem | undefined, b: InventoryItem): boolean {
  return (
    a !== undefined &&
    a.path === b.path &&
    a.type === b.type &&
    a.mode === b.mode &&
    a.size === b.size &&
    a.sha256 === b.sha256 &&
    a.target === b.target
  );
}

/** Removes a tree even where its own modes deny writing (flattened images keep read-only directories). */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EACCES" && (err as NodeJS.ErrnoException).code !== "EPERM") throw err;
    const unlock = async (dir: string): Promise<void> => {
      await chmod(dir, 0o700).catch(() => {});
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const child = join(dir, name);
        if ((await lstat(child).catch(() => undefined))?.isDirectory()) await unlock(child);
      }
    };
    await unlock(path);
    await rm(path, { recursive: true, force: true });
  }
}

export class SourceContentCache {
  readonly dir: string;
  readonly #maxBytes: number;
  readonly #keepRecentMs: number;
  readonly #maxInventory: number;
  readonly #inflight = new SingleFlight<string, { meta: unknown; hit: boolean }>();
  readonly #leases = new Map<string, number>();
  /** Entries whose content was checked against their inventory in this process. */
  readonly #checked = new Set<string>();

  constructor(options: ContentCacheOptions) {
    this.dir = options.dir;
    this.#maxBytes = options.maxBytes ?? 32 * 1024 ** 3;
    this.#keepRecentMs = options.keepRecentMs ?? 10 * 60 * 1000;
    this.#maxInventory = options.maxInventory ?? 500_000;
  }

  /**
   * The entry for `digest`: the one on disk when it is complete and intact, else a new one filled by `fill`
   * (which writes the content into the directory it is given and returns metadata kept with it).
   */
  async obtain<M>(
    digest: Digest,
    kind: ContentKind,
    fill: (dir: string) => Promise<M>,
    options: ObtainOptions = {},
  ): Promise<ContentLease<M>> {
    const key = keyOf(digest);
    const { meta, hit } = await this.#inflight.run(key, () =>
      this.#load(key, digest, kind, fill as (dir: string) => Promise<unknown>, options),
    );
    this.#leases.set(key, (this.#leases.get(key) ?? 0) + 1);
    let released = false;
    return {
      digest,
      dir: join(this.dir, key, contentDir),
      meta: meta as M,
      hit,
      release: () => {
        if (released) return;
        released = true;
        const count = (this.#leases.get(key) ?? 1) - 1;
        if (count <= 0) this.#leases.delete(key);
        else this.#leases.set(key, count);
      },
    };
  }

  /**
   * What a leased entry holds, path by path (relative to its `dir`), as its inventory records it: the content
   * was checked against it when the entry was first used in this process.
   */
  async inventory(lease: ContentLease<unknown>): Promise<ReadonlyMap<string, Readonly<InventoryItem>>> {
    const entryDir = join(this.dir, keyOf(lease.digest));
    const info = await lstat(join(entryDir, entryFile));
    if (!info.isFile() || info.size > maxEntryFileBytes) throw integrity(`${entryDir}: ${entryFile} is not usable`);
    const record = JSON.parse(await readFile(join(entryDir, entryFile), "utf8")) as EntryRecord;
    if (record.digest !== lease.digest || !Array.isArray(record.inventory))
      throw integrity(`${entryDir}: ${entryFile} does not describe ${lease.digest}`);
    return new Map(record.inventory.map((item) => [item.path, item]));
  }

  async #load(
    key: string,
    digest: Digest,
    kind: ContentKind,
    fill: (dir: string) => Promise<unknown>,
    options: ObtainOptions,
  ): Promise<{ meta: unknown; hit: boolean }> {
    const entryDir = join(this.dir, key);
    const existing = await this.#open(key, digest, kind);
    const metaProblem = existing.record === undefined ? undefined : options.checkMeta?.(existing.record.meta);
    if (existing.record !== undefined && metaProblem === undefined) {
      await this.#touch(entryDir);
      return { meta: existing.record.meta, hit: true };
    }
    const problem = metaProblem ?? existing.problem;
    if (problem !== undefined) options.onDiscard?.(problem);

    await mkdir(this.dir, { recursive: true });
    const temp = await mkdtemp(join(this.dir, `.tmp-${key}-`));
    try {
      const content = join(temp, contentDir);
      await mkdir(content);
      const meta = await fill(content);
      const { items, bytes } = await takeInventory(content, this.#maxInventory);
      const record: EntryRecord = { format: 1, digest, kind, bytes, meta, inventory: items };
      await writeFile(join(temp, entryFile), JSON.stringify(record));
      await this.#commit(temp, key, digest, kind, options.checkMeta);
      this.#checked.add(key);
      await this.#evict(key).catch(() => {}); // best effort: a full cache must not fail a build
      return { meta, hit: false };
    } finally {
      await removeTree(temp);
    }
  }

  /** Renames the filled temporary directory into place (replacing an unusable entry). */
  async #commit(
    temp: string,
    key: string,
    digest: Digest,
    kind: ContentKind,
    checkMeta: ObtainOptions["checkMeta"],
  ): Promise<void> {
    const entryDir = join(this.dir, key);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await rename(temp, entryDir);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      }
      // Something is already there: another process's complete entry (use it), or an unusable one.
      this.#checked.delete(key);
      const { record } = await this.#open(key, digest, kind);
      if (record !== undefined && checkMeta?.(record.meta) === undefined) return;
      await this.#setAside(entryDir);
    }
    throw integrity(`could not place the cache entry ${entryDir}`);
  }

  async #setAside(entryDir: string): Promise<void> {
    const trash = join(this.dir, `.trash-${randomUUID()}`);
    try {
      await rename(entryDir, trash);
    } catch (err) {
      if (isNotFoundError(err)) return;
      throw err;
    }
    await removeTree(trash);
  }

  /** The entry's record when it is complete and its content intact; otherwise why not (undefined: absent). */
  async #open(key: string, digest: Digest, kind: ContentKind): Promise<{ record?: EntryRecord; problem?: string }> {
    const entryDir = join(this.dir, key);
    let text: string;
    try {
      const info = await lstat(join(entryDir, entryFile));
      if (!info.isFile() || info.size > maxEntryFileBytes) return { problem: `${entryFile} is not a usable file` };
      text = await readFile(join(entryDir, entryFile), "utf8");
    } catch (err) {
      if (!isNotFoundError(err)) throw err;
      const present = await lstat(entryDir).catch(() => undefined);
      return present === undefined ? {} : { problem: `${entryFile} is missing` };
    }
    let record: EntryRecord;
    try {
      record = JSON.parse(text) as EntryRecord;
    } catch {
      return { problem: `${entryFile} is not JSON` };
    }
    if (record.format !== 1 || record.digest !== digest || record.kind !== kind || !Array.isArray(record.inventory))
      return { problem: `${entryFile} does not describe a ${kind} entry for ${digest}` };
    if (this.#checked.has(key)) return { record };
    let actual: InventoryItem[];
    try {
      actual = (await takeInventory(join(entryDir, contentDir), this.#maxInventory)).items;
    } catch (err) {
      if (isNotFoundError(err)) return { problem: "its content is missing" };
      return { problem: `its content cannot be read (${(err as Error).message})` };
    }
    const expected = record.inventory;
    if (actual.length !== expected.length) return { problem: "its content does not match its inventory" };
    for (const [i, item] of expected.entries())
      if (!sameItem(actual[i], item)) return { problem: `its content differs at ${item.path}` };
    this.#checked.add(key);
    return { record };
  }

  async #touch(entryDir: string): Promise<void> {
    const now = new Date();
    await utimes(entryDir, now, now).catch(() => {});
  }

  /** Removes least recently used entries until the cache fits, sparing leased and recent ones and `keep`. */
  async #evict(keep: string): Promise<void> {
    const entries: { key: string; bytes: number; usedAt: number }[] = [];
    const now = Date.now();
    for (const name of await readdir(this.dir)) {
      const entryDir = join(this.dir, name);
      const usedAt = (await lstat(entryDir).catch(() => undefined))?.mtimeMs;
      if (usedAt === undefined) continue;
      // Left behind by a process that died mid-fill: nobody will finish it.
      if (/^\.(tmp|trash)-/.test(name) && now - usedAt > staleTempMs) await removeTree(entryDir);
      if (!/^sha(256|512)-[0-9a-f]+$/.test(name)) continue;
      let bytes = 0;
      try {
        const head = JSON.parse(await readFile(join(entryDir, entryFile), "utf8")) as Partial<EntryRecord>;
        bytes = typeof head.bytes === "number" ? head.bytes : 0;
      } catch {
        // Unreadable: counts as nothing; it is replaced when next asked for.
      }
      entries.push({ key: name, bytes, usedAt });
    }
    let total = entries.reduce((sum, e) => sum + e.bytes, 0);
    for (const entry of entries.sort((a, b) => a.usedAt - b.usedAt)) {
      if (total <= this.#maxBytes) break;
      if (entry.key === keep || this.#leases.has(entry.key) || this.#inflight.has(entry.key)) continue;
      if (now - entry.usedAt < this.#keepRecentMs) continue;
      await this.#setAside(join(this.dir, entry.key));
      this.#checked.delete(entry.key);
      total -= entry.bytes;
    }
  }
}
