// The registry front `/v2/…` for installer images, as upstream Image Factory answers it
// (internal/frontend/http/registry_routes.go `handleV2`, registry.go `handleManifest`, `handleBlob`,
// `handleReferrers`, `handleImageProxy`, `handleExternalRegistry`):
//   GET|HEAD /v2, /v2/                                   ping, 200 empty
//   GET|HEAD /v2/<image>/<schematic>/manifests/<ref>     installer index (built on demand, signed), or passed
//                                                        through for a digest or a ref not starting with "v"
//   GET|HEAD /v2/<image>/<schematic>/blobs/<digest>      from the internal repository
//   GET|HEAD /v2/<image>/<schematic>/referrers/<digest>  the internal repository's referrers, as an index
//   GET|HEAD /v2/siderolabs/<image>/…                    the source images, reverse-proxied (plain HTTP only)
// Manifests and blobs are answered from the internal repository (the embedded store streams them directly;
// a remote one is read through the registry client), or, with -installer-external-repository, redirected
// there with 307. Other methods get the router's 405.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { isAppError, notFound } from "../../errors.ts";
import { type Digest, isDigest, sha256Digest } from "../../oci/digest.ts";
import type { ImageIndex } from "../../oci/manifest.ts";
import { MediaType } from "../../oci/mediatypes.ts";
import type { Repository } from "../../oci/repository.ts";
import { toWireError } from "../../registry/http-errors.ts";
import { parseSchematic } from "../../talos/schematic.ts";
import { goQuote } from "../../util/go-quote.ts";
import { type InstallerService, parseInstallerImageName } from "../installers/service.ts";
import type { SchematicService } from "../schematics.ts";
import { proxyRequest } from "./registry-proxy.ts";
import { isPlainHttpRegistry, routeV2 } from "./registry-route.ts";

export interface RegistryFrontOptions {
  schematics: SchematicService;
  installers: InstallerService;
  /** The internal repository of `<image>/<schematic>`. */
  repositoryFor(image: string, schematicId: string): Repository;
  /** -installer-external-repository: manifests and blobs are 307-redirected there. */
  external?: { registry: string; repository: string; insecure: boolean };
  /** The newest offered version that is not a pre-release (the `latest` tag), if any. */
  latestVersion(): string | undefined;
  /**
   * The source-image proxy: the core image registry and the repositories of upstream's image map
   * (cmd/image-factory/cmd/options.go ImageMap: installer-base, installer, imager, extensions, overlays,
   * talosctl-all).
   */
  sourceProxy: { registry: string; insecure: boolean; images: Readonly<Record<string, string>> };
}

/** Aborted when the client goes away before its answer was sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client closed request"));
  });
  return controller.signal;
}

/** A registry's own error for a manifest or blob read, in the distribution spec's JSON (as a proxy relays it). */
function sendWireError(reply: FastifyReply, err: unknown): FastifyReply {
  const wire = toWireError(err);
  return reply
    .code(wire.status)
    .type("application/json")
    .send(`${JSON.stringify(wire.body)}\n`);
}

function isReadError(err: unknown): boolean {
  return isAppError(err, "NotFound") || isAppError(err, "BadRequest");
}

async function sendManifest(
  request: FastifyRequest,
  reply: FastifyReply,
  repository: Repository,
  reference: string,
): Promise<FastifyReply> {
  try {
    if (request.method === "HEAD") {
      const info = await repository.statManifest(reference);
      if (info === undefined)
        throw notFound(`manifest ${reference} is unknown to ${repository.displayName}`, "MANIFEST_UNKNOWN");
      return reply
        .header("Content-Type", info.mediaType)
        .header("Docker-Content-Digest", info.digest)
        .header("Content-Length", String(info.size))
        .send();
    }
    const record = await repository.getManifest(reference);
    return reply
      .header("Content-Type", record.mediaType)
      .header("Docker-Content-Digest", record.digest)
      .send(record.body);
  } catch (err) {
    if (isReadError(err)) return sendWireError(reply, err);
    throw err;
  }
}

async function sendBlob(
  request: FastifyRequest,
  reply: FastifyReply,
  repository: Repository,
  reference: string,
): Promise<FastifyReply> {
  try {
    if (!isDigest(reference)) throw notFound(`blob ${reference} is unknown`, "BLOB_UNKNOWN");
    if (request.method === "HEAD") {
      const info = await repository.statBlob(reference);
      if (info === undefined)
        throw notFound(`blob ${reference} is unknown to ${repository.displayName}`, "BLOB_UNKNOWN");
      return reply
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", info.digest)
        .header("Content-Length", String(info.size))
        .send();
    }
    const blob = await repository.getBlob(reference);
    return reply
      .header("Content-Type", "application/octet-stream")
      .header("Docker-Content-Digest", blob.digest)
      .header("Content-Length", String(blob.size))
      .send(blob.stream);
  } catch (err) {
    if (isReadError(err)) return sendWireError(reply, err);
    throw err;
  }
}

