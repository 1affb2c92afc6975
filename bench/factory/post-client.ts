// The schematic bench's client, in its own process: an open-loop load generator. Request i is due at
// start + i/rate whatever the answers before it did (no waiting for a reply: a slow server meets more
// requests at once, as it would in production); each latency runs from the time the request was *due* (or
// sent, when a timer fired early) to the end of its answer, so a send the client made late counts against the
// figure rather than hiding it.
// Sends more than 2 ms behind schedule are counted. Bodies alternate: even requests a schematic never sent
// before (a kernel argument naming the round and the request), odd ones one of four repeated schematics.
// Requests in the first `warmup` seconds are sent but not counted. Prints one JSON line (PostClientResult).
//
//   node bench/factory/post-client.ts URL RATE SECONDS WARMUP_SECONDS ROUND_TAG
import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

export interface PostClientResult {
  /** Counted requests (after the warm-up). */
  sent: number;
  /** Non-2xx answers or connection errors among them. */
  errors: number;
  firstError?: string;
  /** Sends more than 2 ms behind their schedule. */
  late: number;
  /** Per counted request: ms from its due time to the end of its answer. */
  latenciesMs: number[];
}

const lateMs = 2;
const repeated = [
  "customization:\n  extraKernelArgs:\n    - console=ttyS0\n",
  "customization:\n  extraKernelArgs:\n    - net.ifnames=0\n",
  "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/testbed-hello\n",
  "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/testbed-glibc\n      - siderolabs/testbed-hello\n",
];

function body(i: number, tag: string): string {
  if (i % 2 === 1) return repeated[(i >> 1) % repeated.length] as string;
  return `customization:\n  extraKernelArgs:\n    - bench.${tag}=${i}\n    - console=ttyS0\n`;
}

function post(url: string, agent: Agent, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", agent, headers: { "Content-Type": "application/yaml", "Content-Length": payload.length } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (text.length < 500) text += chunk;
        });
        res.on("end", () =>
          res.statusCode === 200 || res.statusCode === 201
            ? resolve()
            : reject(new Error(`POST ${url} answered ${res.statusCode}: ${text.trim().slice(0, 300)}`)),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function main(): Promise<void> {
  const [url, rateText, secondsText, warmupText, tag] = process.argv.slice(2);
  const rate = Number(rateText);
  const seconds = Number(secondsText);
  const warmup = Number(warmupText);
  if (url === undefined || tag === undefined || !(rate > 0) || !(seconds > 0) || !(warmup >= 0))
    throw new Error("usage: post-client.ts URL RATE SECONDS WARMUP_SECONDS ROUND_TAG");
  const agent = new Agent({ keepAlive: true });
  const total = Math.round((warmup + seconds) * rate);
  const counted = Math.round(warmup * rate);
  const result: PostClientResult = { sent: 0, errors: 0, late: 0, latenciesMs: [] };
  const inFlight: Promise<void>[] = [];
  const start = performance.now() + 50;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const counts = i >= counted;
    // A timer may fire up to a millisecond before `due` (Node's timers run on the loop's millisecond clock):
    // such a request is timed from its send, as the server could not answer it earlier.
    const sent = performance.now();
    const from = Math.min(due, sent);
    if (counts && sent - due > lateMs) result.late++;
    inFlight.push(
      post(url, agent, body(i, tag)).then(
        () => {
          if (counts) result.latenciesMs.push(performance.now() - from);
        },
        (err: Error) => {
          if (!counts) return;
          result.errors++;
          result.firstError ??= err.message;
        },
      ),
    );
    if (counts) result.sent++;
  }
  await Promise.all(inFlight);
  agent.destroy();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
