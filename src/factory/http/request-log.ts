// One JSON log line per request, written when the response is complete: method, path (without the query,
// which may carry tokens later), status, duration and the request ID (pino's `requestId` binding of the
// request's logger), instead of fastify's two lines per request. A client that closes the connection
// before its answer is complete gets its line too, with status 499 at info level, as upstream logs a
// cancelled request (internal/frontend/http/http.go `MatchError`): fastify itself logs nothing then.

import { type FastifyReply, type FastifyRequest, LogController } from "fastify";

/** nginx's and upstream's status for "the client closed the request". */
export const clientClosedRequest = 499;

export class OneLinePerRequest extends LogController {
  readonly #logged = new WeakSet<FastifyReply>();

  constructor() {
    super({ requestIdLogLabel: "requestId" });
  }

  override incomingRequest(): void {}

  /** Call once per request (an onRequest hook): logs the 499 line when the client leaves early. */
  watchClientClose(request: FastifyRequest, reply: FastifyReply): void {
    reply.raw.once("close", () => {
      if (!reply.raw.writableFinished) this.#write(undefined, request, reply, clientClosedRequest);
    });
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    this.#write(error ?? undefined, request, reply, reply.statusCode);
  }

  #write(error: Error | undefined, request: FastifyRequest, reply: FastifyReply, status: number): void {
    if (this.#logged.has(reply)) return;
    this.#logged.add(reply);
    const line = {
      method: request.method,
      path: request.url.split("?", 1)[0],
      status,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.warn({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request");
  }
}
