// talosctl binaries from a release's `talosctl-all` image (`<talosctl-image>:<tag>`), read the way every
// source image is: the tag resolved and its signature verified, then pulled by that digest for linux/amd64
// (image-factory internal/artifacts/fetch.go fetchTalosctlImage) and flattened into the content cache, which
// already shares one fill per digest between concurrent requests and keeps it for the next start.
//
// Upstream (internal/artifacts/versions.go extractTalosctlTuples) lists the entries named `talosctl-*` at the
// image root, each `talosctl-<os>-<arch>[.exe]`, sorted by name (internal/frontend/http/ui.go TalosctlPaths);
// any other `talosctl-*` entry fails the list, as does an image with none. Here such an entry must also be a
// regular file with a name safe in a URL and a header ([A-Za-z0-9._] around the dashes); anything else
// makes the image a broken source (502 naming it), not the request's fault.
//
// A download is any regular file at the image root (upstream serves what it exported, one path segment).
//
// Each request takes a lease on the cached tree (its tag verified at most once a TTL by the resolver); what
// the tree holds is read from the cache's inventory once per image digest and remembered: the digest names
// the content, so a moved tag is a new digest and a new read.

import { join } from "node:path";
import { AppError, isAppError, notFound, upstream } from "../../errors.ts";
import { SingleFlight } from "../../util/concurrency.ts";
import type { ContentLease, InventoryItem, SourceContentCache } from "./content-cache.ts";
import type { ImagerInputResolver } from "./imager-inputs.ts";
import type { TalosVersion } from "./version-selection.ts";

export interface TalosctlServiceOptions {
  /** Verifies and pulls the image into its content cache (which also says what an entry holds). */
  resolver: Pick<ImagerInputResolver, "pullTree"> & { cache: Pick<SourceContentCache, "inventory"> };
  /** The talosctl-all image without tag (FactoryConfig.images.talosctl). */
  image: string;
}

/** A file of the image, to send; release it once the response is over. */
export interface TalosctlFile {
  name: string;
  path: string;
  size: number;
  /** `sha256:<hex>` of the content, from the content cache's inventory. */
  sha256: string;
  /** The image it came from, pinned. */
  image: string;
  release(): void;
}

/** Names at the image root the factory can serve: one path segment, safe in a URL and in a quoted header. */
const servableName = /^[A-Za-z0-9._+-]{1,255}$/;
const talosctlName = /^talosctl-([A-Za-z0-9._]+)-([A-Za-z0-9._]+)$/;

/** Image inventories remembered at most (the least recently used go first): one a Talos version. */
const maxRememberedInventories = 64;

type Inventory = ReadonlyMap<string, Readonly<InventoryItem>>;

/** The version as upstream names it in "not available" (semver without "v"). */
function notAvailable(version: TalosVersion, cause: unknown): AppError {
  return new AppError("NotFound", `version ${version.name.slice(1)} is not available`, {
    code: "VERSION_UNKNOWN",
    cause,
  });
}

export class TalosctlService {
  readonly #options: TalosctlServiceOptions;
  /** Inventories by the digest of the pulled tree, most recently used last. */
  readonly #inventories = new Map<string, Inventory>();
  readonly #inventoryReads = new SingleFlight<string, Inventory>();

  constructor(options: TalosctlServiceOptions) {
    this.#options = options;
  }

  /** The image for `version`, pulled and leased; its tag missing is the version not being available (404). */
  async #pull(version: TalosVersion, signal?: AbortSignal) {
    const reference = `${this.#options.image}:${version.tag}`;
    try {
      const { image, lease } = await this.#options.resolver.pullTree(reference, "talosctl", {
        arch: "amd64",
        ...(signal === undefined ? {} : { signal }),
      });
      try {
        return { image: image.pinned, lease, files: await this.#inventory(lease) };
      } catch (err) {
        lease.release();
        throw err;
      }
    } catch (err) {
      // Upstream: a registry 404 for the tag → `version X is not available` (manager.go GetTalosctlImage).
      if (isAppError(err, "NotFound")) throw notAvailable(version, err);
      throw err;
    }
  }

  /** What the leased tree holds: remembered by its digest, else read once however many ask at once. */
  async #inventory(lease: ContentLease<unknown>): Promise<Inventory> {
    const known = this.#inventories.get(lease.digest);
    if (known !== undefined) {
      this.#inventories.delete(lease.digest);
      this.#inventories.set(lease.digest, known);
      return known;
    }
    return this.#inventoryReads.run(lease.digest, async () => {
      const files = await this.#options.resolver.cache.inventory(lease);
      this.#inventories.set(lease.digest, files);
      if (this.#inventories.size > maxRememberedInventories) {
        const oldest = this.#inventories.keys().next().value;
        if (oldest !== undefined) this.#inventories.delete(oldest);
      }
      return files;
    });
  }

  /** The talosctl binaries of the version's image, sorted by name. */
  async list(version: TalosVersion, signal?: AbortSignal): Promise<string[]> {
    const { image, lease, files } = await this.#pull(version, signal);
    try {
      const names: string[] = [];
      for (const [path, item] of files) {
        if (path.includes("/") || !path.startsWith("talosctl-")) continue;
        const stem = path.endsWith(".exe") ? path.slice(0, -".exe".length) : path;
        if (!talosctlName.test(stem) || item.type !== "file")
          throw upstream(`talosctl-all image ${image}: invalid talosctl file name ${path}`);
        names.push(path);
      }
      if (names.length === 0) throw upstream(`talosctl-all image ${image}: failed to find talosctl binaries`);
      return names.sort();
    } finally {
      lease.release();
    }
  }

  /** A regular file at the image root; 404 naming the talosctl binaries there when it is not one. */
  async open(version: TalosVersion, name: string, signal?: AbortSignal): Promise<TalosctlFile> {
    const { image, lease, files } = await this.#pull(version, signal);
    const item = servableName.test(name) && name !== "." && name !== ".." ? files.get(name) : undefined;
    if (item === undefined || item.type !== "file" || item.size === undefined || item.sha256 === undefined) {
      lease.release();
      const available = [...files.keys()].filter((path) => !path.includes("/") && path.startsWith("talosctl-"));
      throw notFound(
        `${JSON.stringify(name.slice(0, 255))} is not a file of ${image}; it has: ${available.sort().join(", ") || "nothing"}`,
        "TALOSCTL_FILE_UNKNOWN",
      );
    }
    return {
      name,
      path: join(lease.dir, name),
      size: item.size,
      sha256: `sha256:${item.sha256}`,
      image,
      release: () => lease.release(),
    };
  }
}
