// The extensions catalog (`siderolabs/extensions:<version>`) and the overlays catalog
// (`siderolabs/overlays:<version>`), parsed and written in upstream's exact formats:
//   image-digests      one line per extension: `ghcr.io/siderolabs/amd-ucode:20240115@sha256:<hex>`
//   descriptions.yaml  ONE mapping keyed by the full image-digests line → {author, description}
//   overlays.yaml      `overlays: [{name, image, digest}]`
// Consumers (image-factory) cut each line at "@", skip lines without one, identify an extension by its
// repository path (`siderolabs/amd-ucode`), and pull it from their own registry: the host is ignored.

import { Document, isMap, isScalar, Scalar } from "yaml";
import { badRequest } from "../errors.ts";
import { parseBoundedYaml } from "./extension.ts";

export interface CatalogEntry {
  /** Repository path without the host, e.g. "siderolabs/amd-ucode": what schematics name. */
  name: string;
  /** The line as the catalog lists it (host included). */
  ref: string;
  /** The host part of the line ("ghcr.io"), ignored by consumers. */
  host: string;
  tag: string;
  digest: string;
  author: string;
  description: string;
}

/** Catalog files are small: a few hundred lines. */
const maxCatalogBytes = 4 * 1024 * 1024;
/**
 * Entries a catalog may list: upstream's have a few hundred at most. Tens of thousands of (valid) lines fit in
 * the byte limit and would be served, searched per request and held per version: refused as a broken source.
 */
export const maxCatalogEntries = 10_000;
const digestPattern = /^sha256:[0-9a-f]{64}$/;

/** Splits "host/path/name:tag@sha256:…" into its parts; undefined when the line has no "@". */
export function parseCatalogLine(line: string): Omit<CatalogEntry, "author" | "description"> | undefined {
  const ref = line.trim();
  const at = ref.indexOf("@");
  if (at === -1) return undefined;
  const nameAndTag = ref.slice(0, at);
  const digest = ref.slice(at + 1);
  if (!digestPattern.test(digest)) throw badRequest(`extensions catalog: bad digest in "${ref}"`);
  const slash = nameAndTag.lastIndexOf("/");
  const colon = nameAndTag.lastIndexOf(":");
  const tag = colon > slash ? nameAndTag.slice(colon + 1) : "";
  const repository = colon > slash ? nameAndTag.slice(0, colon) : nameAndTag;
  // Like a Docker reference: the first component is a host if it has a "." or ":" or is "localhost".
  const first = repository.split("/")[0] ?? "";
  const hasHost = repository.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const host = hasHost ? first : "";
  const name = hasHost ? repository.slice(first.length + 1) : repository;
  if (name === "" || !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(name))
    throw badRequest(`extensions catalog: bad repository in "${ref}"`);
  return { name, ref, host, tag, digest };
}

export class ExtensionCatalog {
  readonly entries: readonly CatalogEntry[];

  constructor(entries: readonly CatalogEntry[]) {
    this.entries = entries;
  }

  /** Parses the two catalog files (`descriptionsYaml` may be absent: authors/descriptions stay empty). */
  static parse(imageDigests: string, descriptionsYaml?: string): ExtensionCatalog {
    if (Buffer.byteLength(imageDigests) > maxCatalogBytes)
      throw badRequest("extensions catalog: image-digests too large");
    const descriptions = descriptionsYaml === undefined ? {} : parseDescriptions(descriptionsYaml);
    const entries: CatalogEntry[] = [];
    for (const line of imageDigests.split("\n")) {
      const parsed = parseCatalogLine(line);
      if (parsed === undefined) continue;
      if (entries.length === maxCatalogEntries)
        throw badRequest(`extensions catalog: image-digests lists more than ${maxCatalogEntries} entries`);
      const about = descriptions[parsed.ref];
      entries.push({ ...parsed, author: about?.author ?? "", description: about?.description ?? "" });
    }
    return new ExtensionCatalog(entries);
  }

  /** The entry for a repository path ("siderolabs/amd-ucode"), or undefined. */
  find(name: string): CatalogEntry | undefined {
    return this.entries.find((entry) => entry.name === name);
  }

  /** `image-digests` as upstream writes it: one line per entry, each ending in "\n". */
  imageDigestsText(): string {
    return this.entries.map((entry) => `${entry.ref}\n`).join("");
  }

  /** `descriptions.yaml` as upstream writes it (2-space indent, literal block for multi-line text). */
  descriptionsYamlText(): string {
    const doc = new Document({});
    const root = doc.contents as unknown as { set(key: unknown, value: unknown): void };
    for (const entry of this.entries) {
      const about = new Document({ author: entry.author, description: entry.description }).contents;
      if (isMap(about))
        for (const pair of about.items)
          if (isScalar(pair.value) && typeof pair.value.value === "string" && pair.value.value.includes("\n"))
            pair.value.type = Scalar.BLOCK_LITERAL;
      root.set(entry.ref, about);
    }
    return doc.toString({ indent: 2, lineWidth: 0, minContentWidth: 0 });
  }
}

function parseDescriptions(text: string): Record<string, { author?: string; description?: string }> {
  const raw = parseBoundedYaml(text, "extensions catalog descriptions.yaml", maxCatalogBytes);
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw badRequest("descriptions.yaml: not a YAML mapping");
  const out: Record<string, { author?: string; description?: string }> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== "object" || value === null) continue;
    const { author, description } = value as { author?: unknown; description?: unknown };
    out[key] = {
      author: typeof author === "string" ? author : undefined,
      description: typeof description === "string" ? description : undefined,
    };
  }
  return out;
}

/** The reference to pull an entry from `registry` (host[:port]): the catalog's own host is ignored. */
export function catalogImageRef(entry: Pick<CatalogEntry, "name" | "tag" | "digest">, registry: string): string {
  return `${registry}/${entry.name}${entry.tag === "" ? "" : `:${entry.tag}`}@${entry.digest}`;
}

// ---------------------------------------------------------------------------------------------------------
// Overlays

export interface OverlayEntry {
  /** The overlay's name as schematics use it, e.g. "rpi_generic". */
  name: string;
  /** Image repository (e.g. "siderolabs/sbc-raspberrypi"; may carry a host, ignored by consumers). */
  image: string;
  digest: string;
}

export function parseOverlaysCatalog(text: string): OverlayEntry[] {
  const raw = parseBoundedYaml(text, "overlays.yaml", maxCatalogBytes) as { overlays?: unknown } | null;
  const list = raw?.overlays;
  if (!Array.isArray(list)) throw badRequest("overlays.yaml: `overlays` must be a list");
  if (list.length > maxCatalogEntries) throw badRequest(`overlays.yaml: lists more than ${maxCatalogEntries} entries`);
  return list.map((item, i) => {
    const { name, image, digest } = (item ?? {}) as Record<string, unknown>;
    if (
      typeof name !== "string" ||
      typeof image !== "string" ||
      typeof digest !== "string" ||
      !digestPattern.test(digest)
    )
      throw badRequest(`overlays.yaml: entry ${i} needs string name, image and a sha256 digest`);
    return { name, image, digest };
  });
}

export function writeOverlaysCatalog(overlays: readonly OverlayEntry[]): string {
  const doc = new Document({ overlays: overlays.map(({ name, image, digest }) => ({ name, image, digest })) });
  return doc.toString({ indent: 2, lineWidth: 0 });
}
