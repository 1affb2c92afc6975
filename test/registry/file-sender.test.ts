// sendFileRange under many connections at once, some of which go away mid-body: every finished download has
// exactly the file's bytes, and every buffer a response held is given back whether its client stayed or not.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type ClientRequest, createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { heldSenderBuffers, sendFileRange } from "../../src/registry/file-sender.ts";

const size = 12 * 1024 * 1024 + 12_345; // several chunks and a short last one

describe("sendFileRange", () => {
  let dir: string;
  let file: string;
  let digest: string;
  let server: Server;
  let url: string;
  const finished: Promise<void>[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "file-sender-"));
    file = join(dir, "blob");
    const bytes = randomBytes(size);
    digest = createHash("sha256").update(bytes).digest("hex");
    await writeFile(file, bytes);
    server = createServer((req, res) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      const start = range ? Number(range[1]) : 0;
      const end = range ? Number(range[2]) : size - 1;
      res.writeHead(range ? 206 : 200, { "Content-Length": String(end - start + 1) });
      finished.push(sendFileRange(res, file, start, end));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Downloads the whole body (hashed) or, with `abortAfter`, goes away once that many bytes arrived. */
  function download(headers: Record<string, string>, abortAfter?: number): Promise<{ bytes: number; sha256: string }> {
    return new Promise((resolve, reject) => {
      const req: ClientRequest = request(url, { headers, agent: false }, (res) => {
        const hash = createHash("sha256");
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (abortAfter !== undefined && bytes >= abortAfter) {
            req.destroy();
            resolve({ bytes, sha256: "" });
          }
        });
        res.on("end", () => resolve({ bytes, sha256: hash.digest("hex") }));
        res.on("error", () => {}); // the aborted ones
      });
      req.on("error", (err) => (abortAfter === undefined ? reject(err) : undefined));
      req.end();
    });
  }

  it("40 connections at once, half of them gone mid-body: whole bodies intact, every buffer given back", async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => download({}, i % 2 === 1 ? 1024 * 1024 : undefined)),
    );
    for (const [i, result] of results.entries()) {
      if (i % 2 === 1) continue;
      assert.equal(result.bytes, size);
      assert.equal(result.sha256, digest);
    }
    await Promise.all(finished.splice(0));
    // The write callbacks of the destroyed sockets may land a tick after their loops ended.
    for (let i = 0; i < 50 && heldSenderBuffers() !== 0; i++) await sleep(20);
    assert.equal(heldSenderBuffers(), 0);
  });

  it("a byte range: exactly those bytes", async () => {
    const start = 1024 * 1024 - 7;
    const end = 3 * 1024 * 1024 + 11;
    const whole = createHash("sha256");
    whole.update((await readFile(file)).subarray(start, end + 1));
    const result = await download({ Range: `bytes=${start}-${end}` });
    assert.equal(result.bytes, end - start + 1);
    assert.equal(result.sha256, whole.digest("hex"));
    await Promise.all(finished.splice(0));
    assert.equal(heldSenderBuffers(), 0);
  });
});
