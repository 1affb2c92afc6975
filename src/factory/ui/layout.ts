// The web UI's page frame: document head (the stylesheet and script the UI routes serve), the heading, the
// progress list of the wizard's steps, the main content and the footer. Every page is complete HTML that works
// without JavaScript; ui/app.js only adds copy buttons and the live extension filter.

import { type Html, type HtmlValue, html } from "./html.ts";
import type { Step } from "./wizard-state.ts";

const stepTitles: ReadonlyArray<[Step, string]> = [
  ["target", "Hardware type"],
  ["version", "Talos version"],
  ["platform", "Cloud platform"],
  ["board", "Single-board computer"],
  ["arch", "Architecture"],
  ["extensions", "System extensions"],
  ["customization", "Customization"],
  ["result", "Your image"],
];

export function stepTitle(step: Step): string {
  return stepTitles.find(([s]) => s === step)?.[1] ?? step;
}

export interface PageOptions {
  /** The page's path (where the stylesheet and script are found relative to it). */
  base: string;
  title: string;
  /** The step shown, for the progress list; none on error pages. */
  step?: Step;
  target?: string;
  factoryVersion: string;
  body: HtmlValue;
}

function progress(step: Step, target: string | undefined): Html {
  const shown = stepTitles.filter(
    ([name]) => (name !== "platform" || target === "cloud") && (name !== "board" || target === "sbc"),
  );
  const at = shown.findIndex(([s]) => s === step);
  return html`<nav aria-label="Wizard progress"><ol class="progress">${shown.map(
    ([, title], i) =>
      html`<li class="${i < at ? "done" : i === at ? "current" : "todo"}"${i === at ? html` aria-current="step"` : ""}>${title}</li>`,
  )}</ol></nav>`;
}

export function page(options: PageOptions): Html {
  const assets = options.base.endsWith("/") ? options.base : `${options.base}/`;
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${options.title} · Talos image factory</title>
<link rel="stylesheet" href="${assets}ui/style.css">
<script src="${assets}ui/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site"><p class="brand"><a href="${options.base}">Talos Linux image factory</a></p>
<p class="tagline">Boot assets for Talos Linux with your extensions and settings, built on first download.</p></header>
${options.step !== undefined ? progress(options.step, options.target) : ""}
<main id="main">
${options.body}
</main>
<footer><p>boot-assets ${options.factoryVersion} · <a href="${assets}versions">API: versions</a> · the same schematics as <code>POST /schematics</code></p></footer>
</body>
</html>
`;
}
