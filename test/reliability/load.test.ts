// Load: the factory (its own process, the seed command line on the test bed release in a CNCF distribution
// registry) under a mixed workload at a fixed rate for a bounded time, sent open-loop from another process
// on loopback (load-client.ts): schematic POSTs, version and extension catalog reads, cached asset
// downloads, a few first builds (fresh schematics), installer manifest pulls through the /v2 registry front.
// Goal: zero errors; throughput, p50/p99 recorded; the factory's RSS sampled every 500 ms must stay flat
// (the last third's mean within a generous bound of the first third's). Quick (CI): 10 req/s for 15 s;
// full (`npm run test:reliability`): 40 req/s for 180 s.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { KeyFiles } from "../factory/config-fixtures.ts";
import { createSchematic } from "../factory/service-harness.ts";
import {
  type FactoryProcess,
  fullMode,
  projectRoot,
  publishTestbedToDistribution,
  ResultRows,
  rssOf,
  type SourceRegistry,
  seedProcessArgv,
  startFactoryProcess,
  until200,
} from "./harness.ts";
import type { LoadOutcome, LoadPlan, LoadRequest } from "./load-client.ts";

const version = "v1.10.3";
const rate = fullMode ? 40 : 10;
const duration = fullMode ? 180 : 15;
const firstBuilds = fullMode ? 24 : 6;
const indexAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";
const rows = new ResultRows(import.meta.url);

function runLoadClient(plan: LoadPlan, dir: string): Promise<LoadOutcome> {
  return new Promise((resolve, reject) => {
    const planFile = join(dir, "plan.json");
    writeFile(planFile, JSON.stringify(plan)).then(() => {
      const child = spawn(process.execPath, [join(projectRoot, "test", "reliability", "load-client.ts"), planFile], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
      });
      child.stderr.on("data", (chunk: Buffer) => {
        err += chunk.toString("utf8");
      });
      child.on("close", (code) => {
        if (code === 0) resolve(JSON.parse(out) as LoadOutcome);
        else reject(new Error(`load client exited ${code}: ${err.slice(-2000)}`));
      });
    }, reject);
  });
}

