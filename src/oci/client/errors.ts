// Maps a registry's error answer (status + `{"errors":[{"code","message","detail"}]}` body, per the
// distribution spec) into an AppError of the right kind, with a message naming what was asked of whom.

import { AppError, type ErrorKind } from "../../errors.ts";
import { type HttpResponse, readBody } from "./transport.ts";

export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/** What the failed request was about, for the message: "push manifest v1 to 127.0.0.1:5000/app". */
export interface RequestContext {
  registry: string;
  repository?: string;
  /** A tag or digest, when the request was about one. */
  reference?: string;
  /** A verb phrase, e.g. "get manifest", "upload blob". */
  operation: string;
}

/** Error bodies are small; the bound guards against a registry streaming a blob back as an "error". */
const maxErrorBodyBytes = 64 * 1024;

export function describe(ctx: RequestContext): string {
  const where = ctx.repository ? `${ctx.registry}/${ctx.repository}` : ctx.registry;
  return `${ctx.operation}${ctx.reference ? ` ${ctx.reference}` : ""} (${where})`;
}

/** Extracts the spec's error entries from a body, or [] when it is not that format. */
export function parseErrorBody(body: Buffer): RegistryErrorEntry[] {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { errors?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is Record<string, unknown> => typeof e === "object" && e !== null)
      .map((e) => ({
        code: typeof e.code === "string" ? e.code : "UNKNOWN",
        message: typeof e.message === "string" ? e.message : undefined,
        detail: e.detail,
      }));
  } catch {
    return [];
  }
}

const kindByCode: Record<string, ErrorKind> = {
  BLOB_UNKNOWN: "NotFound",
  MANIFEST_UNKNOWN: "NotFound",
  NAME_UNKNOWN: "NotFound",
  BLOB_UPLOAD_UNKNOWN: "NotFound",
  UNAUTHORIZED: "Unauthorized",
  DENIED: "Unauthorized",
  UNSUPPORTED: "Unsupported",
  DIGEST_INVALID: "Integrity",
  SIZE_INVALID: "Integrity",
  TOOMANYREQUESTS: "Upstream",
};

function kindFor(status: number, code: string | undefined): ErrorKind {
  if (status === 404) return "NotFound";
  if (status === 401 || status === 403) return "Unauthorized";
  if (status >= 500 || status === 429) return "Upstream";
  if (code && kindByCode[code]) return kindByCode[code];
  if (status === 405) return "Unsupported";
  if (status === 409) return "Conflict";
  if (status === 416) return "Conflict";
  if (status >= 400) return "BadRequest";
  // An unexpected 1xx/2xx/3xx: the registry did not follow the protocol.
  return "Upstream";
}

const fallbackCodeByStatus: Record<number, string> = {
  401: "UNAUTHORIZED",
  403: "DENIED",
  405: "UNSUPPORTED",
  429: "TOOMANYREQUESTS",
};

/** Builds the error for an unexpected status, reading (and bounding) the error body. */
export async function errorFromResponse(res: HttpResponse, ctx: RequestContext): Promise<AppError> {
  let entries: RegistryErrorEntry[] = [];
  try {
    const { data } = await readBody(res, maxErrorBodyBytes);
    entries = parseErrorBody(data);
  } catch {
    // A body that fails to arrive does not change what the status says.
  }
  return errorFromStatus(res.statusCode, entries, ctx);
}

export function errorFromStatus(status: number, entries: RegistryErrorEntry[], ctx: RequestContext): AppError {
  const first = entries[0];
  const code = first?.code ?? fallbackCodeByStatus[status];
  const reason = entries.length
    ? entries.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join("; ")
    : status === 404
      ? "not found"
      : `HTTP ${status}`;
  const message = `${describe(ctx)}: registry answered ${status} (${reason})`;
  return new AppError(kindFor(status, first?.code), message, {
    code,
    detail: { status, errors: entries, ...ctx },
  });
}

/** The error for a registry that could not be reached at all. */
export function unreachable(ctx: RequestContext, cause: unknown): AppError {
  const reason = (cause as Error | undefined)?.message ?? String(cause);
  const code = (cause as { code?: unknown } | undefined)?.code;
  return new AppError("Upstream", `${describe(ctx)}: registry ${ctx.registry} is unreachable: ${reason}`, {
    cause,
    code: typeof code === "string" ? code : "UNREACHABLE",
  });
}
