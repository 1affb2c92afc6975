// The wizard's result page (upstream: image-factory internal/frontend/http/templates/wizard-final.html and
// ui.go wizardFinal): the schematic ID and YAML with copy buttons, a link for every asset of the chosen
// platform (names as src/talos/asset-path.ts parses them), the PXE script URL, the installer image and the
// `talosctl upgrade` command, and the note that assets are built on their first download.

import { type Html, html } from "./html.ts";
import { backLink } from "./steps.ts";
import { nonSchematicValues, type WizardParams } from "./wizard-state.ts";

export interface ResultInfo {
  self: string;
  schematicId: string;
  yaml: string;
  /** "v1.10.3" */
  version: string;
  platform: string;
  platformTitle: string;
  arch: string;
  secureBoot: boolean;
  /** -external-url, ending in "/". */
  externalUrl: string;
  /** -external-pxe-url, ending in "/". */
  externalPxeUrl: string;
  /** The platform's usual disk image suffix (upstream platforms.go DiskImageSuffix), e.g. "raw.xz". */
  diskSuffix: string;
  /** Installers per platform (`<platform>-installer`), from Talos 1.10 (the version rules' unifiedInstaller). */
  unifiedInstaller: boolean;
  /** Board overlay, for single-board computers. */
  board?: string;
  /** The talosctl files of the version (empty before talosctl downloads). */
  talosctl: readonly string[];
}

function copyable(text: string, label: string): Html {
  return html`<div class="copyable"><code>${text}</code><button type="button" class="copy" data-copy="${text}" hidden aria-label="Copy ${label}">Copy</button></div>`;
}

function assetRow(title: string, url: string, note?: string): Html {
  return html`<tr><th scope="row">${title}</th><td><a href="${url}">${url.slice(url.lastIndexOf("/") + 1)}</a>${note !== undefined ? html` <span class="hint">${note}</span>` : ""}</td><td><a href="${url}.sha256" aria-label="SHA-256 of ${title}">sha256</a></td></tr>`;
}

export function resultPage(p: WizardParams, info: ResultInfo): Html {
  const sb = info.secureBoot ? "-secureboot" : "";
  const base = `${info.externalUrl}image/${info.schematicId}/${info.version}/`;
  const stem = `${info.platform}-${info.arch}${sb}`;
  const host = new URL(info.externalUrl).host;
  const installerImage = info.unifiedInstaller ? `${info.platform}-installer${sb}` : `installer${sb}`;
  const installer = `${host}/${installerImage}/${info.schematicId}:${info.version}`;
  const pxe = `${info.externalPxeUrl}pxe/${info.schematicId}/${info.version}/${stem}`;
  const diskVariants = [...new Set([info.diskSuffix, "raw", "raw.xz", "raw.zst", "raw.gz", "qcow2"])];
  const shareQuery = nonSchematicValues(p);
  shareQuery.set("schematic-id", info.schematicId);
  const share = `${info.self}?${shareQuery}`;
  const editQuery = nonSchematicValues(p);
  editQuery.set("schematic-id", info.schematicId);
  editQuery.set("edit", "1");
  const forCustomization = backLink(
    info.self,
    { ...p, schematicId: info.schematicId, edit: true },
    ["target", "version", "platform", "board", "arch", "secureboot", "extensions"],
    [],
  );
  return html`<h1>Your image</h1>
<section aria-labelledby="schematic-heading" class="panel">
<h2 id="schematic-heading">Schematic</h2>
<p>Your image schematic ID is:</p>
<div class="copyable" id="schematic-id"><code>${info.schematicId}</code><button type="button" class="copy" data-copy="${info.schematicId}" hidden aria-label="Copy the schematic ID">Copy</button></div>
<pre id="schematic-yaml" class="yaml" tabindex="0" aria-label="Schematic YAML">${info.yaml}</pre>
<p><button type="button" class="copy secondary" data-copy-from="#schematic-yaml" hidden aria-label="Copy the schematic YAML">Copy YAML</button></p>
<p class="hint">Talos ${info.version}, ${info.platformTitle}${info.board !== undefined ? html` (board <code>${info.board}</code>)` : ""}, <span class="mono">${info.arch}</span>${info.secureBoot ? ", Secure Boot" : ""}. Link to this page: <a href="${share}">${info.schematicId.slice(0, 12)}…</a></p>
</section>
<p class="note" role="note"><strong>First download:</strong> assets are built when first asked for, which can take a minute or more; later downloads come from the factory's cache.</p>
<section aria-labelledby="boot-heading">
<h2 id="boot-heading">First boot</h2>
<table class="assets"><caption class="visually-hidden">Boot media</caption><tbody>
${
  info.board !== undefined
    ? assetRow(
        "Disk image for the board",
        `${base}metal-${info.arch}${sb}.raw.xz`,
        "write it to the board's boot medium",
      )
    : html`${assetRow(info.secureBoot ? "Secure Boot ISO" : "ISO", `${base}${stem}.iso`)}
${assetRow("Disk image", `${base}${stem}.${info.diskSuffix}`, info.platform === "metal" ? "raw, zstd-compressed" : "the platform's format")}`
}
</tbody></table>
<h3>PXE boot (iPXE script URL)</h3>
${copyable(pxe, "the PXE script URL")}
</section>
<section aria-labelledby="install-heading">
<h2 id="install-heading">Installation and upgrades</h2>
<p>Installer image, for <code>machine.install.image</code> in the machine configuration:</p>
${copyable(installer, "the installer image")}
<p>To upgrade a running machine to this image:</p>
${copyable(`talosctl upgrade --image ${installer}`, "the upgrade command")}
</section>
<section aria-labelledby="extra-heading">
<h2 id="extra-heading">Every asset</h2>
<table class="assets"><caption class="visually-hidden">Every asset of this schematic</caption><tbody>
${diskVariants.map((suffix) => assetRow(`Disk image (${suffix})`, `${base}${stem}.${suffix}`))}
${assetRow(info.secureBoot ? "Secure Boot ISO" : "ISO", `${base}${stem}.iso`)}
${assetRow(info.secureBoot ? "Signed UKI" : "UKI", `${base}${stem}-uki.efi`)}
${info.secureBoot ? "" : html`${assetRow("Kernel", `${base}kernel-${info.arch}`)}${assetRow("Initramfs", `${base}initramfs-${info.arch}.xz`)}`}
${assetRow("Kernel command line", `${base}cmdline-${stem}`)}
${info.talosctl.map((file) => html`<tr><th scope="row">talosctl</th><td><a href="${info.externalUrl}talosctl/${info.version}/${file}">${file}</a></td><td></td></tr>`)}
</tbody></table>
</section>
<div class="buttons">
<a class="button secondary" href="${`${info.self}?${editQuery}`}">Change extensions</a>
<a class="button secondary" href="${forCustomization}">Change kernel arguments</a>
<a class="button secondary" href="${`${info.self}?schematic-id=${info.schematicId}`}">Other version or platform</a>
<a class="button secondary" href="${info.self}">Start over</a>
</div>`;
}
