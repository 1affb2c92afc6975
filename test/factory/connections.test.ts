// The factory's connections (issue 20, "Connections and shutdown"): a client that sends its headers or its
// body too slowly is answered 408 and cut off within the configured read timeouts; an oversized header block
// is a 431 and an overlong URL a 414, in the same plain-text error shape as every other answer; shutdown
// drains for at most -shutdown-timeout, then aborts the shutdown signal and closes a connection stalled
// mid-body. Each case checks a wall-clock bound, generous for a busy 2-core machine. The limits are in
// docs/limits.md; upstream's server (cmd/image-factory/cmd/service.go) drains for 5 s the same way.

import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { rawExchange as rawBytesExchange } from "../harness/raw-exchange.ts";
import { type FactoryUnderTest, type PublishedTestbed, publishTestbed, startSeedFactory } from "./service-harness.ts";

let testbed: PublishedTestbed;
before(async () => {
  testbed = await publishTestbed();
});
after(async () => {
  await testbed?.stop();
});

interface RawAnswer {
  /** Everything the server wrote before closing. */
  text: string;
  /** From the first byte written to the server's close. */
  ms: number;
}

/** A raw exchange (test/harness/raw-exchange.ts) with the answer as text. */
async function rawExchange(url: string, feed: (socket: Socket) => void): Promise<RawAnswer> {
  const { bytes, ms } = await rawBytesExchange(url, feed);
  return { text: bytes.toString("latin1"), ms };
}

/** Writes one byte every `everyMs` until the socket closes. */
function trickle(socket: Socket, everyMs: number): void {
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) clearInterval(timer);
    else socket.write("a");
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

function statusOf(answer: RawAnswer): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer.text)?.[1]);
}

