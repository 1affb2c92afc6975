// POST /schematics and GET /schematics/:id (upstream image-factory docs/api.md, internal/frontend/http/schematic.go): create returns 201 with the ID and the
// canonical YAML as JSON; get returns the canonical YAML. Bodies are capped at 1 MiB (413 above).

import type { FastifyInstance } from "fastify";
import { MAX_SCHEMATIC_BYTES } from "../../talos/schematic.ts";
import type { SchematicService } from "../schematics.ts";
import { readRequestBody } from "./request-body.ts";

export function registerSchematicRoutes(app: FastifyInstance, schematics: SchematicService): void {
  app.post("/schematics", async (request, reply) => {
    const body = await readRequestBody(request.raw, MAX_SCHEMATIC_BYTES);
    const { id, yaml, created } = await schematics.create(body);
    request.log.info({ schematic: id, created }, created ? "schematic created" : "schematic already stored");
    return reply
      .code(201)
      .type("application/json")
      .send(JSON.stringify({ id, schematic: yaml }));
  });

  app.get<{ Params: { id: string } }>("/schematics/:id", async (request, reply) => {
    const yaml = await schematics.get(request.params.id);
    return reply.code(200).type("application/yaml").send(yaml);
  });
}
