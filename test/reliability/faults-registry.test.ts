// Fault: the embedded registry (`boot-assets registry`, its own process) killed with SIGKILL in the middle
// of a blob upload and of a manifest push. What must hold after a restart on the same root: it starts (the
// dead process's lock is taken over, not a "locked by" refusal), the half-received upload is gone (its
// session and temp file: uploads do not survive a restart, as in distribution, whose upload state a client
// must restart), nothing half-written is visible (the blob of the cut upload is unknown, the manifest of a
// cut push is either absent or whole), what was complete before is served byte for byte, and the same
// upload done again succeeds. The store's write discipline is in src/registry/store.ts (temp file, fsync,
// rename, directory fsync; tmp/ emptied at open).

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { freePort } from "../harness/ports.ts";
import { type ServerProcess, startServerProcess, waitForHttp } from "../harness/process.ts";
import { projectRoot, ResultRows } from "./harness.ts";

const rows = new ResultRows(import.meta.url);
const mainScript = join(projectRoot, "src", "cli", "main.ts");
const sha256 = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

interface Registry {
  server: ServerProcess;
  base: string;
}

async function startRegistry(root: string, port: number): Promise<Registry> {
  const server = startServerProcess(process.execPath, [
    mainScript,
    "registry",
    "--root",
    root,
    "--listen",
    `127.0.0.1:${port}`,
    "--log-level",
    "warn",
  ]);
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(server, `${base}/v2/`, [200], "embedded registry", 60_000);
  return { server, base };
}

async function kill9(registry: Registry): Promise<void> {
  if (registry.server.exited() !== undefined) return;
  const gone = new Promise((resolve) => registry.server.child.once("exit", resolve));
  registry.server.child.kill("SIGKILL");
  await gone;
}

/** Starts an upload and sends `first` as a PATCH chunk; returns the session's Location. */
async function startChunkedUpload(base: string, repository: string, first: Uint8Array): Promise<string> {
  const started = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  assert.equal(started.status, 202);
  const location = new URL(started.headers.get("location") ?? "", base).toString();
  const patched = await fetch(location, {
    method: "PATCH",
    headers: {
      "content-type": "application/octet-stream",
      "content-range": `0-${first.length - 1}`,
      "content-length": String(first.length),
    },
    body: first,
  });
  assert.equal(patched.status, 202, await patched.text());
  return new URL(patched.headers.get("location") ?? location, base).toString();
}

async function pushBlob(base: string, repository: string, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const started = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  const location = new URL(started.headers.get("location") ?? "", base);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream", "content-length": String(data.length) },
    body: data,
  });
  assert.equal(put.status, 201, await put.text());
  return digest;
}

