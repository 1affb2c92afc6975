// The web UI wizard's state: the form fields every step carries (named as upstream's wizard names them,
// image-factory internal/frontend/http/ui.go WizardParamsFromRequest: target, version, arch, platform, board,
// secureboot, bootloader, extensions, cmdline, cmdline-set, embedded-config, overlay-options, and their
// `selected-*` twins that only pre-fill a step when going back), which step comes next (ui.go wizard()), and
// the schematic the choices make (ui.go ToSchematic). Pure functions: no I/O here.

import YAML from "yaml";
import { badRequest } from "../../errors.ts";
import { MAX_LIST_ENTRIES, type Schematic } from "../../talos/schematic.ts";

export type Target = "metal" | "cloud" | "sbc";
export const targets: readonly Target[] = ["metal", "cloud", "sbc"];

export type Step = "target" | "version" | "platform" | "board" | "arch" | "extensions" | "customization" | "result";

/** The wizard's choices; "" is "not chosen yet". */
export interface WizardParams {
  target: string;
  version: string;
  arch: string;
  platform: string;
  board: string;
  secureBoot: string;
  bootloader: string;
  /** "-" alone means "no extensions" (the step was passed), as upstream. */
  extensions: string[];
  cmdline: string;
  cmdlineSet: boolean;
  embeddedConfig: string;
  overlayOptions: string;
  /** Defaults shown when a step is shown again. */
  selected: WizardSelection;
  /** A stored schematic the wizard was (re)opened from. */
  schematicId: string;
  /** With schematicId: its values are defaults to edit rather than choices made. */
  edit: boolean;
  /** The extension step's server-side search (no-JS filter). */
  search: string;
  /** The extension step's "Filter" button was pressed: stay on the step. */
  filter: boolean;
}

/** The choices a step shows again as its defaults (the `selected-*` fields). */
export type WizardSelection = Pick<
  WizardParams,
  | "target"
  | "version"
  | "arch"
  | "platform"
  | "board"
  | "secureBoot"
  | "bootloader"
  | "extensions"
  | "cmdline"
  | "embeddedConfig"
  | "overlayOptions"
>;

/** Longest value kept from one field (an embedded configuration may be long; the body limit bounds it too). */
const maxFieldChars = 256 * 1024;

/** Reads the wizard's fields from a query string or an urlencoded body. */
export function wizardParamsFrom(form: URLSearchParams): WizardParams {
  const one = (name: string) => (form.get(name) ?? "").slice(0, maxFieldChars);
  const many = (name: string) => form.getAll(name).slice(0, MAX_LIST_ENTRIES);
  const params: WizardParams = {
    target: one("target"),
    version: one("version"),
    arch: one("arch"),
    platform: one("platform"),
    board: one("board"),
    secureBoot: one("secureboot") === "true" ? "true" : "",
    bootloader: one("bootloader"),
    extensions: many("extensions"),
    cmdline: one("cmdline").trim(),
    cmdlineSet: one("cmdline-set") !== "",
    embeddedConfig: one("embedded-config"),
    overlayOptions: one("overlay-options").trim(),
    selected: {
      target: one("selected-target"),
      version: one("selected-version"),
      arch: one("selected-arch"),
      platform: one("selected-platform"),
      board: one("selected-board"),
      secureBoot: one("selected-secureboot"),
      bootloader: one("selected-bootloader"),
      extensions: many("selected-extensions"),
      cmdline: one("selected-cmdline"),
      embeddedConfig: one("selected-embedded-config"),
      overlayOptions: one("selected-overlay-options"),
    },
    schematicId: one("schematic-id"),
    edit: one("edit") !== "",
    search: one("search").trim(),
    filter: one("filter") !== "",
  };
  if (params.target === "metal" || params.target === "sbc") params.platform = "metal";
  return params;
}

/** The step to show for these choices (upstream ui.go wizard(), plus the extension filter). */
export function nextStep(p: WizardParams): Step {
  if (!targets.includes(p.target as Target)) return "target";
  if (p.version === "") return "version";
  if (p.target === "cloud" && p.platform === "") return "platform";
  if (p.target === "sbc" && p.board === "") return "board";
  if (p.arch === "") return "arch";
  if (p.extensions.length === 0 || p.filter) return "extensions";
  if (!p.cmdlineSet) return "customization";
  return "result";
}

/** The chosen extensions, "-" (none) left out, sorted as upstream sorts them. */
export function chosenExtensions(p: WizardParams): string[] {
  return [...new Set(p.extensions.filter((e) => e !== "-" && e !== ""))].sort();
}

