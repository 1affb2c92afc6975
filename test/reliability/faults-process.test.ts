// Faults of the factory process and its clients, against the test bed release in a CNCF distribution:
// - kill -9 in the middle of a first build: the next start on the same data directory comes up (no stale
//   lock), serves the asset with the bytes a factory that saw no fault builds, and leaves no temp file or
//   scratch directory of the killed process (src/factory/assets/cache.ts ScratchSpace.clearAbandoned);
// - slow and disconnecting clients (downloads read a little then dropped, first builds asked for and
//   dropped, a request whose headers trickle in and stop, a schematic body cut short): afterwards no
//   request is in flight, the dropped build finished (once: later requests are cache hits), and the factory's open descriptors
//   (/proc/<pid>/fd: sockets, pipes, files) are back to what they were before.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createSchematic, metricSum } from "../factory/service-harness.ts";
import {
  descriptorKinds,
  type FactoryProcess,
  fullMode,
  listTree,
  openDescriptors,
  publishTestbedToDistribution,
  ResultRows,
  type SourceRegistry,
  seedProcessArgv,
  startFactoryProcess,
  tempLeftovers,
  until200,
} from "./harness.ts";

const version = "v1.10.3";
const rows = new ResultRows(import.meta.url);

async function download(url: string): Promise<{ status: number; sha: string; text: string }> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    sha: createHash("sha256").update(body).digest("hex"),
    text: res.status === 200 ? "" : body.toString("utf8").slice(0, 600),
  };
}

