// The wizard's steps as server-rendered forms (upstream's templates: image-factory internal/frontend/http/
// templates/wizard-*.html, re-done as plain forms). Every step is one <form method="get"> to the page itself
// carrying the choices made so far as hidden fields, except customization, which is POSTed (an embedded
// machine configuration may hold secrets, so it never goes into a URL; upstream leaves it out of its URLs too).

import { type Html, type HtmlValue, html } from "./html.ts";
import { stepTitle } from "./layout.ts";
import { chosenExtensions, type Step, type WizardParams } from "./wizard-state.ts";

/** Hidden fields for the choices made before `step` (the step's own fields are its inputs). */
export function hiddenInputs(p: WizardParams, step: Step): Html {
  const fields: Array<[string, string]> = [];
  const add = (name: string, value: string) => {
    if (value !== "") fields.push([name, value]);
  };
  add("target", step === "target" ? "" : p.target);
  if (step !== "version") add("version", p.version);
  if (p.target === "cloud" && step !== "platform") add("platform", p.platform);
  if (step !== "board") add("board", p.board);
  if (step !== "arch") {
    add("arch", p.arch);
    add("secureboot", p.secureBoot);
  }
  if (step !== "extensions") for (const e of p.extensions) add("extensions", e);
  if (step !== "customization" && p.cmdlineSet && p.schematicId === "") {
    add("cmdline-set", "1");
    add("cmdline", p.cmdline);
    add("bootloader", p.bootloader);
    add("overlay-options", p.overlayOptions);
  }
  add("schematic-id", p.schematicId);
  if (p.edit) add("edit", "1");
  return html`${fields.map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`)}`;
}

export interface Choice {
  value: string;
  label: string;
  description?: HtmlValue;
  mono?: boolean;
}

/** A group of radio buttons with a legend, each with a label and a description tied by aria-describedby. */
export function radios(name: string, legend: string, choices: readonly Choice[], current: string): Html {
  const checked = choices.some((c) => c.value === current) ? current : choices[0]?.value;
  return html`<fieldset class="choices"><legend>${legend}</legend>${choices.map((c) => {
    const id = `${name}-${c.value}`.replace(/[^A-Za-z0-9_-]/g, "_");
    return html`<div class="choice"><input type="radio" id="${id}" name="${name}" value="${c.value}"${c.value === checked ? html` checked` : ""}${c.description !== undefined ? html` aria-describedby="${id}-text"` : ""}>
<label for="${id}"${c.mono ? html` class="mono"` : ""}>${c.label}</label>${c.description !== undefined ? html`<p id="${id}-text" class="hint">${c.description}</p>` : ""}</div>`;
  })}</fieldset>`;
}

/** The step's heading, form and buttons. */
export function stepForm(
  step: Step,
  p: WizardParams,
  self: string,
  back: string | undefined,
  content: HtmlValue,
  method: "get" | "post" = "get",
): Html {
  return html`<h1>${stepTitle(step)}</h1>
<form method="${method}" action="${self}" class="wizard" id="wizard-form">
${hiddenInputs(p, step)}${content}
<div class="buttons">${back !== undefined ? html`<a class="button secondary" href="${back}">Back</a>` : ""}<button type="submit" class="primary">Next</button></div>
</form>`;
}

export function targetStep(p: WizardParams, self: string): Html {
  return stepForm(
    "target",
    p,
    self,
    undefined,
    radios(
      "target",
      "What will run Talos?",
      [
        {
          value: "metal",
          label: "Bare-metal machine",
          description: "Servers, workstations, virtual machines you boot from an ISO, a disk image or PXE.",
        },
        {
          value: "cloud",
          label: "Cloud server",
          description: "A cloud or hypervisor platform (AWS, GCP, Azure, VMware, OpenStack, …).",
        },
        {
          value: "sbc",
          label: "Single-board computer",
          description: "A board whose boot support comes from an overlay (Talos 1.7 and later).",
        },
      ],
      p.selected.target || "metal",
    ),
  );
}

export interface VersionChoice {
  name: string;
  prerelease: boolean;
}

/** Query string of a back link: `fields` kept, `selected` pre-filling the step gone back to. */
export function backLink(self: string, p: WizardParams, keep: ReadonlyArray<string>, selected: [string, string][]) {
  const values = new URLSearchParams();
  const all: Record<string, string | string[]> = {
    target: p.target,
    version: p.version,
    platform: p.target === "cloud" ? p.platform : "",
    board: p.board,
    arch: p.arch,
    secureboot: p.secureBoot,
    extensions: p.extensions,
    "schematic-id": p.schematicId,
    edit: p.edit ? "1" : "",
  };
  for (const name of [...keep, "schematic-id", "edit"]) {
    const value = all[name] ?? "";
    for (const v of Array.isArray(value) ? value : [value]) if (v !== "") values.append(name, v);
  }
  for (const [name, value] of selected) if (value !== "") values.append(`selected-${name}`, value);
  const query = values.toString();
  return query === "" ? self : `${self}?${query}`;
}

export function versionStep(p: WizardParams, self: string, versions: readonly VersionChoice[], sbc: boolean): Html {
  const newestFirst = [...versions].reverse();
  const latest = newestFirst.find((v) => !v.prerelease)?.name ?? newestFirst[0]?.name ?? "";
  const wanted = p.selected.version.replace(/^v?/, "v");
  const current = newestFirst.some((v) => v.name === wanted) ? wanted : latest;
  const groups = new Map<string, VersionChoice[]>();
  for (const v of newestFirst) {
    const [major, minor] = v.name.slice(1).split(".");
    const label = `${major}.${minor}${v.prerelease ? " pre-releases" : ""}`;
    groups.set(label, [...(groups.get(label) ?? []), v]);
  }
  const content = html`${sbc ? html`<p class="note">Single-board computers need Talos 1.7 or later: older versions are not listed.</p>` : ""}
