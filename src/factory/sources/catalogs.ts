// The extensions and overlays each offered Talos version has, read from the catalog images
// (`<extension-manifest-image>:<tag>`, `<overlay-manifest-image>:<tag>`) and served in the API's shapes:
//   extensions [{name, ref, digest, author, description}]   name = repository path, e.g. siderolabs/amd-ucode
//   overlays   [{name, image, ref, digest}]                 image = repository path of the overlay image
// Like upstream, the host written in catalog lines is ignored: images are pulled from the configured image
// registry (and namespace), and `ref` says so — `<registry>[/<namespace>]/<name>:<tag>` (upstream prints the
// catalog's own host there; we print where the factory really pulls from).
//
// Beyond upstream: extra extension catalogs (`-extra-extensions-catalog`, "{version}" replaced by the version
// tag) are merged into each version's list. Each is verified like any source image; the images it lists are
// pulled from the extra catalog's own registry. A catalog not published for a version is skipped with a
// warning (as upstream does for its extra catalog); on a name clash the extra entry wins (later extra
// catalogs over earlier ones, every extra over the official one) and a warning is logged. Extras come first,
// as upstream lists them.
//
// Lists are cached per version, re-read in the background after the registry refresh interval; an image
// whose digest did not change is not pulled again. Any failure reading a catalog (registry, signature,
// content) is an Upstream error: the factory's source is at fault, not the request.

import { AppError, badRequest, isAppError, notFound } from "../../errors.ts";
import { parseReference } from "../../oci/reference.ts";
import type { SignatureVerifier, VerifiedImage } from "../../signing/verify.ts";
import { ExtensionCatalog, parseOverlaysCatalog } from "../../talos/catalog.ts";
import { type CatalogImageLimits, readCatalogFiles } from "../../talos/catalog-image.ts";
import { rulesFor } from "../../talos/version-rules.ts";
import { extraCatalogReference } from "../config/model.ts";
import { RefreshingCache } from "./refreshing-cache.ts";
import { type Clock, errorMessage, type SourcesLog, type SourcesMetrics, systemClock } from "./runtime.ts";
import { parseRequestedVersion, type TalosVersion, talosVersionName } from "./version-selection.ts";
import type { TalosVersionService } from "./versions.ts";

/** One entry of `/version/:v/extensions/official`. */
export interface ExtensionInfo {
  name: string;
  ref: string;
  digest: string;
  author: string;
  description: string;
}

/** One entry of `/version/:v/overlays/official`. */
export interface OverlayInfo {
  name: string;
  image: string;
  ref: string;
  digest: string;
}

/** Where an extension is pulled from, for the imager. */
export interface ExtensionSource extends ExtensionInfo {
  /** `<registry>/<repository>@<digest>`: the reference to verify and pull. */
  pull: string;
  /** The catalog image it was listed in. */
  catalog: string;
}

export interface OverlaySource extends OverlayInfo {
  pull: string;
  catalog: string;
}

export interface CatalogImages {
  /** host[:port] the official catalogs and the images they list are pulled from. */
  registry: string;
  /** Path prefix under the registry ("" for none), as upstream's namespace. */
  namespace: string;
  /** Full image names without tag, e.g. `ghcr.io/siderolabs/extensions`. */
  extensionManifest: string;
  overlayManifest: string;
}

export interface CatalogServiceOptions {
  versions: TalosVersionService;
  verifier: SignatureVerifier;
  images: CatalogImages;
  /** Catalog references with "{version}" standing for the Talos version tag. */
  extraExtensionCatalogs: readonly string[];
  refreshIntervalMs: number;
  log: SourcesLog;
  metrics?: SourcesMetrics;
  clock?: Clock;
  /** Where catalog images are flattened (temporary directories); default the OS temp dir. */
  workDir?: string;
  limits?: CatalogImageLimits;
}

/** Parsed catalogs kept by image digest, so a refresh that finds the same digest pulls nothing. */
const maxParsedCatalogs = 256;
const maxCachedVersions = 128;

export class CatalogService {
  readonly #options: CatalogServiceOptions;
  readonly #clock: Clock;
  readonly #extensions: RefreshingCache<readonly ExtensionSource[]>;
  readonly #overlays: RefreshingCache<readonly OverlaySource[]>;
  readonly #parsed = new Map<string, readonly (ExtensionSource | OverlaySource)[]>();
  readonly #warned = new Set<string>();

