// When Node's HTTP parser refuses bytes on a connection (malformed framing, a header block over the limit, a
// request not received within its timeout), fastify hands the socket to a `clientErrorHandler`, bypassing
// routing. The factory and the embedded registry each answer in their own error shape (factory/http/
// client-errors.ts, registry/server.ts); when and whether to answer is the same for both, and is here.
//
// The bytes refused are not always the request the socket is answering. A client may pipeline a request and
// garbage behind it in one packet, or Node's own client sends a DELETE body without Content-Length, which the
// server reads as a next request. Then:
// - the answer to the complete request before them is let out whole (a download under way is not cut), and
//   the error answered after it, as Go's server does (it reads the next request only once the last answer is
//   written; net/http/server.go);
// - after a request marked `Connection: close`, the bytes are not a request and get no answer at all: a
//   second answer is "Data after `Connection: close`" to the client's parser (test/reliability/
//   fuzz-factory.test.ts found it in 7 of 3000 fuzzed requests).
// When the refused bytes are the request under way itself (its body too slow or malformed), it is answered at
// once, unless its answer has started, which cannot be replaced: the connection is then just closed.
// Every path ends in a closed socket: the parser's state is unusable after an error.

import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";

/** An error answer's parts; `Content-Length` and `Connection: close` are added. */
export interface ClientErrorAnswer {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** After the answer is written, a client that reads nothing keeps the socket this long at most. */
const lingerMs = 1000;

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

function rawAnswer(answer: ClientErrorAnswer): string {
  const headers = {
    "Content-Type": answer.contentType,
    "Content-Length": String(Buffer.byteLength(answer.body)),
    ...answer.headers,
    Connection: "close",
  };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\n${lines.join("")}\r\n${answer.body}`;
}

/** fastify's `clientErrorHandler`, answering in the shape `answer` gives. Use with watchConnectionClose. */
export function clientErrorHandler(answer: (err: NodeJS.ErrnoException) => ClientErrorAnswer) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    // Node's response under way on this socket, if any (no public accessor: http's own `_httpMessage`).
    const current = (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
    const close = (answerNow: boolean) => {
      if (socket.destroyed) return;
      if (answerNow && socket.writable) socket.write(rawAnswer(answer(err)));
      socket.end();
      setTimeout(() => socket.destroy(), lingerMs).unref();
    };
    if (current !== undefined && !current.writableFinished && current.req?.complete === true) {
      // The request before the refused bytes is whole and still being answered: that answer first.
      current.once("close", () => close(!lastExchange.has(socket)));
      return;
    }
    close(!lastExchange.has(socket) && current?.headersSent !== true);
  };
}
