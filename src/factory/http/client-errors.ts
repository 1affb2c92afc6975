// The factory's answers to requests Node's HTTP parser refuses before fastify sees them (a header block over
// the size limit, a request not received within its timeout, malformed framing), and the URL length check.
// They use the same plain-text error shape and status mapping as every other answer (errors.ts,
// http/errors.ts); when they are sent, and that the connection is then closed, is util/client-errors.ts.
//
// Upstream (cmd/image-factory/cmd/service.go) runs Go's http.Server without read timeouts and with Go's
// default 1 MiB header limit, answering an oversized header block with 431; the limits here are stricter on
// purpose (docs/limits.md, "HTTP connections and shutdown").

import { type AppError, badRequest, httpStatusOf, tooLarge } from "../../errors.ts";
import { type ClientErrorAnswer, clientErrorHandler } from "../../util/client-errors.ts";

/** Request line plus headers, bytes (Node's maxHeaderSize); over it: 431. */
export const maxHeaderBytes = 16 * 1024;
/** The request target, bytes; over it: 414. */
export const maxUrlBytes = 8 * 1024;

export const uriTooLong = () => tooLarge(`request URL is longer than ${maxUrlBytes} bytes`, "URI_TOO_LONG");

function errorOf(code: string | undefined): AppError {
  if (code === "HPE_HEADER_OVERFLOW")
    return tooLarge(`request headers are larger than ${maxHeaderBytes} bytes`, "HEADERS_TOO_LARGE");
  if (code === "ERR_HTTP_REQUEST_TIMEOUT")
    return badRequest("the request was not received within the request timeout", "REQUEST_TIMEOUT");
  return badRequest("malformed HTTP request");
}

/** fastify's `clientErrorHandler` for the factory: the app's error shape and Server header. */
export function factoryClientErrorHandler(serverHeader: string) {
  return clientErrorHandler((err): ClientErrorAnswer => {
    const error = errorOf(err.code);
    return {
      status: httpStatusOf(error),
      contentType: "text/plain; charset=utf-8",
      body: `${error.message}\n`,
      headers: { Server: serverHeader },
    };
  });
}
