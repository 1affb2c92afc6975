// What `boot-assets mirror` copies for one Talos version, worked out the way the factory consumes a release
// (src/factory/sources/): the imager and the installer image the version rules name (`installer` before 1.10,
// `installer-base` from it), the extensions and overlays catalogs (overlays only for versions that have them),
// the extensions and overlays asked for, resolved through the catalogs by digest and pulled from the source
// registry as the factory pulls them (the catalog's host ignored), and talosctl-all for the versions whose
// factory serves talosctl downloads. Upstream reads the same set: image-factory internal/artifacts/fetch.go
// (fetchImager, InstallerImageName by quirks SupportsUnifiedInstaller, fetchTalosctlImage, the extension and
// overlay images by digest).
//
// Every image is verified with the factory's verification options before anything is copied: a source that
// fails is refused, named with the reason, and the whole plan with it, so nothing of it reaches the mirror.

import { AppError, badRequest, isAppError, notFound } from "../../errors.ts";
import type { Digest } from "../../oci/digest.ts";
import { parseReference } from "../../oci/reference.ts";
import type { SignatureVerifier, VerifiedImage } from "../../signing/verify.ts";
import { ExtensionCatalog, parseOverlaysCatalog } from "../../talos/catalog.ts";
import { readCatalogFiles } from "../../talos/catalog-image.ts";
import { rulesFor } from "../../talos/version-rules.ts";
import { mapLimited } from "../../util/concurrency.ts";

/** The image names of a release, without registry or namespace (the factory's -*-image settings). */
export interface ReleaseImageNames {
  imager: string;
  installerBase: string;
  installer: string;
  extensionManifest: string;
  overlayManifest: string;
  talosctl: string;
}

export type MirrorItemKind =
  | "imager"
  | "installer"
  | "installer-base"
  | "extensions-catalog"
  | "overlays-catalog"
  | "extension"
  | "overlay"
  | "talosctl-all";

/** One image to copy: verified at the source, copied by digest, tagged at the destination. */
export interface MirrorItem {
  kind: MirrorItemKind;
  /** Repository path below the registry prefix, e.g. "siderolabs/imager". */
  name: string;
  /** Tag it gets at the destination (the source's tag, or the catalog's for extensions and overlays). */
  tag: string;
  digest: Digest;
  /** The verified source image, read by its digest only. */
  image: VerifiedImage;
}

/** A list asked for on the command line: every entry, or these names. */
export type Selection = "all" | readonly string[];

export interface PlanRequest {
  /** v-prefixed Talos version tag. */
  talosVersion: string;
  /** `registry[/namespace]` images are read from. */
  sourcePrefix: string;
  names: ReleaseImageNames;
  extensions: Selection;
  overlays: Selection;
  verifier: SignatureVerifier;
  /** Images verified at once. */
  concurrency: number;
  /** Where catalog images are flattened to be read; default the OS temp dir. */
  workDir?: string;
  /** Called after each image verified. */
  onVerified?: (item: MirrorItem) => void;
  signal?: AbortSignal;
}

interface Wanted {
  kind: MirrorItemKind;
  name: string;
  tag: string;
  /** Pinned by a catalog; else the tag is resolved at the source (once, by the verifier). */
  digest?: Digest;
}

/** Why an image was refused, naming it. */
function refusal(reference: string, err: unknown): string {
  return `${reference}: ${err instanceof Error ? err.message : String(err)}`;
}

/** Selected entries by name: the full repository path ("siderolabs/amd-ucode") or its last component. */
function select<T>(
  what: string,
  entries: readonly T[],
  selection: Selection,
  namesOf: (entry: T) => string[],
  version: string,
): T[] {
  if (selection === "all") return [...entries];
  const chosen: T[] = [];
  const unknown: string[] = [];
  for (const wanted of selection) {
    const entry = entries.find((e) => namesOf(e).includes(wanted));
    if (entry === undefined) unknown.push(wanted);
    else if (!chosen.includes(entry)) chosen.push(entry);
  }
  if (unknown.length > 0) {
    const offered = entries.map((e) => namesOf(e)[0]).join(", ");
    throw badRequest(
      `${what} not in the Talos ${version} catalog: ${unknown.join(", ")} (it lists: ${offered || "none"})`,
    );
  }
  return chosen;
}