<div class="field"><label for="version">Talos version</label>
<select id="version" name="version" aria-describedby="version-hint">${[...groups].map(
    ([label, list]) =>
      html`<optgroup label="${label}">${list.map((v) => html`<option value="${v.name.slice(1)}"${v.name === current ? html` selected` : ""}>${v.name}</option>`)}</optgroup>`,
  )}</select>
<p id="version-hint" class="hint">The newest stable release (${latest}) is recommended. Pre-releases are for testing.</p></div>`;
  return stepForm("version", p, self, backLink(self, p, [], [["target", p.target]]), content);
}

export interface PlatformChoice {
  name: string;
  title: string;
  arches: readonly string[];
}

export function platformStep(p: WizardParams, self: string, platforms: readonly PlatformChoice[]): Html {
  const choices = platforms.map((pl) => ({
    value: pl.name,
    label: pl.title,
    description: `Platform "${pl.name}"; ${pl.arches.join(" and ")}.`,
  }));
  return stepForm(
    "platform",
    p,
    self,
    backLink(self, p, ["target"], [["version", p.version]]),
    radios("platform", "Cloud or hypervisor platform", choices, p.selected.platform || "aws"),
  );
}

export interface BoardChoice {
  name: string;
  image: string;
}

export function boardStep(p: WizardParams, self: string, boards: readonly BoardChoice[]): Html {
  const content =
    boards.length === 0
      ? html`<p class="error" role="alert">This factory's overlay catalog lists no board for Talos v${p.version.replace(/^v/, "")}.</p>`
      : radios(
          "board",
          "Board (overlay)",
          boards.map((b) => ({
            value: b.name,
            label: b.name,
            description: html`Overlay image <code>${b.image}</code>.`,
          })),
          p.selected.board,
        );
  return stepForm("board", p, self, backLink(self, p, ["target"], [["version", p.version]]), content);
}

export function archStep(
  p: WizardParams,
  self: string,
  arches: readonly string[],
  secureBoot: { offered: boolean; why: string },
): Html {
  const describe: Record<string, string> = {
    amd64: "Intel and AMD 64-bit processors (x86-64).",
    arm64: "64-bit ARM processors (AArch64).",
  };
  const fallback = p.target === "sbc" ? "arm64" : "amd64";
  const content = html`${radios(
    "arch",
    "Processor architecture",
    arches.map((a) => ({ value: a, label: a, mono: true, description: describe[a] })),
    p.selected.arch || fallback,
  )}
${
  secureBoot.offered
    ? html`<div class="choice check"><input type="checkbox" id="secureboot" name="secureboot" value="true" aria-describedby="secureboot-hint"${p.selected.secureBoot === "true" ? html` checked` : ""}>
<label for="secureboot">Secure Boot</label><p id="secureboot-hint" class="hint">Signed UKI-based assets that boot with UEFI Secure Boot enabled; the factory's signing certificate is at <code>/secureboot/signing-cert.pem</code>.</p></div>`
    : html`<p class="hint">Secure Boot: ${secureBoot.why}</p>`
}`;
  const back =
    p.target === "cloud"
      ? backLink(self, p, ["target", "version"], [["platform", p.platform]])
      : p.target === "sbc"
        ? backLink(self, p, ["target", "version"], [["board", p.board]])
        : backLink(self, p, ["target"], [["version", p.version]]);
  return stepForm("arch", p, self, back, content);
}

export interface ExtensionChoice {
  name: string;
  ref: string;
  author: string;
  description: string;
  /** Listed by an extra catalog of this factory rather than the official one. */
  extra: boolean;
}

export function extensionsStep(
  p: WizardParams,
  self: string,
  version: string,
  available: readonly ExtensionChoice[],
): Html {
  const ticked = new Set(p.filter ? chosenExtensions(p) : p.selected.extensions);
  const query = p.search.toLowerCase();
  const shown = available.filter(
    (e) => query === "" || ticked.has(e.name) || `${e.ref} ${e.description} ${e.author}`.toLowerCase().includes(query),
  );
  const known = new Set(available.map((e) => e.name));
  const unavailable = [...ticked].filter((name) => name !== "-" && !known.has(name));
  const content = html`<p class="hint">System extensions add drivers, firmware and services to the Talos image. Tick the ones this machine needs; none is fine too.</p>
