// The web UI: the schematic wizard at `/` (and at the -external-url's path when it has one, for a proxy that
// does not strip it), as upstream's (image-factory internal/frontend/http/ui.go handleUI, templates/), but
// server-rendered: each step is a plain form (GET; the customization step POSTs), the result page is
// `?<target,version,arch,platform,board,secureboot>&schematic-id=<id>` (a POST that makes a schematic answers
// 303 there), and `?schematic-id=<id>` alone reopens the wizard with that schematic's choices. The schematic
// is created by the same service as `POST /schematics`, so the ID shown is the API's.
// Errors are pages with the status the API gives (errors.ts httpStatusOf): a malformed version 400, a version
// not offered 404, an extension not offered for the version 400, an unreadable source 502; never a stack.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { badRequest, httpStatusOf, notFound } from "../../errors.ts";
import type { Arch } from "../../talos/platforms.ts";
import { platformByName } from "../../talos/platforms.ts";
import { compareSemVer, parseRequestedVersion, parseTolerant } from "../../talos/version.ts";
import { rulesFor } from "../../talos/version-rules.ts";
import { packageVersion } from "../../util/package-version.ts";
import type { SchematicService, StoredSchematic } from "../schematics.ts";
import type { CatalogService } from "../sources/catalogs.ts";
import { type TalosVersion, talosVersionName } from "../sources/version-selection.ts";
import type { TalosVersionService } from "../sources/versions.ts";
import { type Html, html } from "../ui/html.ts";
import { page, stepTitle } from "../ui/layout.ts";
import { cloudPlatforms, platformUi } from "../ui/platform-ui.ts";
import { resultPage } from "../ui/result.ts";
import { script, stylesheet } from "../ui/static.ts";
import {
  archStep,
  boardStep,
  customizationStep,
  extensionsStep,
  platformStep,
  targetStep,
  versionStep,
} from "../ui/steps.ts";
import {
  applySchematic,
  chosenExtensions,
  nextStep,
  nonSchematicValues,
  type Step,
  schematicYaml,
  type WizardParams,
  wizardParamsFrom,
} from "../ui/wizard-state.ts";
import { publicMessage } from "./errors.ts";
import { readRequestBody } from "./request-body.ts";

export interface UiRoutesDeps {
  schematics: SchematicService;
  versions: Pick<TalosVersionService, "list" | "resolve">;
  catalogs: Pick<CatalogService, "extensionSources" | "overlays">;
  /** The official extensions catalog image, without tag (-extensions-manifest-image): other catalogs are marked. */
  officialExtensionCatalog: string;
  /** Absolute, ending in "/". */
  externalUrl: string;
  externalPxeUrl: string;
  secureBootEnabled: boolean;
  /** The talosctl files of a version, listed on the result page (left out when it fails). */
  talosctl?: { list(version: TalosVersion, signal?: AbortSignal): Promise<readonly string[]> };
}

/** Largest customization form body: the schematic limit, urlencoded (up to 3 bytes per byte), with room. */
const maxFormBytes = 4 * 1024 * 1024;
/** Upstream hides its internal metal-agent extension in the UI (ui.go getOfficialExtensions). */
const hiddenExtensions = new Set(["siderolabs/metal-agent"]);

const securityHeaders: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
  "Cache-Control": "no-store",
};

/** `registry/repository` of a catalog reference (`…:tag`, `…@digest`, or both). */
function catalogImageName(reference: string): string {
  const name = reference.split("@")[0] as string;
  return name.replace(/:[^/:]*$/, "");
}

interface Rendered {
  step: Step;
  body: Html;
  title?: string;
}