describe("load: a mixed workload at a fixed rate from another process", { timeout: (duration + 240) * 1000 }, () => {
  let source: SourceRegistry;
  let factory: FactoryProcess;
  let keys: KeyFiles;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "reliability-load-"));
    source = await publishTestbedToDistribution();
    const seed = await seedProcessArgv(source);
    keys = seed.keys;
    factory = await startFactoryProcess(seed.argv);
    await until200(`${factory.base}/readyz`);
  });
  after(async () => {
    await factory?.stop();
    await source?.stop();
    await keys?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("holds the rate with zero errors and flat RSS", async () => {
    const base = factory.base;
    // Warm: one schematic with its kernel, initramfs and installer built and cached.
    const id = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - load=warm\n");
    for (const path of [`/image/${id}/${version}/kernel-amd64`, `/image/${id}/${version}/initramfs-amd64.xz`]) {
      const res = await fetch(`${base}${path}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, path);
    }
    const installer = await fetch(`${base}/v2/installer/${id}/manifests/${version}`, {
      headers: { Accept: indexAccept },
      redirect: "manual",
    });
    // The seed sets -installer-external-repository: once built, the manifest is 307-redirected there.
    assert.equal(installer.status, 307, await installer.text());
    // Fresh schematics for the first builds during the load.
    const fresh: string[] = [];
    for (let i = 0; i < firstBuilds; i++)
      fresh.push(await createSchematic(base, `customization:\n  extraKernelArgs:\n    - load.first=${i}\n`));

    const mix: LoadRequest[] = [];
    const cycle = 40;
    for (let i = 0; i < cycle; i++) {
      const slot = i % 10;
      if (slot === 0 || slot === 5)
        mix.push({
          kind: "schematic POST",
          method: "POST",
          path: "/schematics",
          headers: { "Content-Type": "application/yaml" },
          body: `customization:\n  extraKernelArgs:\n    - load.post=${i % 8}\n`,
          ok: [201],
        });
      else if (slot === 1) mix.push({ kind: "versions", method: "GET", path: "/versions", ok: [200] });
      else if (slot === 2 || slot === 7)
        mix.push({ kind: "extensions", method: "GET", path: `/version/${version}/extensions/official`, ok: [200] });
      else if (slot === 3 || slot === 8)
        mix.push({ kind: "cached kernel", method: "GET", path: `/image/${id}/${version}/kernel-amd64`, ok: [200] });
      else if (slot === 4)
        mix.push({
          kind: "cached initramfs",
          method: "GET",
          path: `/image/${id}/${version}/initramfs-amd64.xz`,
          ok: [200],
        });
      else if (slot === 6)
        mix.push({ kind: "cmdline", method: "GET", path: `/image/${id}/${version}/cmdline-metal-amd64`, ok: [200] });
      else
        mix.push({
          kind: "installer manifest",
          method: "GET",
          path: `/v2/installer/${id}/manifests/${version}`,
          headers: { Accept: indexAccept },
          ok: [307],
        });
    }
    // The first builds, spread over the run: request n·(total/firstBuilds) of the cycle-repeated plan.
    const total = rate * duration;
    const requests: LoadRequest[] = [];
    for (let i = 0; i < total; i++) requests.push(mix[i % cycle] as LoadRequest);
    fresh.forEach((freshId, n) => {
      requests[Math.floor(((n + 0.5) * total) / firstBuilds)] = {
        kind: "first build (kernel)",
        method: "GET",
        path: `/image/${freshId}/${version}/kernel-amd64`,
        ok: [200],
      };
    });

    const samples: number[] = [];
    const sampler = setInterval(() => {
      rssOf(factory.pid).then(
        (rss) => samples.push(rss),
        () => {},
      );
    }, 500);
    let outcome: LoadOutcome;
    try {
      outcome = await runLoadClient(
        { base, ratePerSecond: rate, durationSeconds: duration, requests, timeoutMs: 60_000 },
        dir,
      );
    } finally {
      clearInterval(sampler);
    }
    const third = Math.floor(samples.length / 3);
    const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / Math.max(1, list.length);
    const firstThird = mean(samples.slice(0, third));
    const lastThird = mean(samples.slice(-third));
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
    const kinds = Object.entries(outcome.byKind)
      .map(([name, kind]) => `${name} ${kind.sent} (p99 ${kind.p99Ms} ms)`)
      .join("; ");
    await rows.add({
      area: "load",
      check: `mixed workload, ${rate} req/s for ${duration} s, open loop from another process`,
      tried: outcome.sent,
      failures: outcome.errors,
      detail:
        `throughput ${outcome.throughput.toFixed(1)} req/s, p50 ${outcome.p50Ms} ms, p99 ${outcome.p99Ms} ms, ` +
        `max ${outcome.maxMs} ms; ${kinds}` +
        (outcome.errors > 0 ? `; errors: ${outcome.errorSamples.join(", ")}` : ""),
    });
    // Flat: the last third of the run within 1.5× + 64 MiB of the first third (a 2-core machine shared with
    // other work; a leak of even a few KiB a request over the full run's 7,200 requests would exceed it).
    const flat = lastThird <= firstThird * 1.5 + 64 * 2 ** 20;
    await rows.add({
      area: "load",
      check: "factory RSS flat under load (mean of last vs first third of the run)",
      tried: samples.length,
      failures: flat ? 0 : 1,
      detail: `first third ${mib(firstThird)} MiB, last third ${mib(lastThird)} MiB, max ${mib(Math.max(...samples))} MiB over ${samples.length} samples`,
    });
    assert.equal(outcome.errors, 0, outcome.errorSamples.join("\n"));
    assert.ok(outcome.throughput >= rate * 0.8, `throughput ${outcome.throughput} of ${rate} req/s`);
    assert.ok(flat, `RSS grew from ${mib(firstThird)} MiB to ${mib(lastThird)} MiB`);
  });
});