${
  unavailable.length > 0
    ? html`<div class="note" role="status"><p>Not available for Talos ${version}, so left out:</p><ul>${unavailable.map((n) => html`<li><code>${n}</code></li>`)}</ul></div>`
    : ""
}
<div class="search"><label for="search">Search extensions</label>
<input type="search" id="search" name="search" value="${p.search}" data-filter="#extension-list .extension" autocomplete="off">
<button type="submit" name="filter" value="1" class="secondary">Filter</button></div>
<input type="hidden" name="extensions" value="-">
<fieldset id="extension-list" class="extensions"><legend>Extensions for Talos ${version} (${available.length})</legend>
${shown.length === 0 ? html`<p class="hint">No extension matches “${p.search}”.</p>` : ""}
${shown.map((e, i) => {
  const id = `extension-${i}`;
  return html`<div class="extension choice"><input type="checkbox" id="${id}" name="extensions" value="${e.name}" aria-describedby="${id}-text"${ticked.has(e.name) ? html` checked` : ""}>
<label for="${id}"><span class="mono">${e.name}</span> <span class="tag">${e.ref.slice(e.ref.lastIndexOf(":") + 1)}</span>${e.extra ? html` <span class="badge">custom catalog</span>` : ""}</label>
<p id="${id}-text" class="hint">${e.description}${e.author !== "" ? html` <span class="author">— ${e.author}</span>` : ""}</p></div>`;
})}
${available
  .filter((e) => !shown.includes(e) && ticked.has(e.name))
  .map((e) => html`<input type="hidden" name="extensions" value="${e.name}">`)}
</fieldset>`;
  const back = backLink(
    self,
    p,
    ["target", "version", "platform", "board"],
    [
      ["arch", p.arch],
      ["secureboot", p.secureBoot],
    ],
  );
  return stepForm("extensions", p, self, back, content);
}

export interface CustomizationOptions {
  bootloaderChoice: boolean;
  embeddedConfig: boolean;
  overlayOptions: boolean;
  overlayImage: string;
}

export function customizationStep(p: WizardParams, self: string, options: CustomizationOptions): Html {
  const loaders: Choice[] = [
    { value: "auto", label: "Automatic", description: "What Talos picks for the platform and architecture." },
    { value: "sd-boot", label: "systemd-boot", description: "UEFI only." },
    ...(p.secureBoot === "true"
      ? []
      : [{ value: "grub", label: "GRUB", description: "BIOS and UEFI." } satisfies Choice]),
    { value: "dual-boot", label: "Dual boot", description: "GRUB for BIOS, systemd-boot for UEFI." },
  ];
  const content = html`<input type="hidden" name="cmdline-set" value="1">
<div class="field"><label for="cmdline">Extra kernel arguments</label>
<input id="cmdline" name="cmdline" value="${p.selected.cmdline}" placeholder="-console console=tty0" aria-describedby="cmdline-hint" autocomplete="off" spellcheck="false">
<p id="cmdline-hint" class="hint">Separated by spaces, e.g. <code>console=ttyS0,115200</code>. A leading <code>-</code> removes a default argument (<code>-console</code>). Leave empty to keep the defaults.${p.secureBoot === "true" ? " With Secure Boot they are part of the signed UKI and cannot be changed later." : ""}</p></div>
${
  options.embeddedConfig
    ? html`<div class="field"><label for="embedded-config">Embedded machine configuration</label>
<textarea id="embedded-config" name="embedded-config" rows="6" aria-describedby="embedded-hint" spellcheck="false" placeholder="apiVersion: v1alpha1&#10;kind: HostnameConfig&#10;hostname: my-node&#10;auto: off">${p.selected.embeddedConfig}</textarea>
<p id="embedded-hint" class="hint">Configuration documents baked into the image and applied at boot. It is stored in the schematic: anyone with its ID can read it. Leave empty for none.</p></div>`
    : ""
}
${
  options.overlayOptions
    ? html`<div class="field"><label for="overlay-options">Overlay options</label>
<textarea id="overlay-options" name="overlay-options" rows="3" aria-describedby="overlay-hint" spellcheck="false" placeholder="configTxtAppend: 'dtoverlay=vc4-fkms-v3d'">${p.selected.overlayOptions}</textarea>
<p id="overlay-hint" class="hint">YAML passed to the board overlay <code>${options.overlayImage}</code>. Leave empty for none.</p></div>`
    : ""
}
${options.bootloaderChoice ? radios("bootloader", "Boot loader", loaders, p.selected.bootloader || "auto") : ""}`;
  const back = backLink(
    self,
    p,
    ["target", "version", "platform", "board", "arch", "secureboot"],
    chosenExtensions(p).map((e): [string, string] => ["extensions", e]),
  );
  return stepForm("customization", p, self, back, content, "post");
}
