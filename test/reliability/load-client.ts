// The load generator of load.test.ts, run as its own process so that the factory and its clients do not
// share an event loop: an open-loop schedule (request i starts at start + i / rate, whether or not earlier
// ones have answered), each request drawn from a weighted mix, every body read to its end. Latency is
// measured from the scheduled start, so a factory that falls behind shows it (no coordinated omission).
// Input: the path of a JSON file (LoadPlan). Output: one JSON line on stdout (LoadOutcome).

import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

export interface LoadRequest {
  kind: string;
  method: "GET" | "POST" | "HEAD";
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Statuses that count as success. */
  ok: number[];
}

export interface LoadPlan {
  base: string;
  ratePerSecond: number;
  durationSeconds: number;
  /** The requests, in the order they are sent (the test draws the mix). */
  requests: LoadRequest[];
  /** A request still unanswered after this long counts as an error. */
  timeoutMs: number;
}

export interface KindOutcome {
  sent: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  bytes: number;
}

export interface LoadOutcome {
  sent: number;
  errors: number;
  /** Up to 10 error descriptions. */
  errorSamples: string[];
  elapsedSeconds: number;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  byKind: Record<string, KindOutcome>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function send(plan: LoadPlan, request: LoadRequest): Promise<{ bytes: number; error?: string }> {
  const signal = AbortSignal.timeout(plan.timeoutMs);
  try {
    const res = await fetch(`${plan.base}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal,
      redirect: "manual",
    });
    let bytes = 0;
    if (res.body) for await (const chunk of res.body) bytes += (chunk as Uint8Array).byteLength;
    if (!request.ok.includes(res.status)) return { bytes, error: `${request.kind} ${request.path}: ${res.status}` };
    return { bytes };
  } catch (err) {
    return { bytes: 0, error: `${request.kind} ${request.path}: ${(err as Error).message}` };
  }
}

async function run(plan: LoadPlan): Promise<LoadOutcome> {
  const total = Math.round(plan.ratePerSecond * plan.durationSeconds);
  const latencies = new Map<string, number[]>();
  const kinds = new Map<string, KindOutcome>();
  const errorSamples: string[] = [];
  let errors = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const request = plan.requests[i % plan.requests.length] as LoadRequest;
    const scheduled = start + (i * 1000) / plan.ratePerSecond;
    const wait = scheduled - performance.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(
      send(plan, request).then(({ bytes, error }) => {
        const took = performance.now() - scheduled;
        const kind = kinds.get(request.kind) ?? { sent: 0, errors: 0, p50Ms: 0, p99Ms: 0, bytes: 0 };
        kind.sent++;
        kind.bytes += bytes;
        if (error !== undefined) {
          kind.errors++;
          errors++;
          if (errorSamples.length < 10) errorSamples.push(error);
        }
        kinds.set(request.kind, kind);
        const list = latencies.get(request.kind) ?? [];
        list.push(took);
        latencies.set(request.kind, list);
      }),
    );
  }
  await Promise.all(inFlight);
  const elapsedSeconds = (performance.now() - start) / 1000;
  const all = [...latencies.values()].flat().sort((a, b) => a - b);
  for (const [name, list] of latencies) {
    list.sort((a, b) => a - b);
    const kind = kinds.get(name) as KindOutcome;
    kind.p50Ms = Math.round(percentile(list, 50));
    kind.p99Ms = Math.round(percentile(list, 99));
  }
  return {
    sent: total,
    errors,
    errorSamples,
    elapsedSeconds,
    throughput: total / elapsedSeconds,
    p50Ms: Math.round(percentile(all, 50)),
    p99Ms: Math.round(percentile(all, 99)),
    maxMs: Math.round(all.at(-1) ?? 0),
    byKind: Object.fromEntries(kinds),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const plan = JSON.parse(await readFile(process.argv[2] as string, "utf8")) as LoadPlan;
  process.stdout.write(`${JSON.stringify(await run(plan))}\n`);
}
