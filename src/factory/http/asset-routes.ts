// GET/HEAD /image/:schematic/:version/:path and /pxe/:schematic/:version/:path. Every part is validated now,
// in the order upstream checks them (schematic, version, then the path): a malformed part is a 400 naming
// it, an unknown schematic or a version not in the list a 404. A valid request answers 501 until the imager
// and serving work land; the routes and their answers for bad input are final.

import type { FastifyInstance } from "fastify";
import { badRequest, notFound, notImplemented } from "../../errors.ts";
import { parseAssetPath, parseSchematicId, parseVersionTag } from "../../talos/asset-path.ts";
import { type Arch, isPlatformName, platformByName } from "../../talos/platforms.ts";
import type { SchematicService } from "../schematics.ts";

/** The Talos versions the factory offers (the `/versions` list). */
export interface KnownVersions {
  /** Whether `tag` (always with its `v`) is in the current list. */
  has(tag: string): boolean | Promise<boolean>;
}

interface AssetParams {
  schematic: string;
  version: string;
  path: string;
}

export interface PxePath {
  platform: string;
  arch: Arch;
  secureBoot: boolean;
}

const pxePathPattern = /^([a-z0-9-]+)-(amd64|arm64|x86_64|i386)(-secureboot)?$/;

/** The `:path` of `/pxe/...`: `<platform>-<arch>[-secureboot]`, arch as PXE firmware names it too. */
export function parsePxePath(path: string): PxePath {
  const match = pxePathPattern.exec(path);
  if (match === null || path.length > 100)
    throw badRequest(
      `invalid PXE path ${JSON.stringify(path.slice(0, 100))}: expected <platform>-<arch>[-secureboot], e.g. metal-amd64`,
      "PATH_INVALID",
    );
  const [, platform, arch, secureBoot] = match as unknown as [string, string, string, string | undefined];
  if (!isPlatformName(platform)) platformByName(platform); // throws, naming the platform and the known ones
  return { platform, arch: arch === "arm64" ? "arm64" : "amd64", secureBoot: secureBoot !== undefined };
}

export function registerAssetRoutes(app: FastifyInstance, schematics: SchematicService, versions: KnownVersions): void {
  const validate = async (params: AssetParams, parsePath: (path: string) => unknown) => {
    const id = parseSchematicId(params.schematic);
    const version = parseVersionTag(params.version);
    parsePath(params.path);
    await schematics.get(id); // NotFound "schematic not found"
    if (!(await versions.has(version)))
      throw notFound(`Talos version ${version} is not available`, "VERSION_NOT_FOUND");
  };
  const pending = () =>
    notImplemented("asset building is not available yet: the imager and serving work land later", "ASSETS_NOT_BUILT");

  app.get<{ Params: AssetParams }>("/image/:schematic/:version/:path", async (request) => {
    await validate(request.params, parseAssetPath);
    throw pending();
  });
  app.get<{ Params: AssetParams }>("/pxe/:schematic/:version/:path", async (request) => {
    await validate(request.params, parsePxePath);
    throw pending();
  });
}