/** A stored schematic's values as the wizard's (upstream ui.go SetURLValuesFromSchematic). */
export function applySchematic(p: WizardParams, schematic: Schematic, yaml: string): void {
  const c = schematic.customization;
  const extensions = c.systemExtensions?.officialExtensions ?? [];
  const cmdline = (c.extraKernelArgs ?? []).join(" ");
  const options = (YAML.parse(yaml) as { overlay?: { options?: unknown } } | null)?.overlay?.options;
  const overlayOptions = options === undefined || options === null ? "" : YAML.stringify(options).trimEnd();
  const bootloader = c.bootloader ?? "";
  if (p.edit) {
    // Defaults for the steps to come, unless the form already carries choices.
    if (p.selected.extensions.length === 0) p.selected.extensions = [...extensions];
    if (!p.cmdlineSet) {
      p.selected.cmdline ||= cmdline;
      p.selected.bootloader ||= bootloader;
      p.selected.overlayOptions ||= overlayOptions;
      p.selected.embeddedConfig ||= c.embeddedMachineConfiguration ?? "";
    }
  } else {
    p.extensions = extensions.length > 0 ? [...extensions] : ["-"];
    p.cmdline = cmdline;
    p.cmdlineSet = true;
    p.bootloader = bootloader;
    p.overlayOptions = overlayOptions;
    p.embeddedConfig = c.embeddedMachineConfiguration ?? "";
  }
  if (schematic.overlay !== undefined && (schematic.overlay.name !== "" || schematic.overlay.image !== "")) {
    if (p.target === "") p.selected.target ||= "sbc";
    p.selected.board ||= schematic.overlay.name;
  }
}

/** What the wizard needs to know about the chosen SBC's overlay. */
export interface OverlayChoice {
  name: string;
  image: string;
}

type YamlObject = Record<string, unknown>;

/**
 * The schematic YAML for the choices (upstream ui.go ToSchematic): kernel args split on spaces, extensions
 * sorted, the overlay for an SBC, the boot loader unless "auto", the embedded configuration when given. Fields
 * the wizard does not edit (META, Secure Boot options, disk sector size) are kept from `base`, the canonical
 * YAML of the schematic being edited. BadRequest for overlay options that are not a YAML mapping.
 */
export function schematicYaml(p: WizardParams, overlay: OverlayChoice | undefined, base?: string): string {
  const doc = ((base !== undefined ? YAML.parse(base) : undefined) ?? {}) as YamlObject;
  const customization = (doc.customization ?? {}) as YamlObject;
  doc.customization = customization;
  const args = p.cmdline.split(/\s+/).filter((a) => a !== "");
  if (args.length > 0) customization.extraKernelArgs = args;
  else delete customization.extraKernelArgs;
  const extensions = chosenExtensions(p);
  if (extensions.length > 0) customization.systemExtensions = { officialExtensions: extensions };
  else delete customization.systemExtensions;
  if (p.bootloader !== "" && p.bootloader !== "auto") customization.bootloader = p.bootloader;
  else delete customization.bootloader;
  if (p.embeddedConfig.trim() !== "") customization.embeddedMachineConfiguration = p.embeddedConfig;
  else delete customization.embeddedMachineConfiguration;
  delete doc.overlay;
  if (overlay !== undefined) {
    const entry: YamlObject = { image: overlay.image, name: overlay.name };
    if (p.overlayOptions !== "") {
      let options: unknown;
      try {
        options = YAML.parse(p.overlayOptions, { maxAliasCount: 0 });
      } catch (err) {
        throw badRequest(`overlay options are not valid YAML: ${(err as Error).message.split("\n")[0]}`);
      }
      if (options !== null && (typeof options !== "object" || Array.isArray(options)))
        throw badRequest("overlay options must be a YAML mapping (key: value lines)");
      if (options !== null) entry.options = options;
    }
    doc.overlay = entry;
  }
  return YAML.stringify(doc);
}

/** Query values that do not change the schematic (upstream ui.go NonSchematicURLValues), for the result URL. */
export function nonSchematicValues(p: WizardParams): URLSearchParams {
  const values = new URLSearchParams();
  for (const [name, value] of [
    ["target", p.target],
    ["version", p.version],
    ["arch", p.arch],
    ["platform", p.target === "cloud" ? p.platform : ""],
    ["board", p.board],
    ["secureboot", p.secureBoot],
  ] as const)
    if (value !== "") values.set(name, value);
  return values;
}