function lastComponent(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export class MirrorPlanner {
  readonly #request: PlanRequest;

  constructor(request: PlanRequest) {
    this.#request = request;
  }

  #reference(name: string, tagOrDigest: string): string {
    const separator = tagOrDigest.includes(":") ? "@" : ":";
    return `${this.#request.sourcePrefix}/${name}${separator}${tagOrDigest}`;
  }

  async #verify(wanted: Wanted): Promise<MirrorItem> {
    this.#request.signal?.throwIfAborted();
    const image = await this.#request.verifier.verify(this.#reference(wanted.name, wanted.digest ?? wanted.tag));
    const item: MirrorItem = { kind: wanted.kind, name: wanted.name, tag: wanted.tag, digest: image.digest, image };
    this.#request.onVerified?.(item);
    return item;
  }

  /**
   * Verifies the wanted images; once all have been tried, throws one error naming every image that failed:
   * Integrity when a signature did not verify (whatever else failed), else the first failure's kind.
   */
  async #verifyAll(wanted: readonly Wanted[]): Promise<MirrorItem[]> {
    const failures: Array<{ reference: string; err: AppError }> = [];
    const results = await mapLimited(wanted, this.#request.concurrency, async (w) => {
      try {
        return await this.#verify(w);
      } catch (err) {
        if (this.#request.signal?.aborted || !isAppError(err)) throw err;
        failures.push({ reference: this.#reference(w.name, w.digest ? `${w.tag}@${w.digest}` : w.tag), err });
        return undefined;
      }
    });
    if (failures.length === 0) return results as MirrorItem[];
    const refused = failures.some((f) => f.err.kind === "Integrity");
    const first = failures[0] as { err: AppError };
    // One per line; the CLI makes a registry failure one line, and the ";" still separates them there.
    const lines = failures.map((f) => refusal(f.reference, f.err)).join(";\n  ");
    throw new AppError(
      refused ? "Integrity" : first.err.kind,
      refused
        ? `refused ${failures.length} source image(s) (a signature does not verify); nothing was copied:\n  ${lines}`
        : `cannot read ${failures.length} source image(s); nothing was copied:\n  ${lines}`,
      { cause: first.err, code: refused ? "SOURCE_UNTRUSTED" : first.err.code },
    );
  }

  /** The verified images of the release, catalogs read to resolve the selected extensions and overlays. */
  async plan(): Promise<MirrorItem[]> {
    const { talosVersion: version, names } = this.#request;
    const rules = rulesFor(version);
    if (this.#request.overlays !== "all" && this.#request.overlays.length > 0 && !rules.overlays)
      throw badRequest(`Talos ${version} has no overlays (they exist from 1.7); drop --overlays`);
    const core: Wanted[] = [
      { kind: "imager", name: names.imager, tag: version },
      rules.installerImage === "installer-base"
        ? { kind: "installer-base", name: names.installerBase, tag: version }
        : { kind: "installer", name: names.installer, tag: version },
      { kind: "extensions-catalog", name: names.extensionManifest, tag: version },
    ];
    if (rules.overlays) core.push({ kind: "overlays-catalog", name: names.overlayManifest, tag: version });
    if (rules.talosctlDownload) core.push({ kind: "talosctl-all", name: names.talosctl, tag: version });
    const items = await this.#verifyAll(core);
    const listed: Wanted[] = [];
    for (const item of items) {
      if (item.kind === "extensions-catalog") listed.push(...(await this.#extensions(item)));
      if (item.kind === "overlays-catalog") listed.push(...(await this.#overlays(item)));
    }
    return [...items, ...(await this.#verifyAll(listed))];
  }

  async #catalogFiles(item: MirrorItem, files: string[]): Promise<Map<string, string | undefined>> {
    try {
      return await readCatalogFiles(item.image, files, { workDir: this.#request.workDir });
    } catch (err) {
      if (!isAppError(err)) throw err;
      throw new AppError(err.kind === "BadRequest" ? "Upstream" : err.kind, `${item.image.pinned}: ${err.message}`, {
        cause: err,
        code: err.code,
      });
    }
  }

  async #extensions(catalog: MirrorItem): Promise<Wanted[]> {
    const { extensions } = this.#request;
    if (extensions !== "all" && extensions.length === 0) return [];
    const files = await this.#catalogFiles(catalog, ["image-digests", "descriptions.yaml"]);
    const digests = files.get("image-digests");
    if (digests === undefined) throw notFound(`${catalog.image.pinned} has no image-digests file`);
    const entries = ExtensionCatalog.parse(digests, files.get("descriptions.yaml")).entries;
    const chosen = select(
      "extension(s)",
      entries,
      extensions,
      (e) => [e.name, lastComponent(e.name)],
      this.#request.talosVersion,
    );
    return chosen.map((e) => ({
      kind: "extension" as const,
      name: e.name,
      // An untagged catalog line is still pulled by digest; the mirror names it "latest", as a pull would.
      tag: e.tag === "" ? "latest" : e.tag,
      digest: e.digest as Digest,
    }));
  }

  async #overlays(catalog: MirrorItem): Promise<Wanted[]> {
    const { overlays } = this.#request;
    if (overlays !== "all" && overlays.length === 0) return [];
    const text = (await this.#catalogFiles(catalog, ["overlays.yaml"])).get("overlays.yaml");
    if (text === undefined) throw notFound(`${catalog.image.pinned} has no overlays.yaml`);
    const entries = parseOverlaysCatalog(text).map((o) => {
      // As the factory (sources/catalogs.ts): the catalog's host is ignored, the repository path is pulled
      // from the source registry, and an untagged image is "latest".
      const ref = parseReference(o.image);
      return { name: o.name, repository: ref.repository, tag: ref.tag ?? "latest", digest: o.digest as Digest };
    });
    const chosen = select(
      "overlay(s)",
      entries,
      overlays,
      (o) => [o.name, o.repository, lastComponent(o.repository)],
      this.#request.talosVersion,
    );
    // Several overlays may share one image (one board image, several profiles): copied once.
    const unique = new Map<string, Wanted>();
    for (const o of chosen)
      unique.set(`${o.repository}@${o.digest}`, { kind: "overlay", name: o.repository, tag: o.tag, digest: o.digest });
    return [...unique.values()];
  }
}
