// The small set of typed errors the whole code base raises. Each is created where the fact is known;
// HTTP status and CLI exit code are derived from the kind in exactly one place each (below).

export type ErrorKind =
  | "BadRequest" // the caller's input is wrong
  | "NotFound" // the thing asked for does not exist
  | "Conflict" // the request clashes with existing state (e.g. a store already locked)
  | "Upstream" // a remote registry or service failed or answered wrongly
  | "Integrity" // content does not match its digest or size, or a signature fails
  | "Unauthorized" // credentials missing or refused
  | "Unsupported" // a valid request for something not implemented
  | "TooLarge" // the caller sent more than a limit allows (a request body over its cap)
  | "NotImplemented" // a valid request for a feature that is planned but not built yet
  | "Internal"; // a bug or an unexpected local failure

export class AppError extends Error {
  readonly kind: ErrorKind;
  /** Machine-readable code, e.g. an OCI distribution error code such as BLOB_UNKNOWN. */
  readonly code: string | undefined;
  readonly detail: unknown;

  constructor(kind: ErrorKind, message: string, options?: { code?: string; detail?: unknown; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = `${kind}Error`;
    this.kind = kind;
    this.code = options?.code;
    this.detail = options?.detail;
  }
}

export const badRequest = (message: string, code?: string, detail?: unknown) =>
  new AppError("BadRequest", message, { code, detail });
export const notFound = (message: string, code?: string) => new AppError("NotFound", message, { code });
export const integrity = (message: string, code?: string) => new AppError("Integrity", message, { code });
export const upstream = (message: string, cause?: unknown, code?: string) =>
  new AppError("Upstream", message, { cause, code });
export const unsupported = (message: string, code = "UNSUPPORTED") => new AppError("Unsupported", message, { code });
export const tooLarge = (message: string, code = "TOO_LARGE") => new AppError("TooLarge", message, { code });
export const notImplemented = (message: string, code = "NOT_IMPLEMENTED") =>
  new AppError("NotImplemented", message, { code });

export function isAppError(err: unknown, kind?: ErrorKind): err is AppError {
  return err instanceof AppError && (kind === undefined || err.kind === kind);
}

const httpStatusByKind: Record<ErrorKind, number> = {
  BadRequest: 400,
  NotFound: 404,
  Conflict: 409,
  Upstream: 502,
  // Content that fails its digest or signature comes from a source (an image, a registry): not the
  // caller's fault. The embedded registry, where the uploader sent it, answers 400 itself.
  Integrity: 502,
  Unauthorized: 401,
  Unsupported: 405,
  TooLarge: 413,
  NotImplemented: 501,
  Internal: 500,
};

/** Codes that refine their kind's status: a URL or header block over its limit, a request read too slowly. */
const httpStatusByCode: Readonly<Record<string, number>> = {
  URI_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  // A registry the factory depends on (the cache repository) cannot be reached: try again later.
  UNAVAILABLE: 503,
  // A registry that did not answer at all (src/oci/client/errors.ts `unreachable` keeps the socket error's
  // code): an outage that may end, not a wrong answer (502), so 503 with Retry-After.
  UNREACHABLE: 503,
  ECONNREFUSED: 503,
  ECONNRESET: 503,
  ETIMEDOUT: 503,
  EHOSTUNREACH: 503,
  ENETUNREACH: 503,
  EPIPE: 503,
  UND_ERR_SOCKET: 503,
  UND_ERR_CONNECT_TIMEOUT: 503,
};

/**
 * Seconds a client is asked to wait (Retry-After) before repeating a request answered 503. Upstream
 * (image-factory internal/frontend/http/http.go MatchError) answers its 503s without the header; sending it
 * tells clients the outage is temporary and paces their retries.
 */
export const retryAfterSeconds = 10;

/**
 * Whether `err`, or an error in its cause chain, is the local disk running out of space (ENOSPC, EDQUOT), or a
 * tool that said so on stderr. Not the caller's fault and not a bug: space may free (collection, an operator).
 */
export function isStorageFull(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") return true;
    if (/No space left on device|Disk quota exceeded/.test(e.message)) return true;
  }
  return false;
}

/** The one place that maps an error to an HTTP status. */
export function httpStatusOf(err: unknown): number {
  // 507 Insufficient Storage (RFC 4918): the server cannot store what the request needs to build.
  if (isStorageFull(err)) return 507;
  if (!(err instanceof AppError)) return 500;
  if (err.code !== undefined && Object.hasOwn(httpStatusByCode, err.code)) return httpStatusByCode[err.code] as number;
  return httpStatusByKind[err.kind];
}

const exitCodeByKind: Record<ErrorKind, number> = {
  BadRequest: 2,
  NotFound: 3,
  Conflict: 4,
  Upstream: 5,
  Integrity: 6,
  Unauthorized: 7,
  Unsupported: 8,
  TooLarge: 2,
  NotImplemented: 8,
  Internal: 1,
};

/** The one place that maps an error to a CLI exit code. */
export function exitCodeOf(err: unknown): number {
  return err instanceof AppError ? exitCodeByKind[err.kind] : 1;
}
