// Answers for requests Node's HTTP parser refuses before fastify sees them (a header block over the size
// limit, a request not received within its timeout, malformed framing), and the URL length check. They use
// the same plain-text error shape and status mapping as every other answer (errors.ts, http/errors.ts), and
// always close the connection: the parser's state is unusable after such an error.
//
// Upstream (cmd/image-factory/cmd/service.go) runs Go's http.Server without read timeouts and with Go's
// default 1 MiB header limit, answering an oversized header block with 431; the limits here are stricter on
// purpose (docs/limits.md, "HTTP connections and shutdown").

import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { type AppError, badRequest, httpStatusOf, tooLarge } from "../../errors.ts";

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

/** fastify's `clientErrorHandler`: answers in the app's error shape, then closes the socket. */
export function clientErrorHandler(serverHeader: string) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    const error = errorOf(err.code);
    const status = httpStatusOf(error);
    const body = `${error.message}\n`;
    // An answer already started on this socket cannot be replaced: just close.
    const busy = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (socket.writable && !busy) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
          "Content-Type: text/plain; charset=utf-8\r\n" +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          `Server: ${serverHeader}\r\n` +
          "Connection: close\r\n\r\n" +
          body,
      );
    }
    socket.end();
    // A client that reads nothing must not keep the socket: give the answer a moment, then drop it.
    setTimeout(() => socket.destroy(), 1000).unref();
  };
}
