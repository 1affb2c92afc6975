// Errors on the wire, as the OCI distribution spec writes them: a status and
// {"errors":[{"code","message","detail"}]}. The spec fixes the status per error code, so the codes decide
// first; other errors fall back to the project-wide kind → status mapping.

import { STATUS_CODES } from "node:http";
import { AppError, httpStatusOf } from "../errors.ts";
import type { ClientErrorAnswer } from "../util/client-errors.ts";

const statusByCode: Record<string, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  // Not in the spec's list; CNCF distribution answers it for a bad ?n= (registry/api/v2/errors.go).
  PAGINATION_NUMBER_INVALID: 400,
};

export interface WireError {
  status: number;
  body: { errors: { code: string; message: string; detail?: unknown }[] };
}

/** An error raised by the HTTP face with a status the code alone does not fix (413, 416, 404 for a route). */
export function httpError(status: number, code: string, message: string, detail?: unknown): AppError {
  return new AppError(status >= 500 ? "Internal" : "BadRequest", message, {
    code,
    detail: { status, ...(detail ?? {}) },
  });
}

export function toWireError(err: unknown): WireError {
  if (!(err instanceof AppError)) {
    return { status: 500, body: { errors: [{ code: "UNKNOWN", message: "internal error" }] } };
  }
  let explicitStatus: number | undefined;
  let detail = err.detail;
  if (detail !== null && typeof detail === "object" && "status" in detail) {
    const { status, ...rest } = detail as { status?: number };
    explicitStatus = status;
    detail = Object.keys(rest).length > 0 ? rest : undefined;
  }
  const code = err.code !== undefined && err.code in statusByCode ? err.code : undefined;
  // Content that fails its digest or size here was sent by the client (an upload): its fault, 400 — unlike
  // the factory, where it comes from a source registry (502, src/errors.ts).
  const status =
    explicitStatus ?? (code ? statusByCode[code] : undefined) ?? (err.kind === "Integrity" ? 400 : httpStatusOf(err));
  const entry: { code: string; message: string; detail?: unknown } = {
    code: err.code ?? (status === 404 ? "NOT_FOUND" : "UNKNOWN"),
    message: err.message,
  };
  if (detail !== undefined) entry.detail = detail;
  return { status, body: { errors: [entry] } };
}

/**
 * The answer to bytes the HTTP parser refused (util/client-errors.ts), as CNCF distribution's Go server gives
 * it: a plain-text status line for a body, 431 for a header block over the limit, 400 otherwise (Go's
 * net/http/server.go, conn.serve). A request not received within the request timeout is a 408 here (Go's
 * server has no such timeout by default and just closes).
 */
export function clientErrorAnswer(err: NodeJS.ErrnoException): ClientErrorAnswer {
  const status = err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
  return { status, contentType: "text/plain; charset=utf-8", body: `${status} ${STATUS_CODES[status]}` };
}
