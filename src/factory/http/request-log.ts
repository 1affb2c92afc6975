// One JSON log line per request, written when the response is complete: method, path (without the query,
// which may carry tokens later), status, duration and the request ID (pino's `requestId` binding of the
// request's logger), instead of fastify's two lines per request.

import { type FastifyReply, type FastifyRequest, LogController } from "fastify";

export class OneLinePerRequest extends LogController {
  constructor() {
    super({ requestIdLogLabel: "requestId" });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      path: request.url.split("?", 1)[0],
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.warn({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request");
  }
}
