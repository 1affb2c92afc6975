// The serving benchmark's clients, in their own process so they share no event loop with either server:
// `concurrency` keep-alive connections, each downloading `url` `downloads` times one after the other, reading
// and discarding the body. Prints one JSON line: total bytes, wall time from the first request to the last
// byte, and each request's time to first body byte.
//
//   node bench/serving/clients.ts URL CONCURRENCY DOWNLOADS EXPECTED_SIZE

import { Agent, request } from "node:http";

export interface ClientsResult {
  bytes: number;
  seconds: number;
  /** Per request: ms from sending the request to the first body byte. */
  ttfbMs: number[];
}

function download(url: string, agent: Agent, expectedSize: number): Promise<{ bytes: number; ttfbMs: number }> {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    let ttfbMs = -1;
    let bytes = 0;
    const req = request(url, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url} answered ${res.statusCode}`));
        return;
      }
      res.on("data", (chunk: Buffer) => {
        if (ttfbMs < 0) ttfbMs = performance.now() - sent;
        bytes += chunk.length;
      });
      res.on("end", () => {
        if (bytes !== expectedSize) reject(new Error(`GET ${url}: ${bytes} bytes, expected ${expectedSize}`));
        else resolve({ bytes, ttfbMs });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const [url, concurrencyText, downloadsText, sizeText] = process.argv.slice(2);
  const concurrency = Number(concurrencyText);
  const downloads = Number(downloadsText);
  const expectedSize = Number(sizeText);
  if (url === undefined || !(concurrency > 0) || !(downloads > 0) || !(expectedSize > 0))
    throw new Error("usage: clients.ts URL CONCURRENCY DOWNLOADS EXPECTED_SIZE");
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const ttfbMs: number[] = [];
  let bytes = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < downloads; i++) {
        const one = await download(url, agent, expectedSize);
        bytes += one.bytes;
        ttfbMs.push(one.ttfbMs);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  const result: ClientsResult = { bytes, seconds, ttfbMs };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