export function registerUiRoutes(app: FastifyInstance, deps: UiRoutesDeps): void {
  const factoryVersion = packageVersion();
  const prefix = new URL(deps.externalUrl).pathname;
  const bases = prefix === "/" ? ["/"] : ["/", prefix];

  async function offered(version: string): Promise<TalosVersion> {
    const name = talosVersionName(parseRequestedVersion(version));
    await deps.versions.list();
    const found = deps.versions.resolve(name);
    if (found === undefined)
      throw notFound(`Talos version ${name} is not available on this factory`, "VERSION_UNKNOWN");
    return found;
  }

  async function render(
    p: WizardParams,
    self: string,
    stored: StoredSchematic | undefined,
  ): Promise<Rendered | string> {
    const step = nextStep(p);
    if (step === "target") return { step, body: targetStep(p, self) };
    if (step === "version") {
      const all = await deps.versions.list();
      const list = p.target === "sbc" ? all.filter((v) => rulesFor(v.name).overlays) : all;
      return { step, body: versionStep(p, self, list, p.target === "sbc") };
    }
    const version = await offered(p.version);
    const rules = rulesFor(version.name);
    if (p.target === "sbc" && !rules.overlays)
      throw badRequest(`single-board computers need Talos 1.7 or later; ${version.name} has no overlays`);
    if (step === "platform") {
      const list = cloudPlatforms().filter(
        (pl) => pl.since === undefined || compareSemVer(version.semver, parseTolerant(pl.since)) >= 0,
      );
      return { step, body: platformStep(p, self, list) };
    }
    const overlays = p.target === "sbc" ? await deps.catalogs.overlays(version.name) : [];
    if (step === "board") return { step, body: boardStep(p, self, overlays) };
    if (p.target === "cloud") platformByName(p.platform);
    const ui = platformUi(p.platform);
    if (ui === undefined) throw badRequest(`the wizard offers no images for platform "${p.platform}"`);
    const overlay = overlays.find((o) => o.name === p.board);
    if (p.target === "sbc" && overlay === undefined)
      throw notFound(`board overlay "${p.board}" is not available for Talos ${version.name}`);
    const secureBootOffered = deps.secureBootEnabled && rules.uki && ui.secureBoot && p.target !== "sbc";
    if (step === "arch") {
      const why = !deps.secureBootEnabled
        ? "not enabled on this factory."
        : !rules.uki
          ? `needs Talos 1.5 or later.`
          : "not offered for this platform.";
      return { step, body: archStep(p, self, ui.arches, { offered: secureBootOffered, why }) };
    }
    if (!ui.arches.includes(p.arch as Arch))
      throw badRequest(`architecture "${p.arch}" is not offered for platform ${p.platform} (${ui.arches.join(", ")})`);
    if (p.secureBoot === "true" && !secureBootOffered)
      throw badRequest(`Secure Boot images are not offered for this choice (Talos ${version.name}, ${p.platform})`);
    const sources = (await deps.catalogs.extensionSources(version.name)).filter((e) => !hiddenExtensions.has(e.name));
    if (step === "extensions") {
      const choices = sources.map((e) => ({
        name: e.name,
        ref: e.ref,
        author: e.author,
        description: e.description,
        extra: catalogImageName(e.catalog) !== deps.officialExtensionCatalog,
      }));
      return { step, body: extensionsStep(p, self, version.name, choices) };
    }
    const missing = chosenExtensions(p).filter((name) => !sources.some((e) => e.name === name));
    if (missing.length > 0)
      throw badRequest(
        `extension${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not available for Talos ${version.name}`,
        "EXTENSION_UNAVAILABLE",
      );
    if (step === "customization")
      return {
        step,
        body: customizationStep(p, self, {
          bootloaderChoice: rules.isoBootloaderOverride,
          embeddedConfig: rules.embeddedConfig,
          overlayOptions: p.target === "sbc",
          overlayImage: overlay?.image ?? "",
        }),
      };
    if (stored === undefined || p.edit) {
      // Choices complete: store the schematic and show its result page at its own URL.
      const yaml = schematicYaml(p, overlay, stored?.yaml);
      const created = await deps.schematics.create(yaml);
      const query = nonSchematicValues(p);
      query.set("schematic-id", created.id);
      return `${self}?${query}`;
    }
    let talosctl: readonly string[] = [];
    if (rules.talosctlDownload && deps.talosctl !== undefined)
      talosctl = await deps.talosctl.list(version, app.shutdownSignal).catch(() => []);
    return {
      step,
      body: resultPage(p, {
        self,
        schematicId: stored.id,
        yaml: stored.yaml,
        version: version.name,
        platform: p.platform,
        platformTitle: p.target === "sbc" ? "single-board computer" : platformByName(p.platform).title,
        arch: p.arch,
        secureBoot: p.secureBoot === "true",
        externalUrl: deps.externalUrl,
        externalPxeUrl: deps.externalPxeUrl,
        diskSuffix: ui.diskSuffix,
        unifiedInstaller: rules.unifiedInstaller,
        ...(p.target === "sbc" ? { board: p.board } : {}),
        talosctl,
      }),
    };
  }

  function send(reply: FastifyReply, status: number, body: Html): FastifyReply {
    for (const [name, value] of Object.entries(securityHeaders)) reply.header(name, value);
    return reply.code(status).type("text/html; charset=utf-8").send(body.text);
  }

  async function handle(request: FastifyRequest, reply: FastifyReply, self: string, form: URLSearchParams) {
    let p: WizardParams | undefined;
    try {
      p = wizardParamsFrom(form);
      let stored: StoredSchematic | undefined;
      if (p.schematicId !== "") {
        stored = await deps.schematics.load(p.schematicId);
        applySchematic(p, stored.schematic, stored.yaml);
      }
      const rendered = await render(p, self, stored);
      if (typeof rendered === "string") {
        for (const [name, value] of Object.entries(securityHeaders)) reply.header(name, value);
        return reply.code(303).header("Location", rendered).send();
      }
      const title = rendered.title ?? stepTitle(rendered.step);
      return send(
        reply,
        200,
        page({ base: self, title, step: rendered.step, target: p.target, factoryVersion, body: rendered.body }),
      );
    } catch (err) {
      const status = httpStatusOf(err);
      if (status >= 500 && status !== 501) request.log.error({ err }, "web UI request failed");
      const message = publicMessage(err, status);
      const body = html`<h1>${status >= 500 ? "The factory could not do that" : "That did not work"}</h1>
<div class="error" role="alert"><p><strong>${status}</strong>: ${message}</p></div>
<p>${status >= 500 ? "The factory's sources or stores did not answer as they should; try again in a moment. " : ""}<a href="${self}">Start over</a>${p?.schematicId ? html` or <a href="${`${self}?schematic-id=${encodeURIComponent(p.schematicId)}&edit=1`}">edit the schematic</a>` : ""}.</p>`;
      return send(reply, status, page({ base: self, title: `Error ${status}`, factoryVersion, body }));
    }
  }

  for (const base of bases) {
    app.get(base, (request, reply) => {
      const url = request.raw.url ?? "";
      const at = url.indexOf("?");
      return handle(request, reply, base, new URLSearchParams(at < 0 ? "" : url.slice(at + 1)));
    });
    app.post(base, async (request, reply) => {
      const body = await readRequestBody(request.raw, maxFormBytes);
      return handle(request, reply, base, new URLSearchParams(body.toString("utf8")));
    });
    app.get(`${base}ui/style.css`, (_request, reply) =>
      reply.type("text/css; charset=utf-8").header("Cache-Control", "public, max-age=3600").send(stylesheet),
    );
    app.get(`${base}ui/app.js`, (_request, reply) =>
      reply.type("text/javascript; charset=utf-8").header("Cache-Control", "public, max-age=3600").send(script),
    );
  }
}
