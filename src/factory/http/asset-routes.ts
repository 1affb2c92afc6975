// GET/HEAD /image/:schematic/:version/:path and /pxe/:schematic/:version/:path. Every part is validated now,
// in the order upstream checks them (schematic, version, then the path): a malformed part is a 400 naming
// it, an unknown schematic or a version not in the list a 404. A valid `/image` request is answered by the
// asset service (assets/service.ts) and sent by asset-download.ts; without an asset service (and for /pxe,
// until it lands) a valid request answers 501.

import { readFile } from "node:fs/promises";
import type { FastifyInstance, FastifyReply } from "fastify";
import { badRequest, isAppError, notFound, notImplemented } from "../../errors.ts";
import { parseAssetPath, parseAssetRequest, parseVersionTag } from "../../talos/asset-path.ts";
import { type Arch, isPlatformName, platformByName } from "../../talos/platforms.ts";
import { parseSchematic } from "../../talos/schematic.ts";
import { goQuote } from "../../util/go-quote.ts";
import type { AssetService } from "../assets/service.ts";
import type { SchematicService } from "../schematics.ts";
import { cacheControlFor, downloadFilename, sendAsset, sendChecksum, splitChecksumPath } from "./asset-download.ts";

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

// Platform names keep their case (`equinixMetal-amd64`, as upstream internal/integration/pxe_test.go asks).
const pxePathPattern = /^([A-Za-z0-9-]+)-(amd64|arm64|x86_64|i386)(-secureboot)?$/;

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

/** Aborted when the client goes away before its answer was sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client closed request"));
  });
  return controller.signal;
}

export function registerAssetRoutes(
  app: FastifyInstance,
  schematics: SchematicService,
  versions: KnownVersions,
  assets?: AssetService,
  pxe?: { externalPxeUrl: string },
): void {
  // Upstream's order (internal/frontend/http/image.go, pxe.go): the schematic first — unknown or malformed,
  // 404 `schematic ID "<id>" not found` (internal/integration/download_test.go "invalid/schematic") — then
  // the version, then the path.
  const validate = async (params: AssetParams, parsePath: (path: string) => unknown) => {
    try {
      await schematics.get(params.schematic);
    } catch (err) {
      if (isAppError(err, "NotFound"))
        throw notFound(`schematic ID ${goQuote(params.schematic)} not found`, "SCHEMATIC_NOT_FOUND");
      throw err;
    }
    const version = parseVersionTag(params.version);
    parsePath(params.path);
    if (!(await versions.has(version)))
      throw notFound(`Talos version ${version} is not available`, "VERSION_NOT_FOUND");
  };
  const pending = () =>
    notImplemented("asset building is not available yet: the imager and serving work land later", "ASSETS_NOT_BUILT");

  app.route<{ Params: AssetParams; Querystring: Record<string, unknown> }>({
    method: ["GET", "HEAD"],
    url: "/image/:schematic/:version/:path",
    handler: async (request, reply) => {
      const { path, checksum } = splitChecksumPath(request.params.path);
      await validate({ ...request.params, path }, parseAssetPath);
      if (assets === undefined) throw pending();
      const filename = downloadFilename(request.query, path);
      const schematic = parseSchematic(Buffer.from(await schematics.get(request.params.schematic)));
      const assetRequest = parseAssetRequest(request.params.schematic, request.params.version, path);
      const signal = clientGone(reply);
      let asset: Awaited<ReturnType<AssetService["get"]>>;
      try {
        asset = await assets.get(assetRequest, schematic, { signal });
      } catch (err) {
        if (signal.aborted && err === signal.reason) {
          // Nobody to answer; the build goes on for the others (and the cache).
          request.log.info({ statusCode: 499 }, "client closed request while its asset was being prepared");
          return reply.code(499).send();
        }
        throw err;
      }
      if (checksum !== undefined) {
        asset.release();
        return sendChecksum(reply, asset, filename, checksum);
      }
      // The entry stays out of garbage collection's reach until the response is over.
      reply.raw.once("close", asset.release);
      return sendAsset(request, reply, asset, { filename, cacheControl: cacheControlFor(assetRequest.talosVersion) });
    },
  });
  app.get<{ Params: AssetParams }>("/pxe/:schematic/:version/:path", async (request, reply) => {
    await validate(request.params, parsePxePath);
    if (assets === undefined || pxe === undefined) throw pending();
    // Upstream (internal/frontend/http/pxe.go) builds the cmdline asset `cmdline-<path>` and writes one of
    // two scripts (standard.ipxe, secureboot.ipxe) with URLs under -external-pxe-url.
    const pxePath = parsePxePath(request.params.path);
    const schematic = parseSchematic(Buffer.from(await schematics.get(request.params.schematic)));
    const cmdlinePath = `cmdline-${pxePath.platform}-${pxePath.arch}${pxePath.secureBoot ? "-secureboot" : ""}`;
    const assetRequest = parseAssetRequest(request.params.schematic, request.params.version, cmdlinePath);
    const asset = await assets.get(assetRequest, schematic, { signal: clientGone(reply) });
    let cmdline: string;
    try {
      cmdline = (await readFile(asset.path, "utf8")).trim();
    } finally {
      asset.release();
    }
    const imageUrl = (name: string) =>
      new URL(`image/${request.params.schematic}/${assetRequest.talosVersion}/${name}`, pxe.externalPxeUrl).href;
    const script = pxePath.secureBoot
      ? [
          "#!ipxe",
          "",
          "imgfree",
          `kernel ${imageUrl(`${pxePath.platform}-${pxePath.arch}-secureboot-uki.efi`)} ${cmdline}`,
          "boot",
          "",
        ]
      : [
          "#!ipxe",
          "",
          "imgfree",
          `kernel ${imageUrl(`kernel-${pxePath.arch}`)} ${cmdline}`,
          `initrd ${imageUrl(`initramfs-${pxePath.arch}.xz`)}`,
          "boot",
          "",
        ];
    // Upstream sets no Content-Type: Go's server sniffs the text as text/plain; charset=utf-8.
    return reply.type("text/plain; charset=utf-8").send(script.join("\n"));
  });
}