  constructor(options: CatalogServiceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    const common = {
      refreshIntervalMs: options.refreshIntervalMs,
      maxEntries: maxCachedVersions,
      clock: this.#clock,
    };
    this.#extensions = new RefreshingCache({
      ...common,
      load: (tag) => this.#timed("extensions", () => this.#loadExtensions(tag)),
      onRefreshError: (tag, err) =>
        options.log.warn(
          { version: tag, err: errorMessage(err) },
          "re-reading the extension catalogs failed; serving the last good list",
        ),
    });
    this.#overlays = new RefreshingCache({
      ...common,
      load: (tag) => this.#timed("overlays", () => this.#loadOverlays(tag)),
      onRefreshError: (tag, err) =>
        options.log.warn(
          { version: tag, err: errorMessage(err) },
          "re-reading the overlays catalog failed; serving the last good list",
        ),
    });
  }

  /** `/version/:v/extensions/official`: BadRequest for a malformed version, NotFound for one not offered. */
  async extensions(version: string): Promise<ExtensionInfo[]> {
    return (await this.extensionSources(version)).map(({ name, ref, digest, author, description }) => ({
      name,
      ref,
      digest,
      author,
      description,
    }));
  }

  /** `/version/:v/overlays/official`: empty for versions before overlays existed (as upstream). */
  async overlays(version: string): Promise<OverlayInfo[]> {
    return (await this.overlaySources(version)).map(({ name, image, ref, digest }) => ({ name, image, ref, digest }));
  }

  async extensionSources(version: string): Promise<readonly ExtensionSource[]> {
    const talos = await this.#offered(version);
    return this.#extensions.get(talos.tag);
  }

  async overlaySources(version: string): Promise<readonly OverlaySource[]> {
    const talos = await this.#offered(version);
    if (!rulesFor(talos.tag).overlays) return [];
    return this.#overlays.get(talos.tag);
  }

  /** The extension `name` (repository path, e.g. "siderolabs/amd-ucode") for a version; NotFound if unlisted. */
  async extension(version: string, name: string): Promise<ExtensionSource> {
    const found = (await this.extensionSources(version)).find((e) => e.name === name);
    if (found === undefined) throw notFound(`extension ${name} is not available for Talos ${version}`);
    return found;
  }

  /** The overlay `name` (e.g. "rpi_generic") for a version; NotFound if unlisted. */
  async overlay(version: string, name: string): Promise<OverlaySource> {
    const found = (await this.overlaySources(version)).find((o) => o.name === name);
    if (found === undefined) throw notFound(`overlay ${name} is not available for Talos ${version}`);
    return found;
  }

  /** Waits for catalog reads under way. */
  async settled(): Promise<void> {
    await Promise.all([this.#extensions.settled(), this.#overlays.settled()]);
  }

  async #offered(version: string): Promise<TalosVersion> {
    const name = talosVersionName(parseRequestedVersion(version));
    await this.#options.versions.list();
    const talos = this.#options.versions.resolve(name);
    if (talos === undefined) throw notFound(`Talos version ${name} is not available`, "VERSION_UNKNOWN");
    return talos;
  }

  async #timed<T>(source: "extensions" | "overlays", work: () => Promise<T>): Promise<T> {
    const started = this.#clock.now();
    try {
      const result = await work();
      this.#options.metrics?.sourceRefreshed?.(source, "ok", this.#clock.now() - started);
      return result;
    } catch (err) {
      this.#options.metrics?.sourceRefreshed?.(source, "error", this.#clock.now() - started);
      throw err;
    }
  }

  #officialPrefix(): string {
    const { registry, namespace } = this.#options.images;
    const trimmed = namespace.replace(/^\/+|\/+$/g, "");
    return trimmed === "" ? registry : `${registry}/${trimmed}`;
  }

  async #loadExtensions(tag: string): Promise<readonly ExtensionSource[]> {
    const officialRef = `${this.#options.images.extensionManifest}:${tag}`;
    const official = await this.#readExtensionCatalog(officialRef, this.#officialPrefix());
    const extras = new Map<string, ExtensionSource>();
    for (const template of this.#options.extraExtensionCatalogs) {
      const reference = extraCatalogReference(template, tag);
      const listed = await this.#readExtensionCatalog(reference, parseReference(reference).registry, {
        missingIsEmpty: true,
      });
      if (listed === undefined) {
        this.#warnOnce(
          `missing|${reference}`,
          { version: tag, catalog: reference },
          "extra extensions catalog is not published for this Talos version; skipped",
        );
        continue;
      }
      for (const entry of listed) {
        const earlier = extras.get(entry.name);
        if (earlier !== undefined && earlier.catalog !== entry.catalog) this.#warnClash(tag, earlier, entry);
        extras.set(entry.name, entry);
      }
    }
    const merged: ExtensionSource[] = [...extras.values()];
    for (const entry of official ?? []) {
      const override = extras.get(entry.name);
      if (override === undefined) merged.push(entry);
      else this.#warnClash(tag, entry, override);
    }
    return Object.freeze(merged);
  }

  #warnClash(tag: string, replaced: ExtensionSource, winner: ExtensionSource): void {
    this.#warnOnce(
      `clash|${tag}|${replaced.ref}@${replaced.digest}|${winner.ref}@${winner.digest}`,
      {
        version: tag,
        extension: winner.name,
        replaced: replaced.ref,
        replacedCatalog: replaced.catalog,
        by: winner.ref,
        catalog: winner.catalog,
      },
      "an extra extensions catalog overrides an extension of the same name",
    );
  }

  #warnOnce(key: string, details: object, message: string): void {
    if (this.#warned.has(key)) return;
    if (this.#warned.size > 10_000) this.#warned.clear();
    this.#warned.add(key);
    this.#options.log.warn(details, message);
  }

  async #loadOverlays(tag: string): Promise<readonly OverlaySource[]> {
    const reference = `${this.#options.images.overlayManifest}:${tag}`;
    const prefix = this.#officialPrefix();
    return (await this.#readCatalog(reference, "overlays catalog", prefix, {}, async (image) => {
      const text = (await this.#files(image, ["overlays.yaml"])).get("overlays.yaml");
      if (text === undefined) throw badRequest("it has no overlays.yaml");
      return parseOverlaysCatalog(text).map((overlay): OverlaySource => {
        const ref = parseReference(overlay.image);
        const tagPart = ref.tag ?? "latest";
        return {
          name: overlay.name,
          image: ref.repository,
          ref: `${prefix}/${ref.repository}:${tagPart}`,
          digest: overlay.digest,
          pull: `${prefix}/${ref.repository}@${overlay.digest}`,
          catalog: image.pinned,
        };
      });
    })) as readonly OverlaySource[];
  }

  async #readExtensionCatalog(
    reference: string,
    prefix: string,
    options: { missingIsEmpty?: boolean } = {},
  ): Promise<readonly ExtensionSource[] | undefined> {
    const result = await this.#readCatalog(reference, "extensions catalog", prefix, options, async (image) => {
      const files = await this.#files(image, ["image-digests", "descriptions.yaml"]);
      const digests = files.get("image-digests");
      if (digests === undefined) throw badRequest("it has no image-digests file");
      return ExtensionCatalog.parse(digests, files.get("descriptions.yaml")).entries.map(
        (entry): ExtensionSource => ({
          name: entry.name,
          ref: `${prefix}/${entry.name}${entry.tag === "" ? "" : `:${entry.tag}`}`,
          digest: entry.digest,
          author: entry.author,
          description: entry.description,
          pull: `${prefix}/${entry.name}@${entry.digest}`,
          catalog: image.pinned,
        }),
      );
    });
    return result as readonly ExtensionSource[] | undefined;
  }

  #files(image: VerifiedImage, names: string[]): Promise<Map<string, string | undefined>> {
    return readCatalogFiles(image, names, { workDir: this.#options.workDir, limits: this.#options.limits });
  }

  /**
   * Verifies `reference`, then parses it by digest (or reuses what that digest parsed to before). Undefined
   * when `missingIsEmpty` and the image does not exist; every other failure becomes an Upstream error.
   */
  async #readCatalog(
    reference: string,
    what: string,
    prefix: string,
    options: { missingIsEmpty?: boolean },
    parse: (image: VerifiedImage) => Promise<readonly (ExtensionSource | OverlaySource)[]>,
  ): Promise<readonly (ExtensionSource | OverlaySource)[] | undefined> {
    let image: VerifiedImage;
    try {
      image = await this.#options.verifier.verify(reference);
    } catch (err) {
      if (options.missingIsEmpty && isAppError(err, "NotFound")) return undefined;
      throw sourceError(what, reference, err);
    }
    if (image.rejected.length > 0)
      this.#options.log.warn(
        { image: image.pinned, rejected: image.rejected.slice(0, 20), count: image.rejected.length },
        "verified, beside candidate signatures that did not verify",
      );
    const key = `${what}|${prefix}|${image.pinned}`;
    const known = this.#parsed.get(key);
    if (known !== undefined) return known;
    let entries: readonly (ExtensionSource | OverlaySource)[];
    try {
      entries = Object.freeze(await parse(image));
    } catch (err) {
      throw sourceError(what, image.pinned, err);
    }
    this.#parsed.set(key, entries);
    if (this.#parsed.size > maxParsedCatalogs) this.#parsed.delete(this.#parsed.keys().next().value as string);
    this.#options.log.info(
      { catalog: image.pinned, tag: reference, verified: image.verified, count: entries.length },
      `${what} read`,
    );
    return entries;
  }
}

/** A catalog that could not be read: the factory's source failed, whatever the cause. */
function sourceError(what: string, reference: string, err: unknown): AppError {
  const code = isAppError(err, "Integrity") ? "SOURCE_UNTRUSTED" : isAppError(err) ? err.code : undefined;
  const reason = isAppError(err, "Integrity") ? `refused: ${errorMessage(err)}` : errorMessage(err);
  return new AppError("Upstream", `${what} ${reference}: ${reason}`, { cause: err, code });
}