describe("faults: the factory killed, and clients that stall or leave", { timeout: 600_000 }, () => {
  let source: SourceRegistry;
  let work: string;

  before(async () => {
    source = await publishTestbedToDistribution();
    work = await mkdtemp(join(tmpdir(), "reliability-process-"));
  });
  after(async () => {
    await source?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("kill -9 mid-build: restart serves the right bytes, no stale lock, no orphaned temp files", async () => {
    const seed = await seedProcessArgv(source, join(work, "killed-data"));
    const env = { TMPDIR: join(work, "killed-tmp") };
    await rm(env.TMPDIR, { recursive: true, force: true });
    await mkdir(env.TMPDIR, { recursive: true });
    const problems: string[] = [];
    let first: FactoryProcess | undefined = await startFactoryProcess(seed.argv, { env });
    let second: FactoryProcess | undefined;
    try {
      await until200(`${first.base}/readyz`);
      const id = await createSchematic(first.base, "customization:\n  extraKernelArgs:\n    - fault=kill-9\n");
      // Quick: the initramfs (seconds to build); full: the ISO (longer, more to interrupt).
      const asset = fullMode ? "metal-amd64.iso" : "initramfs-amd64.xz";
      const url = (base: string) => `${base}/image/${id}/${version}/${asset}`;
      const pending = download(url(first.base)).catch((err: Error) => ({ status: 0, sha: "", text: err.message }));
      // Mid-build: once the build has written into its scratch space.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && tempLeftovers(await listTree(seed.dataDir)).length === 0) await sleep(100);
      const during = tempLeftovers(await listTree(seed.dataDir));
      const killedPid = first.pid;
      await first.kill9();
      first = undefined;
      await pending;
      const leftBehind = [...during, ...(await listTree(env.TMPDIR))];

      second = await startFactoryProcess(seed.argv, { env });
      await until200(`${second.base}/readyz`);
      const served = await download(url(second.base));
      if (served.status !== 200) problems.push(`after restart: ${served.status} ${served.text}`);
      // No leftovers of the killed process once the next one has started and built.
      const data = tempLeftovers(await listTree(seed.dataDir)).filter((path) => path.includes(`${killedPid}-`));
      const tmp = (await listTree(env.TMPDIR)).filter((path) => !path.includes("/"));
      const orphans = [...data, ...tmp];
      if (orphans.length > 0) problems.push(`orphaned temp files: ${orphans.slice(0, 5).join(", ")}`);

      // The right bytes: a factory that saw no fault (own data directory and cache repository).
      const control = await seedProcessArgv(source, join(work, "control-data"));
      const clean = await startFactoryProcess(
        control.argv.map((arg, i) =>
          control.argv[i - 1] === "-cache-repository" ? `${source.registry}/cache-kill` : arg,
        ),
      );
      try {
        await until200(`${clean.base}/readyz`);
        const expected = await download(url(clean.base));
        assert.equal(expected.status, 200, expected.text);
        if (expected.sha !== served.sha)
          problems.push(`the restarted factory's ${asset} differs from a clean factory's`);
      } finally {
        await clean.stop();
        await control.keys.cleanup();
      }
      await rows.add({
        area: "faults",
        check: `factory kill -9 mid-build (${asset}), restart on the same data directory`,
        tried: 1,
        failures: problems.length > 0 ? 1 : 0,
        detail:
          `killed with ${leftBehind.length} temp paths in flight; restart ${served.status}; ` +
          `leftovers of the killed process after restart: ${orphans.length}` +
          (problems.length > 0 ? `; problems: ${problems.join("; ")}` : `; ${asset} equals a clean factory's`),
      });
      assert.deepEqual(problems, []);
    } finally {
      await first?.kill9();
      await second?.stop();
      await seed.keys.cleanup();
    }
  });

  it("slow and disconnecting clients leak no builds, sockets or file handles", async () => {
    const seed = await seedProcessArgv(source, join(work, "clients-data"));
    const factory = await startFactoryProcess(seed.argv);
    try {
      const base = factory.base;
      await until200(`${base}/readyz`);
      const metrics = async () => (await fetch(factory.metricsUrl as string)).text();
      const id = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - fault=clients\n");
      const cached = `/image/${id}/${version}/initramfs-amd64.xz`;
      assert.equal((await download(`${base}${cached}`)).status, 200);
      await download(`${base}/versions`);
      await sleep(1000);
      const before = descriptorKinds(await openDescriptors(factory.pid));
      const builtBefore = metricSum(await metrics(), "image_factory_assets_built_total");
      const { hostname, port } = new URL(base);
      let tried = 0;

      // Downloads read a little, then dropped; and first builds asked for and dropped at once.
      const fresh: string[] = [];
      for (let i = 0; i < 3; i++)
        fresh.push(await createSchematic(base, `customization:\n  extraKernelArgs:\n    - fault=dropped-${i}\n`));
      const dropped = [
        ...Array.from({ length: 10 }, () => ({ path: cached, after: "first-chunk" as const })),
        ...fresh.map((freshId) => ({ path: `/image/${freshId}/${version}/kernel-amd64`, after: "sent" as const })),
      ];
      await Promise.all(
        dropped.map(
          ({ path, after: when }) =>
            new Promise<void>((resolve) => {
              tried++;
              const req = request({ host: hostname, port, path }, (res) => {
                res.once("data", () => {
                  res.pause();
                  setTimeout(() => req.destroy(), 300);
                });
                res.on("close", () => resolve());
              });
              req.on("error", () => resolve());
              req.end();
              if (when === "sent") setTimeout(() => req.destroy(), 100);
            }),
        ),
      );
      // A request whose headers trickle in, then stop; and a schematic body cut short.
      for (const raw of [
        "GET /versions HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        "POST /schematics HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\nContent-Length: 4096\r\n\r\ncustomization:\n",
      ]) {
        tried++;
        const socket = connect(Number(port), hostname);
        await new Promise((resolve) => socket.once("connect", resolve));
        for (const char of raw.slice(0, 40)) {
          socket.write(char);
          await sleep(10);
        }
        socket.write(raw.slice(40));
        await sleep(500);
        socket.destroy();
      }

      // Settle: the dropped first builds finish (once each), nothing stays in flight, descriptors return.
      let after = before;
      let inflight = Number.NaN;
      let built = builtBefore;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const text = await metrics();
        inflight = metricSum(text, "http_requests_inflight");
        built = metricSum(text, "image_factory_assets_built_total");
        after = descriptorKinds(await openDescriptors(factory.pid));
        const settled = (after.socket ?? 0) <= (before.socket ?? 0) && (after.file ?? 0) <= (before.file ?? 0);
        if (inflight === 0 && built > builtBefore && settled) break;
        await sleep(500);
      }
      const problems: string[] = [];
      if (inflight !== 0) problems.push(`${inflight} requests still in flight`);
      // The kernel does not depend on kernel arguments: the dropped first requests share one build
      // (single-flight, then a cache hit), which must have finished although its clients left.
      if (built === builtBefore) problems.push("the dropped first build never finished");
      for (const kind of ["socket", "pipe", "file", "anon_inode"])
        if ((after[kind] ?? 0) > (before[kind] ?? 0))
          problems.push(`${kind}s ${before[kind] ?? 0} → ${after[kind] ?? 0}`);
      // The dropped builds' results are cache hits now.
      for (const freshId of fresh) {
        const res = await download(`${base}/image/${freshId}/${version}/kernel-amd64`);
        if (res.status !== 200) problems.push(`dropped build ${freshId}: ${res.status}`);
      }
      if (metricSum(await metrics(), "image_factory_assets_built_total") !== built)
        problems.push("a dropped build was built again");
      await rows.add({
        area: "faults",
        check: "slow and disconnecting clients (dropped downloads and builds, stalled headers, cut bodies)",
        tried,
        failures: problems.length > 0 ? 1 : 0,
        detail:
          `descriptors before ${JSON.stringify(before)}, after ${JSON.stringify(after)}; in flight after: ${inflight}; ` +
          `builds for ${fresh.length} dropped first requests (one kernel, shared): ${built - builtBefore}, none again after` +
          (problems.length > 0 ? `; problems: ${problems.join("; ")}` : ""),
      });
      assert.deepEqual(problems, []);
    } finally {
      await factory.stop();
      await seed.keys.cleanup();
    }
  });
});