export function registerRegistryFront(app: FastifyInstance, options: RegistryFrontOptions): void {
  const { schematics, installers } = options;

  /** Upstream's schematic lookup answers 404 for a malformed ID as for an unknown one. */
  const loadSchematic = async (id: string) => {
    try {
      return parseSchematic(Buffer.from(await schematics.get(id)));
    } catch (err) {
      if (isAppError(err, "NotFound")) throw notFound(`schematic ID ${goQuote(id)} not found`, "SCHEMATIC_NOT_FOUND");
      throw err;
    }
  };

  /** Answers `<resource>/<ref>` of `<image>/<schematic>` from the internal repository, or redirects. */
  const answer = (
    request: FastifyRequest,
    reply: FastifyReply,
    image: string,
    schematic: string,
    resource: "manifests" | "blobs",
    reference: string,
  ) => {
    const external = options.external;
    if (external !== undefined) {
      const scheme = isPlainHttpRegistry(external.registry, external.insecure) ? "http" : "https";
      const location = `${scheme}://${external.registry}/v2/${external.repository}/${image}/${schematic}/${resource}/${reference}`;
      request.log.info({ location }, "redirecting manifest/blob");
      return reply.code(307).header("Location", location).send();
    }
    const repository = options.repositoryFor(image, schematic);
    return resource === "manifests"
      ? sendManifest(request, reply, repository, reference)
      : sendBlob(request, reply, repository, reference);
  };

  const handleV2 = async (request: FastifyRequest, reply: FastifyReply, path: string) => {
    const route = routeV2(path);
    switch (route.target) {
      case "ping":
        return reply.send();
      case "manifest": {
        const schematic = await loadSchematic(route.schematic);
        const image = parseInstallerImageName(route.image);
        let reference = route.reference;
        if (reference === "latest") {
          const latest = options.latestVersion();
          if (latest === undefined) throw notFound("no released Talos version is available", "VERSION_NOT_FOUND");
          request.log.info({ schematic: route.schematic, version: latest }, "resolving latest tag to version");
          reference = latest;
        }
        if (reference.startsWith("sha256:") || !reference.startsWith("v"))
          return answer(request, reply, image.name, route.schematic, "manifests", reference);
        const signal = clientGone(reply);
        let digest: Digest;
        try {
          ({ digest } = await installers.index(image, route.schematic, schematic, reference, signal));
        } catch (err) {
          if (signal.aborted && err === signal.reason) {
            request.log.info({ statusCode: 499 }, "client closed request while its installer was being prepared");
            return reply.code(499).send();
          }
          throw err;
        }
        return answer(request, reply, image.name, route.schematic, "manifests", digest);
      }
      case "blob": {
        await loadSchematic(route.schematic);
        const image = parseInstallerImageName(route.image);
        return answer(request, reply, image.name, route.schematic, "blobs", route.reference);
      }
      case "referrers": {
        await loadSchematic(route.schematic);
        const image = parseInstallerImageName(route.image);
        if (!isDigest(route.reference))
          throw notFound(`invalid referrers subject digest: ${route.reference}`, "DIGEST_INVALID");
        const query = request.query as Record<string, unknown>;
        const artifactType = typeof query.artifactType === "string" ? query.artifactType : "";
        const repository = options.repositoryFor(image.name, route.schematic);
        const manifests = await repository.referrers(route.reference, artifactType === "" ? undefined : artifactType);
        const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
        const body = Buffer.from(JSON.stringify(index));
        reply
          .header("Content-Type", MediaType.ociIndex)
          .header("Docker-Content-Digest", sha256Digest(body))
          .header("Content-Length", String(body.length));
        if (artifactType !== "") reply.header("OCI-Filters-Applied", "artifactType");
        return reply.send(request.method === "HEAD" ? undefined : body);
      }
      case "proxy": {
        const proxy = options.sourceProxy;
        if (!isPlainHttpRegistry(proxy.registry, proxy.insecure))
          return reply
            .code(503)
            .type("text/plain; charset=utf-8")
            .send("proxying to an authorized/secure backing registry is not possible\n");
        const repository = proxy.images[route.image];
        if (repository === undefined) throw notFound(`unknown image: ${route.image}`, "IMAGE_UNKNOWN");
        const search = request.raw.url?.includes("?") ? request.raw.url.slice(request.raw.url.indexOf("?")) : "";
        const target = `http://${proxy.registry}/v2/${repository}/${route.resource}/${route.reference}${search}`;
        request.log.info({ location: target }, "proxying registry request");
        return proxyRequest(request, reply, target);
      }
    }
  };

  app.route({
    method: ["GET", "HEAD"],
    url: "/v2",
    handler: (_request, reply) => reply.send(),
  });
  app.route<{ Params: { "*": string } }>({
    method: ["GET", "HEAD"],
    url: "/v2/*",
    handler: (request, reply) => handleV2(request, reply, `/${request.params["*"]}`),
  });
  // The router's answer for the other methods (httprouter: 405 with Allow).
  for (const url of ["/v2", "/v2/*"])
    app.route({
      method: ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
      url,
      handler: (request, reply) => {
        reply.header("Allow", "GET, HEAD, OPTIONS");
        if (request.method === "OPTIONS") return reply.send();
        return reply.code(405).type("text/plain; charset=utf-8").send("Method Not Allowed\n");
      },
    });
}
