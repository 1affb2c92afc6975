// Faults: the source registry (a real CNCF distribution holding the test bed release, and — as in the seed
// deployment — the cache and schematic repositories too) stopped in the middle of a first build and in the
// middle of a cached download, then started again on the same port with the same storage.
// Expected: requests that need it while it is down fail with a clear 502/503 naming the registry, a 503 with
// Retry-After (src/errors.ts retryAfterSeconds; upstream image-factory internal/frontend/http/http.go answers
// a generic 500 there, so this is stricter); a download cut mid-stream ends as a broken transfer, never as a
// complete answer with wrong bytes; once the registry is back the same requests answer 200 with the right
// bytes, and no corrupt cache entry was left behind.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { get } from "node:http";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { KeyFiles } from "../factory/config-fixtures.ts";
import { createSchematic } from "../factory/service-harness.ts";
import {
  type FactoryProcess,
  publishTestbedToDistribution,
  ResultRows,
  type SourceRegistry,
  seedProcessArgv,
  startFactoryProcess,
  until200,
} from "./harness.ts";

const version = "v1.10.3";
const rows = new ResultRows(import.meta.url);

async function sha256Of(url: string): Promise<{ status: number; sha: string; text: string; headers: Headers }> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    sha: createHash("sha256").update(body).digest("hex"),
    text: res.status === 200 ? "" : body.toString("utf8").slice(0, 600),
    headers: res.headers,
  };
}

/** Checks an error answer: 502 or 503, naming the registry, 503 with Retry-After. Returns what is wrong. */
function outageProblems(answer: { status: number; text: string; headers: Headers }, registry: string): string[] {
  const problems: string[] = [];
  if (answer.status !== 502 && answer.status !== 503) problems.push(`status ${answer.status}, not 502/503`);
  if (!answer.text.includes(registry)) problems.push(`the message does not name ${registry}: ${answer.text}`);
  if (answer.status === 503 && !/^\d+$/.test(answer.headers.get("retry-after") ?? ""))
    problems.push("503 without Retry-After");
  return problems;
}

