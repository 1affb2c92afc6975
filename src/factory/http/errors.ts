// Error answers: plain text, status from `httpStatusOf` (errors.ts, the one place mapping errors to HTTP).
// Errors fastify raises itself (a malformed URL, an unparseable header) carry a 4xx statusCode; they are
// turned into the matching typed error first so the mapping stays in that one place.

import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { AppError, badRequest, httpStatusOf, isAppError, notFound, retryAfterSeconds, tooLarge } from "../../errors.ts";
import type { TooLargeDetail } from "./request-body.ts";

function typedError(err: unknown): unknown {
  if (isAppError(err)) return err;
  const status = (err as Partial<FastifyError>)?.statusCode;
  const message = err instanceof Error ? err.message : String(err);
  if (status === 413) return tooLarge(message);
  // fastify's router refusing a path parameter over maxParamLength (its message repeats the whole path)
  if (status === 414) return tooLarge("request URL has a path segment that is too long", "URI_TOO_LONG");
  if (status === 404) return notFound(message);
  if (typeof status === "number" && status >= 400 && status < 500) return badRequest(message);
  return err;
}

/** The text sent for an error: the message of a typed error, nothing internal for anything else. */
export function publicMessage(err: unknown, status: number): string {
  if (status === 507) return "insufficient storage: the factory's data disk is full; try again later";
  if (err instanceof AppError && status < 500) return err.message;
  if (err instanceof AppError && (err.kind === "Upstream" || err.kind === "Integrity" || err.kind === "NotImplemented"))
    return err.message;
  return "internal server error";
}

export function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const typed = typedError(err);
  const status = httpStatusOf(typed);
  if (status >= 500 && status !== 501) request.log.error({ err }, "request failed");
  if (isAppError(typed, "TooLarge") && (typed.detail as TooLargeDetail | undefined)?.closeConnection)
    reply.header("Connection", "close");
  // 503: a registry or service the factory needs is out for now; 507: its disk is full until space frees.
  // Either way, say when to try again.
  if (status === 503 || status === 507) reply.header("Retry-After", String(retryAfterSeconds));
  return reply
    .code(status)
    .type("text/plain; charset=utf-8")
    .send(`${publicMessage(typed, status)}\n`);
}