async function blob(base: string, repository: string, digest: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${base}/v2/${repository}/blobs/${digest}`);
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe("embedded registry killed with SIGKILL mid-upload and mid-push", { timeout: 300_000 }, () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  });

  test("restart serves what was complete, forgets the cut upload, leaves no temp files, and the upload redone succeeds", async () => {
    const root = await mkdtemp(join(tmpdir(), "reliability-registry-"));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const port = await freePort();
    let registry = await startRegistry(root, port);
    cleanup.push(() => registry.server.kill());

    // Complete before the fault: a 4 MiB blob, a config and a tagged manifest.
    const kept = randomBytes(4 * 1024 * 1024);
    const keptDigest = await pushBlob(registry.base, "app", kept);
    const config = Buffer.from("{}");
    const configDigest = await pushBlob(registry.base, "app", config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: keptDigest, size: kept.length }],
      }),
    );
    const tagged = await fetch(`${registry.base}/v2/app/manifests/v1`, {
      method: "PUT",
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      body: manifest,
    });
    assert.equal(tagged.status, 201);

    // The fault: half of a 16 MiB blob received, then SIGKILL while the session is open.
    const cut = randomBytes(16 * 1024 * 1024);
    const session = await startChunkedUpload(registry.base, "app", cut.subarray(0, 8 * 1024 * 1024));
    const tmpBefore = await readdir(join(root, "tmp"));
    assert.ok(tmpBefore.length > 0, "the upload in progress has its temp file");
    await kill9(registry);

    registry = await startRegistry(root, port);
    const problems: string[] = [];
    const left = await readdir(join(root, "tmp"));
    if (left.length > 0) problems.push(`temp files after restart: ${left.join(", ")}`);
    const resumed = await fetch(session);
    if (resumed.status !== 404)
      problems.push(`the cut session answered ${resumed.status}, not 404 (BLOB_UPLOAD_UNKNOWN)`);
    await resumed.arrayBuffer();
    const cutBlob = await blob(registry.base, "app", sha256(cut));
    if (cutBlob.status !== 404) problems.push(`the cut blob answered ${cutBlob.status}, not 404`);
    const keptBlob = await blob(registry.base, "app", keptDigest);
    if (keptBlob.status !== 200 || !keptBlob.bytes.equals(kept)) problems.push("the complete blob is not served whole");
    const manifestNow = await fetch(`${registry.base}/v2/app/manifests/v1`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    const manifestBytes = Buffer.from(await manifestNow.arrayBuffer());
    if (manifestNow.status !== 200 || !manifestBytes.equals(manifest)) problems.push("the tagged manifest changed");
    const redone = await pushBlob(registry.base, "app", cut);
    const redoneBlob = await blob(registry.base, "app", redone);
    if (!redoneBlob.bytes.equals(cut)) problems.push("the upload redone does not serve its bytes");

    await rows.add({
      area: "faults",
      check: "embedded registry kill -9 mid-upload (8 of 16 MiB received), restart on the same root",
      tried: 1,
      failures: problems.length === 0 ? 0 : 1,
      detail:
        problems.length === 0
          ? `restart took over the lock; temp files before ${tmpBefore.length}, after 0; cut session 404, cut blob 404; 4 MiB blob and tagged manifest byte for byte; the upload redone: 201`
          : problems.join("; "),
    });
    assert.deepEqual(problems, []);
  });

  test("SIGKILL while many manifests are being pushed leaves each tag absent or whole", async () => {
    const root = await mkdtemp(join(tmpdir(), "reliability-registry-"));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const port = await freePort();
    let registry = await startRegistry(root, port);
    cleanup.push(() => registry.server.kill());
    const config = Buffer.from("{}");
    const configDigest = await pushBlob(registry.base, "app", config);
    const manifests = Array.from({ length: 200 }, (_, i) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
          layers: [],
          annotations: { n: String(i) },
        }),
      ),
    );
    // Pushes in flight, eight at a time; the kill lands somewhere among them.
    let next = 0;
    const pushOne = async (): Promise<void> => {
      while (next < manifests.length) {
        const i = next++;
        await fetch(`${registry.base}/v2/app/manifests/t${i}`, {
          method: "PUT",
          headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
          body: manifests[i],
        })
          .then((res) => res.arrayBuffer())
          .catch(() => {});
      }
    };
    const pushing = Promise.all(Array.from({ length: 8 }, pushOne));
    while (next < 60) await new Promise((resolve) => setTimeout(resolve, 5));
    await kill9(registry);
    await pushing;

    registry = await startRegistry(root, port);
    let whole = 0;
    let absent = 0;
    const problems: string[] = [];
    for (const [i, manifest] of manifests.entries()) {
      const res = await fetch(`${registry.base}/v2/app/manifests/t${i}`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      if (res.status === 404) absent++;
      else if (res.status === 200 && bytes.equals(manifest)) whole++;
      else problems.push(`t${i}: ${res.status}, ${bytes.length} bytes`);
    }
    const left = await readdir(join(root, "tmp"));
    if (left.length > 0) problems.push(`temp files after restart: ${left.length}`);
    if (whole === 0) problems.push("no push completed before the kill (the fault landed too early to tell)");
    await rows.add({
      area: "faults",
      check: "embedded registry kill -9 during 8 concurrent manifest pushes, restart on the same root",
      tried: manifests.length,
      failures: problems.length,
      detail: `${whole} tags whole, ${absent} absent, ${problems.length} torn${problems.length > 0 ? `: ${problems.slice(0, 5).join("; ")}` : ""}; temp files after restart: ${left.length}`,
    });
    assert.deepEqual(problems, []);
  });
});
