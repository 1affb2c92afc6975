// One HTTP exchange below any client library: a fresh TCP connection, whatever bytes `feed` writes, and every
// byte the server writes back until it closes. For what a client would refuse to send or to parse (garbage
// behind a request, stalled headers). A reset or broken pipe from the server is a close, not an error.

import { connect, type Socket } from "node:net";

export interface RawExchange {
  /** Everything the server wrote before closing. */
  bytes: Buffer;
  /** From the connection to the server's close. */
  ms: number;
}

/** Connects to `url`'s host and port, lets `feed` write, and collects the answer; 30 s idle is an error. */
export function rawExchange(url: string, feed: (socket: Socket) => void): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => feed(socket));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "ECONNRESET" && err.code !== "EPIPE") reject(err);
    });
    socket.setTimeout(30_000, () => socket.destroy(new Error(`${url}: the connection stayed idle 30 s`)));
    socket.on("close", () => resolve({ bytes: Buffer.concat(chunks), ms: Date.now() - started }));
  });
}
