// Merging extensions into a catalog and comparing two catalogs: pure functions over ExtensionCatalog.
//
// An extension's name is its manifest's `metadata.name`. A catalog line does not carry it, but upstream
// publishes every extension as `ghcr.io/siderolabs/<metadata.name>` (siderolabs/extensions Makefile, the
// `internal/extensions/image-digests` target writes `$(REGISTRY)/$(USERNAME)/$(target):<version>@<digest>`),
// so for a listed entry the name is the last component of its repository path. An added extension replaces
// the listed entry of the same name, or of the same repository path; it takes that entry's place in the
// list, and new names are appended in the order given. Upstream entries keep their order.

import type { CatalogEntry, ExtensionCatalog } from "./catalog.ts";

/** The extension name a catalog entry stands for: the last component of its repository path. */
export function extensionNameOf(entry: Pick<CatalogEntry, "name">): string {
  return entry.name.slice(entry.name.lastIndexOf("/") + 1);
}

export interface AddedExtension {
  /** The manifest's metadata.name. */
  extensionName: string;
  entry: CatalogEntry;
}

export interface MergeOutcome {
  entries: CatalogEntry[];
  /** Listed entries an added extension replaced. */
  replaced: { old: CatalogEntry; by: CatalogEntry }[];
  /** Listed entries kept as they were. */
  kept: CatalogEntry[];
  added: CatalogEntry[];
}

export function mergeCatalogEntries(base: ExtensionCatalog, additions: readonly AddedExtension[]): MergeOutcome {
  const seen = new Map<string, AddedExtension>();
  for (const addition of additions) {
    const earlier = seen.get(addition.extensionName);
    if (earlier !== undefined)
      throw new RangeError(
        `two added images are the extension "${addition.extensionName}": ${earlier.entry.ref} and ${addition.entry.ref}`,
      );
    seen.set(addition.extensionName, addition);
  }
  const entries: CatalogEntry[] = [];
  const replaced: MergeOutcome["replaced"] = [];
  const kept: CatalogEntry[] = [];
  const placed = new Set<AddedExtension>();
  for (const old of base.entries) {
    const by = additions.find(
      (addition) => addition.extensionName === extensionNameOf(old) || addition.entry.name === old.name,
    );
    if (by === undefined) {
      entries.push(old);
      kept.push(old);
      continue;
    }
    // A second listed entry of a name already replaced is dropped too: the added one stands once.
    if (!placed.has(by)) entries.push(by.entry);
    placed.add(by);
    replaced.push({ old, by: by.entry });
  }
  const added: CatalogEntry[] = [];
  for (const addition of additions) {
    if (placed.has(addition)) continue;
    entries.push(addition.entry);
    added.push(addition.entry);
  }
  return { entries, replaced, kept, added };
}

export interface CatalogChange {
  name: string;
  before: CatalogEntry;
  after: CatalogEntry;
  /** Which fields differ: tag, digest, host, author, description. */
  fields: string[];
}

export interface CatalogDiff {
  added: CatalogEntry[];
  removed: CatalogEntry[];
  changed: CatalogChange[];
  unchanged: number;
}

/** Entries compared by repository path (what schematics name). */
export function diffCatalogs(before: ExtensionCatalog, after: ExtensionCatalog): CatalogDiff {
  const old = new Map(before.entries.map((entry) => [entry.name, entry]));
  const now = new Map(after.entries.map((entry) => [entry.name, entry]));
  const diff: CatalogDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const entry of after.entries) {
    const was = old.get(entry.name);
    if (was === undefined) {
      diff.added.push(entry);
      continue;
    }
    const fields = (["tag", "digest", "host", "author", "description"] as const).filter((f) => was[f] !== entry[f]);
    if (fields.length === 0) diff.unchanged++;
    else diff.changed.push({ name: entry.name, before: was, after: entry, fields });
  }
  for (const entry of before.entries) if (!now.has(entry.name)) diff.removed.push(entry);
  return diff;
}
