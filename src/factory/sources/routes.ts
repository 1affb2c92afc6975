// The read-only routes over the sources, as upstream serves them:
//   GET /versions                          ["v1.8.2","v1.10.3"]; `?broken=true` lists the versions marked broken
//   GET /version/:version/extensions/official
//   GET /version/:version/overlays/official
// The version may be given with or without "v". Errors are AppErrors thrown to the app's error handler:
// a malformed version → 400 naming it (upstream answers 500), one not offered → 404, a catalog that cannot
// be read or whose signature does not verify → 502.

import type { FastifyInstance } from "fastify";
import type { CatalogService } from "./catalogs.ts";
import type { TalosVersionService } from "./versions.ts";

export interface SourceRoutesDeps {
  versions: TalosVersionService;
  catalogs: CatalogService;
}

interface VersionParams {
  version: string;
}

export function registerSourceRoutes(app: FastifyInstance, sources: SourceRoutesDeps): void {
  app.get<{ Querystring: { broken?: string } }>("/versions", async (request, reply) => {
    reply.type("application/json");
    if (request.query.broken === "true") return sources.versions.brokenVersions();
    return sources.versions.names();
  });

  app.get<{ Params: VersionParams }>("/version/:version/extensions/official", async (request, reply) => {
    const extensions = await sources.catalogs.extensions(request.params.version);
    reply.type("application/json");
    return extensions;
  });

  app.get<{ Params: VersionParams }>("/version/:version/overlays/official", async (request, reply) => {
    const overlays = await sources.catalogs.overlays(request.params.version);
    reply.type("application/json");
    return overlays;
  });
}