function headerOf(answer: RawAnswer, name: string): string | undefined {
  const head = answer.text.split("\r\n\r\n", 1)[0] ?? "";
  const line = head.split("\r\n").find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

function bodyOf(answer: RawAnswer): string {
  return answer.text.slice(answer.text.indexOf("\r\n\r\n") + 4);
}

describe("factory connections", () => {
  let running: FactoryUnderTest;
  let base: string;
  before(async () => {
    running = await startSeedFactory(testbed, [
      "-http-read-header-timeout",
      "1s",
      "-http-read-timeout",
      "2s",
      "-shutdown-timeout",
      "1s",
    ]);
    base = running.factory.url;
  });
  after(async () => {
    await running?.stop();
  });

  it("bytes after a request marked Connection: close get no second answer (a DELETE body without Content-Length)", async () => {
    // Node's client sends a DELETE body without Content-Length: the server reads it as a next request,
    // which must not be answered after the first (the client's parser refused "Data after Connection: close").
    const answer = await rawExchange(base, (socket) => {
      socket.write("DELETE /image/%zz/v1.10.3/kernel-amd64 HTTP/1.1\r\nHost: factory\r\nConnection: close\r\n\r\nx");
    });
    assert.equal(answer.text.match(/HTTP\/1\.1 /g)?.length, 1, answer.text);
    assert.equal(statusOf(answer), 400, answer.text);
  });

  it("garbage pipelined behind a whole request: its answer whole first, then a 400, then the connection closes", async () => {
    // As Go's server does (net/http/server.go conn.serve reads the next request once the last answer is out).
    const answer = await rawExchange(base, (socket) => {
      socket.write("GET /versions HTTP/1.1\r\nHost: factory\r\n\r\n\u0001junk / HTTP/1.1\r\n\r\n");
    });
    const [first, second] = answer.text.split(/(?=HTTP\/1\.1 \d{3} )/);
    const firstAnswer: RawAnswer = { text: first ?? "", ms: answer.ms };
    assert.equal(statusOf(firstAnswer), 200, answer.text);
    const versions = JSON.parse(bodyOf(firstAnswer)) as string[];
    assert.ok(versions.includes("v1.10.3"), bodyOf(firstAnswer));
    assert.equal(Buffer.byteLength(bodyOf(firstAnswer)), Number(headerOf(firstAnswer, "Content-Length")));
    const secondAnswer: RawAnswer = { text: second ?? "", ms: answer.ms };
    assert.equal(statusOf(secondAnswer), 400, answer.text);
    assert.equal(bodyOf(secondAnswer), "malformed HTTP request\n");
    assert.equal(headerOf(secondAnswer, "Connection"), "close");
  });

  it("garbage behind a request marked Connection: close gets no answer; that request's answer goes out whole", async () => {
    const answer = await rawExchange(base, (socket) => {
      socket.write("GET /versions HTTP/1.1\r\nHost: factory\r\nConnection: close\r\n\r\n\u0001junk / HTTP/1.1\r\n\r\n");
    });
    assert.equal(answer.text.match(/HTTP\/1\.1 /g)?.length, 1, answer.text);
    assert.equal(statusOf(answer), 200, answer.text);
    assert.equal(Buffer.byteLength(bodyOf(answer)), Number(headerOf(answer, "Content-Length")));
  });

  it("a body sent one byte at a time is cut off with a 408 once the read timeout passes", async () => {
    const answer = await rawExchange(base, (socket) => {
      socket.write(
        "POST /schematics HTTP/1.1\r\nHost: factory\r\nContent-Type: application/yaml\r\nContent-Length: 1000\r\n\r\n",
      );
      trickle(socket, 300);
    });
    assert.equal(statusOf(answer), 408, answer.text);
    assert.equal(bodyOf(answer), "the request was not received within the request timeout\n");
    assert.equal(headerOf(answer, "Content-Type"), "text/plain; charset=utf-8");
    assert.equal(headerOf(answer, "Connection"), "close");
    // -http-read-timeout 2s, checked every 250 ms, and a second for the answer to go out
    assert.ok(answer.ms >= 1500, `cut off after ${answer.ms} ms, not before the timeout`);
    assert.ok(answer.ms < 6000, `the socket was closed after ${answer.ms} ms`);
  });

  it("headers sent one byte at a time are cut off with a 408 once the header timeout passes", async () => {
    const answer = await rawExchange(base, (socket) => {
      socket.write("GET /healthz HTTP/1.1\r\nHost: factory\r\nX-Slow: ");
      trickle(socket, 200);
    });
    assert.equal(statusOf(answer), 408, answer.text);
    assert.equal(bodyOf(answer), "the request was not received within the request timeout\n");
    assert.ok(answer.ms < 5000, `the socket was closed after ${answer.ms} ms`);
  });

  it("a header block over 16 KiB is a 431 in the app's error shape", async () => {
    const answer = await rawExchange(base, (socket) => {
      socket.write(`GET /healthz HTTP/1.1\r\nHost: factory\r\nX-Big: ${"b".repeat(20 * 1024)}\r\n\r\n`);
    });
    assert.equal(statusOf(answer), 431, answer.text);
    assert.equal(bodyOf(answer), "request headers are larger than 16384 bytes\n");
    assert.equal(headerOf(answer, "Content-Type"), "text/plain; charset=utf-8");
    assert.match(headerOf(answer, "Server") ?? "", /^boot-assets\//);
    assert.ok(answer.ms < 5000, `answered in ${answer.ms} ms`);
  });

  it("a URL over 8 KiB is a 414; one past the header limit is a 431", async () => {
    const long = await fetch(`${base}/healthz?${"a".repeat(9 * 1024)}`);
    assert.equal(long.status, 414);
    assert.equal(long.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await long.text(), "request URL is longer than 8192 bytes\n");
    // a path parameter over the router's 1024-byte limit: 414 in the same shape
    const segment = await fetch(`${base}/schematics/${"a".repeat(2 * 1024)}`);
    assert.equal(segment.status, 414);
    assert.equal(segment.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await segment.text(), "request URL has a path segment that is too long\n");
    const huge = await rawExchange(base, (socket) => {
      socket.write(`GET /${"a".repeat(20 * 1024)} HTTP/1.1\r\nHost: factory\r\n\r\n`);
    });
    assert.equal(statusOf(huge), 431, huge.text);
    // and the server still answers normally
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });
});

describe("factory shutdown", () => {
  it("drains for at most -shutdown-timeout, then aborts the shutdown signal and closes a stalled client", async () => {
    const running = await startSeedFactory(testbed, ["-shutdown-timeout", "1s", "-http-read-timeout", "5m"]);
    try {
      const { factory } = running;
      let requestArrived!: () => void;
      const arrived = new Promise<void>((resolve) => {
        requestArrived = resolve;
      });
      const stalled = rawExchange(factory.url, (socket) => {
        socket.write(
          "POST /schematics HTTP/1.1\r\nHost: factory\r\nContent-Type: application/yaml\r\nContent-Length: 1000\r\n\r\ncustom",
          () => setTimeout(requestArrived, 300),
        );
      });
      await arrived;
      assert.equal(factory.shutdownSignal.aborted, false);
      const started = Date.now();
      await factory.close();
      const closeMs = Date.now() - started;
      const answer = await stalled;
      assert.ok(closeMs >= 900, `shutdown waited ${closeMs} ms for the request in flight`);
      assert.ok(closeMs < 5000, `shutdown took ${closeMs} ms (-shutdown-timeout 1s)`);
      assert.equal(factory.shutdownSignal.aborted, true, "work started for requests is told to stop");
      assert.ok(answer.ms < 6000, `the stalled connection was closed after ${answer.ms} ms`);
      // nothing listens any more
      await assert.rejects(fetch(`${factory.url}/healthz`));
    } finally {
      await running.stop();
    }
  });

  it("an idle keep-alive connection does not hold shutdown", async () => {
    const running = await startSeedFactory(testbed, ["-shutdown-timeout", "30s"]);
    try {
      const { factory } = running;
      const idle = rawExchange(factory.url, (socket) => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: factory\r\n\r\n");
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      await factory.close();
      const closeMs = Date.now() - started;
      assert.ok(closeMs < 5000, `shutdown took ${closeMs} ms with only an idle connection open`);
      const answer = await idle;
      assert.equal(statusOf(answer), 200);
    } finally {
      await running.stop();
    }
  });
});
