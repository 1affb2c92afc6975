// The answer to a connection-level client error (a request Node's HTTP parser refused, a request timeout,
// headers too large), as fastify's default gives it (fastify.js defaultClientErrorHandler: 408 timeout,
// 431 header overflow, 400 otherwise, a JSON body, then the socket destroyed) — with one difference: bytes a
// client sends after a request it marked `Connection: close` are not a request, so they get no answer.
// Node's client sends a DELETE body without Content-Length; the server reads those bytes as a next request,
// and fastify wrote a second 400 after the first answer, which the client's parser rejects ("Data after
// `Connection: close`"; test/reliability/fuzz-factory.test.ts found it in 7 of 3000 fuzzed requests).

import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";

/** Sockets whose current exchange is their last: the client asked `Connection: close`. */
const lastExchange = new WeakSet<Socket>();

/**
 * Remembers, for every request the server parses (before fastify's routing, so a URL it refuses counts too),
 * whether its socket closes after the answer.
 */
export function watchConnectionClose(server: Server): void {
  server.prependListener("request", (request: IncomingMessage) => {
    const header = request.headers.connection;
    if (header !== undefined && /(^|,)\s*close\s*(,|$)/i.test(header)) lastExchange.add(request.socket);
  });
}

/**
 * fastify's `clientErrorHandler` for the embedded registry. (The factory's, src/factory/http/client-errors.ts,
 * already answers such bytes not at all: test/factory/connections.test.ts.)
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  if (lastExchange.has(socket)) {
    // Not a request: no answer. The answer to the request before it may not be written yet (both can arrive
    // in one packet), so the socket is left to Node, which closes it once that answer is out; a timer drops
    // it should that answer never come.
    setTimeout(() => socket.destroy(), 10_000).unref();
    return;
  }
  const status = err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
  const message =
    status === 408 ? "Client Timeout" : status === 431 ? "Exceeded maximum allowed HTTP header size" : "Client Error";
  const body = JSON.stringify({ error: STATUS_CODES[status], message, statusCode: status });
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  socket.destroy(err);
}
