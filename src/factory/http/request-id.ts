// X-Request-ID: a caller's ID is echoed when it is a sane token (so IDs from a proxy tie log lines together);
// anything else (missing, too long, odd characters that could forge log fields) is replaced by a new one.

import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";

export const requestIdHeader = "x-request-id";
const acceptable = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers[requestIdHeader];
  return typeof given === "string" && acceptable.test(given) ? given : randomUUID();
}
