// Reading a request body with a hard cap. Bodies are never parsed by fastify (the app registers one
// catch-all content-type parser that leaves them unread), so every route reads exactly what it allows.
//
// A body somewhat over the cap is read to its end and dropped, so the client (which usually sends the whole
// body before reading the answer) gets a clean 413 on a connection that stays usable; a body far over it is
// not read at all and the connection is closed after the answer.

import type { IncomingMessage } from "node:http";
import { tooLarge } from "../../errors.ts";

/** Bodies up to this size past the cap are drained to answer cleanly; bigger ones get Connection: close. */
const maxDrainBytes = 8 * 1024 * 1024;

export interface TooLargeDetail {
  closeConnection: boolean;
}

function bodyTooLarge(limit: number, closeConnection: boolean): Error {
  const error = tooLarge(`request body is larger than ${limit} bytes`, "BODY_TOO_LARGE");
  (error as { detail: unknown }).detail = { closeConnection } satisfies TooLargeDetail;
  return error;
}

/** Reads the whole body, or fails with TooLarge (HTTP 413) once it passes `limit` bytes. */
export function readRequestBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"] ?? Number.NaN);
  if (declared > limit + maxDrainBytes) return Promise.reject(bodyTooLarge(limit, true));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total <= limit) chunks.push(chunk);
      else if (total > limit + maxDrainBytes) {
        cleanup();
        request.pause(); // not destroyed: the 413 still has to go out on this socket
        reject(bodyTooLarge(limit, true));
      }
    };
    const onEnd = () => {
      cleanup();
      if (total > limit) reject(bodyTooLarge(limit, false));
      else resolve(Buffer.concat(chunks, total));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(new Error("the client aborted the request"));
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", onError);
    request.on("aborted", onAborted);
  });
}