describe("faults: the source registry stops and returns", { timeout: 600_000 }, () => {
  let source: SourceRegistry;
  let factory: FactoryProcess;
  let keys: KeyFiles;
  let base: string;
  let reference: string;
  let warmId: string;

  before(async () => {
    source = await publishTestbedToDistribution();
    const seed = await seedProcessArgv(source);
    keys = seed.keys;
    factory = await startFactoryProcess(seed.argv);
    base = factory.base;
    await until200(`${base}/readyz`);
    warmId = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - fault=warm\n");
    const warm = await sha256Of(`${base}/image/${warmId}/${version}/initramfs-amd64.xz`);
    assert.equal(warm.status, 200, warm.text);
    reference = warm.sha;
  });
  after(async () => {
    await factory?.stop();
    await source?.stop();
    await keys?.cleanup();
  });

  it("stopped mid-build: 502/503 naming the registry (503 with Retry-After), then recovery", async () => {
    const id = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - fault=mid-build\n");
    const url = `${base}/image/${id}/${version}/initramfs-amd64.xz`;
    const pending = sha256Of(url);
    await sleep(150);
    await source.halt();
    const during = await pending;
    const problems =
      during.status === 200
        ? ["the build finished before the registry stopped"]
        : outageProblems(during, source.registry);
    // While down, a first request for something not yet built fails the same way at once.
    const down = await sha256Of(`${base}/image/${id}/${version}/kernel-amd64`);
    problems.push(...outageProblems(down, source.registry).map((p) => `while down: ${p}`));
    await source.restart();
    const afterwards = await sha256Of(url);
    if (afterwards.status !== 200) problems.push(`after restart: ${afterwards.status} ${afterwards.text}`);
    // The right bytes: the same schematic's initramfs (it carries the schematic ID) from a second factory
    // that saw no fault, with its own data directory and cache repository.
    const control = await seedProcessArgv(source);
    const controlArgv = control.argv.map((arg, i) =>
      control.argv[i - 1] === "-cache-repository" ? `${source.registry}/cache-control` : arg,
    );
    const clean = await startFactoryProcess(controlArgv);
    let expected: string;
    try {
      await until200(`${clean.base}/readyz`);
      const built = await sha256Of(`${clean.base}/image/${id}/${version}/initramfs-amd64.xz`);
      assert.equal(built.status, 200, built.text);
      expected = built.sha;
    } finally {
      await clean.stop();
      await control.keys.cleanup();
    }
    if (afterwards.sha !== expected) problems.push("after restart: bytes differ from a clean factory's build");
    const again = await sha256Of(url);
    if (again.sha !== expected) problems.push("second request after restart: bytes differ");
    await rows.add({
      area: "faults",
      check: "source registry stopped mid-build, then restarted",
      tried: 1,
      failures: problems.length > 0 ? 1 : 0,
      detail:
        `during: ${during.status} (Retry-After ${during.headers.get("retry-after") ?? "none"}); while down: ${down.status} ` +
        `(Retry-After ${down.headers.get("retry-after") ?? "none"}) "${down.text.trim().slice(0, 160)}"; after restart: ${afterwards.status}, bytes ${afterwards.sha === expected ? "equal a clean factory's" : "differ"}` +
        (problems.length > 0 ? `; problems: ${problems.join("; ")}` : ""),
    });
    assert.deepEqual(problems, []);
  });

  it("stopped mid-download: a cut transfer, never wrong bytes; recovery when it returns", async () => {
    const url = `${base}/image/${warmId}/${version}/initramfs-amd64.xz`;
    // A slow reader: the first chunk, then the registry stops, then the rest is read.
    const outcome = await new Promise<{ status: number; complete: boolean; sha: string; error?: string }>((resolve) => {
      const hash = createHash("sha256");
      let bytes = 0;
      get(url, (res) => {
        const expected = Number(res.headers["content-length"] ?? -1);
        let halted = false;
        res.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (!halted) {
            halted = true;
            res.pause();
            source.halt().then(() => res.resume());
          }
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, complete: bytes === expected, sha: hash.digest("hex") }),
        );
        res.on("error", (err) =>
          resolve({ status: res.statusCode ?? 0, complete: false, sha: "", error: err.message }),
        );
      }).on("error", (err) => resolve({ status: 0, complete: false, sha: "", error: err.message }));
    });
    const problems: string[] = [];
    if (outcome.complete && outcome.sha !== reference) problems.push("a complete answer with wrong bytes");
    const down = await sha256Of(url);
    if (down.status === 200 && down.sha !== reference) problems.push("while down: 200 with wrong bytes");
    if (down.status !== 200) problems.push(...outageProblems(down, source.registry).map((p) => `while down: ${p}`));
    await source.restart();
    const afterwards = await sha256Of(url);
    if (afterwards.status !== 200 || afterwards.sha !== reference)
      problems.push(`after restart: ${afterwards.status}, bytes ${afterwards.sha === reference ? "right" : "wrong"}`);
    await rows.add({
      area: "faults",
      check: "source/cache registry stopped mid-download, then restarted",
      tried: 1,
      failures: problems.length > 0 ? 1 : 0,
      detail:
        `transfer in flight: ${outcome.status}, ${outcome.complete ? (outcome.sha === reference ? "completed with the right bytes" : "completed with WRONG bytes") : `cut (${outcome.error ?? "short body"})`}; ` +
        `new request while down: ${down.status}${down.status === 200 ? " (served from the local data directory)" : ` Retry-After ${down.headers.get("retry-after") ?? "none"}`}; after restart: ${afterwards.status}` +
        (problems.length > 0 ? `; problems: ${problems.join("; ")}` : ""),
    });
    assert.deepEqual(problems, []);
  });
});
