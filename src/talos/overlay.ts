// Overlays (board support: firmware, device trees, U-Boot) as upstream defines them.
//
// An overlay image (talos pkg/imager/imager.go handleOverlay; the images siderolabs/sbc-* publish) holds
//   artifacts/<arch>/…      files its installer copies (firmware, DTBs, U-Boot)
//   installers/<name>       programs implementing overlay.Installer (pkg/machinery/overlay/overlay.go)
//   profiles/<name>.yaml    imager profiles; image-factory merges `<overlay name>.yaml` into its own
// An installer is run as pkg/imager/overlay/executor/executor.go runs it: `<installer> get-options` with the
// schematic's options as YAML on stdin answers overlay.Options as YAML on stdout; `<installer> install` with
// overlay.InstallOptions as YAML on stdin writes the overlay's files (cmd/installer/pkg/install/install.go).
// Both are yaml.v3 documents; this file writes and reads them.

import { parse } from "yaml";
import { AppError } from "../errors.ts";
import { emitGoYaml, type YamlNode } from "./go-yaml-emitter.ts";
import { type GoValue, goStringNode, overlayOptionsNode, type Schematic } from "./schematic.ts";

/** pkg/machinery/constants: ImagerOverlayInstallerDefault, the installer used when the profile names none. */
export const overlayInstallerDefault = "default";

/** Paths in upstream's installer image (pkg/machinery/constants ImagerOverlay*Path), without the leading slash. */
export const installerOverlayPaths = {
  artifacts: "overlay/artifacts",
  installer: "overlay/installers/default",
  extraOptions: "overlay/extra-options",
} as const;

/** What `get-options` answers (overlay.Options). */
export interface OverlayOptions {
  name: string;
  kernelArgs: string[];
  /** PartitionOptions.Offset: LBAs left free after the GPT header (go-blockdevice gpt.WithSkipLBAs). */
  partitionOffset: number;
}

/** The schematic's overlay as upstream's factory takes it: only a named overlay counts (EnhanceFromSchematic). */
export function schematicOverlay(schematic: Schematic): NonNullable<Schematic["overlay"]> | undefined {
  const overlay = schematic.overlay;
  return overlay !== undefined && overlay.name !== "" ? overlay : undefined;
}

/** image-factory internal/profile/profile.go EnhanceFromSchematic, for a version before overlays (1.7). */
export function overlayUnsupportedMessage(talosVersion: string): string {
  return `overlay is not supported for Talos version ${talosVersion}`;
}

/**
 * image-factory EnhanceFromSchematic when the catalog has no overlay of that name. Upstream formats the
 * zero-value OverlayRef it did not find with %q, so the name never appears: `{"" "" ""}` is what it prints.
 */
export function overlayUnavailableMessage(talosVersion: string): string {
  return `official overlay {"" "" ""} is not available for Talos version ${talosVersion}`;
}

const emptyMap: YamlNode = { kind: "map", entries: [] };

/** stdin of `get-options`: yaml.Marshal(overlay.ExtraOptions) — `{}` when there are none. */
export function getOptionsInput(options: Array<[string, GoValue]> | undefined): string {
  return emitGoYaml(overlayOptionsNode(options) ?? emptyMap);
}

/** The installer image's `overlay/extra-options` (pkg/imager/out.go: yaml.Marshal of the same map). */
export const extraOptionsFile = getOptionsInput;

/** stdin of `install`: yaml.Marshal(&overlay.InstallOptions) (extraOptions omitted when empty). */
export function installInput(input: {
  installDisk: string;
  mountPrefix: string;
  artifactsPath: string;
  options: Array<[string, GoValue]> | undefined;
}): string {
  const entries: Array<[YamlNode, YamlNode]> = [
    [goStringNode("installDisk"), goStringNode(input.installDisk)],
    [goStringNode("mountPrefix"), goStringNode(input.mountPrefix)],
    [goStringNode("artifactsPath"), goStringNode(input.artifactsPath)],
  ];
  const options = overlayOptionsNode(input.options);
  if (options !== undefined) entries.push([goStringNode("extraOptions"), options]);
  return emitGoYaml({ kind: "map", entries });
}

const maxOptionsBytes = 64 * 1024;
/** Largest offset accepted: 1 GiB of 512-byte sectors (real boards need a few MiB for U-Boot). */
const maxPartitionOffset = 2 * 1024 * 1024;

function invalid(image: string, message: string): AppError {
  return new AppError("Upstream", `overlay ${image}: get-options answered ${message}`, { code: "OVERLAY_INVALID" });
}

/** Reads `get-options`' stdout as upstream's yaml.Unmarshal into overlay.Options would, bounded. */
export function parseOverlayOptions(stdout: string, image: string): OverlayOptions {
  if (Buffer.byteLength(stdout) > maxOptionsBytes) throw invalid(image, `more than ${maxOptionsBytes} bytes`);
  let raw: unknown;
  try {
    raw = parse(stdout, { maxAliasCount: 10, uniqueKeys: true });
  } catch (err) {
    throw invalid(image, `invalid YAML (${(err as Error).message.split("\n")[0]})`);
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw invalid(image, "something other than a mapping");
  const record = raw as Record<string, unknown>;
  const name = record.name ?? "";
  if (typeof name !== "string") throw invalid(image, "a name that is not a string");
  const args = record.kernelArgs ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string" || typeof a === "number"))
    throw invalid(image, "kernelArgs that are not a list of strings");
  const partitionOptions = (record.partitionOptions ?? {}) as Record<string, unknown>;
  if (typeof partitionOptions !== "object" || Array.isArray(partitionOptions))
    throw invalid(image, "partitionOptions that are not a mapping");
  const offset = partitionOptions.offset ?? 0;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0)
    throw invalid(image, "a partitionOptions.offset that is not a non-negative integer");
  if (offset > maxPartitionOffset) throw invalid(image, `a partitionOptions.offset over ${maxPartitionOffset} sectors`);
  return { name, kernelArgs: args.map(String), partitionOffset: offset };
}
