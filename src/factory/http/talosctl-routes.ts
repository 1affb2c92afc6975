// The talosctl downloads, public as upstream's (image-factory internal/frontend/http/http.go, talosctl.go):
//   GET /talosctl/:version              JSON array of `<external-url>talosctl/<vX.Y.Z>/<file>`, application/json
//   GET|HEAD /talosctl/:version/:path   a file of the version's talosctl-all image (sources/talosctl.ts)
// The version may be given without its "v". As upstream (internal/artifacts/manager.go): a version not on
// offer → 404 `version X.Y.Z is not available`; an offered version before talosctl downloads (the version
// rules table) lists `[]`; a download whose talosctl-all tag is missing → the same 404.
// Beyond upstream: a malformed version is 400 (upstream 500), a file the image lacks 404 naming what it has
// (upstream: 500 "internal server error" from os.Stat); downloads are sent as cached assets are
// (asset-download.ts: ETag = the file's sha256, If-None-Match, single byte ranges, Cache-Control), typed
// application/octet-stream (upstream: Go's mime table by extension, else sniffed — octet-stream for the
// real binaries).

import type { FastifyInstance } from "fastify";
import { notFound } from "../../errors.ts";
import { rulesFor } from "../../talos/version-rules.ts";
import type { TalosctlService } from "../sources/talosctl.ts";
import { parseRequestedVersion, type TalosVersion, talosVersionName } from "../sources/version-selection.ts";
import type { TalosVersionService } from "../sources/versions.ts";
import { cacheControlFor, sendAsset } from "./asset-download.ts";

export interface TalosctlRoutesDeps {
  versions: Pick<TalosVersionService, "list" | "resolve">;
  talosctl: TalosctlService;
  /** Absolute, ending in "/" (FactoryConfig.http.externalUrl). */
  externalUrl: string;
}

/** The offered version the parameter names ("v" added when missing, as upstream does). */
async function offeredVersion(versions: TalosctlRoutesDeps["versions"], param: string): Promise<TalosVersion> {
  const name = talosVersionName(parseRequestedVersion(param.startsWith("v") ? param : `v${param}`));
  await versions.list();
  const found = versions.resolve(name);
  if (found === undefined) throw notFound(`version ${name.slice(1)} is not available`, "VERSION_UNKNOWN");
  return found;
}

export function registerTalosctlRoutes(app: FastifyInstance, deps: TalosctlRoutesDeps): void {
  app.get<{ Params: { version: string } }>("/talosctl/:version", async (request, reply) => {
    const version = await offeredVersion(deps.versions, request.params.version);
    const names = rulesFor(version.name).talosctlDownload ? await deps.talosctl.list(version, app.shutdownSignal) : [];
    const urls = names.map((name) => new URL(`talosctl/${version.name}/${name}`, deps.externalUrl).href);
    // Upstream writes it with Go's json.Encoder: one line, then "\n"; typed exactly application/json (a Buffer,
    // so fastify adds no charset).
    return reply.type("application/json").send(Buffer.from(`${JSON.stringify(urls)}\n`));
  });

  app.route<{ Params: { version: string; path: string } }>({
    method: ["GET", "HEAD"],
    url: "/talosctl/:version/:path",
    handler: async (request, reply) => {
      const version = await offeredVersion(deps.versions, request.params.version);
      // Not the client's signal: a pull is shared by every request for the image, and kept for the next.
      const file = await deps.talosctl.open(version, request.params.path, app.shutdownSignal);
      reply.raw.once("close", file.release);
      return sendAsset(
        request,
        reply,
        { path: file.path, size: file.size, sha256: file.sha256, contentType: "application/octet-stream" },
        { filename: file.name, cacheControl: cacheControlFor(version.name) },
      );
    },
  });
}
