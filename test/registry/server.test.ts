// The embedded registry's HTTP face, driven by raw HTTP (fetch and hand-written requests on a socket): a client
// neither side wrote. Errors are checked for the spec's status and code, and the store on disk for damage.

import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import {
  assertStoreConsistent,
  descriptor,
  imageIndex,
  ociIndex,
  ociManifest,
  type TestBlob,
  testBlob,
  testImage,
} from "./fixtures.ts";

let registry: RunningRegistry;
before(async () => {
  registry = await startEmbeddedRegistry();
});
after(() => registry.stop());

const url = (path: string) => `${registry.url}${path}`;

async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}`);
  assert.equal(await errorCode(res), code);
}

/** A request through node:http, which (unlike fetch) sends the path exactly as written, `..` included. */
function rawGet(path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(registry.url);
    // Options rather than a URL string: a URL would have its dot segments resolved before sending.
    const req = httpRequest({ host: hostname, port: Number(port), path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Sends a request head promising `declaredLength` bytes, then only `partial`, then kills the connection. */
async function sendPartialThenKill(
  method: string,
  path: string,
  headers: Record<string, string>,
  declaredLength: number,
  partial: Buffer,
) {
  const { hostname, port } = new URL(registry.url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const head = [`${method} ${path} HTTP/1.1`, `Host: ${registry.host}`, `Content-Length: ${declaredLength}`];
  for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
  socket.write(`${head.join("\r\n")}\r\n\r\n`);
  socket.write(partial);
  await sleep(100);
  socket.destroy();
}

async function pushBlob(repo: string, blob: TestBlob): Promise<Response> {
  return fetch(url(`/v2/${repo}/blobs/uploads/?digest=${blob.digest}`), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: blob.data,
  });
}

async function pushManifest(repo: string, reference: string, manifest: TestBlob, mediaType = ociManifest) {
  return fetch(url(`/v2/${repo}/manifests/${reference}`), {
    method: "PUT",
    headers: { "Content-Type": mediaType },
    body: manifest.data,
  });
}

async function pushImage(repo: string, tag: string, image: ReturnType<typeof testImage>) {
  for (const blob of [image.config, image.layer]) assert.equal((await pushBlob(repo, blob)).status, 201);
  const res = await pushManifest(repo, tag, image.manifest);
  assert.equal(res.status, 201, await res.text());
}

async function tmpEntries(): Promise<string[]> {
  return readdir(join(registry.root, "tmp"));
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await condition()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("embedded registry over HTTP: protocol", () => {
  test("GET /v2/ answers 200 {} with the API version header", async () => {
    const res = await fetch(url("/v2/"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.deepEqual(await res.json(), {});
  });

  test("monolithic push, pull by tag and digest, HEAD, Range", async () => {
    const repo = "proto/mono";
    const image = testImage("amd64", "mono");
    const blobRes = await pushBlob(repo, image.layer);
    assert.equal(blobRes.status, 201);
    assert.equal(blobRes.headers.get("location"), `/v2/${repo}/blobs/${image.layer.digest}`);
    assert.equal(blobRes.headers.get("docker-content-digest"), image.layer.digest);
    assert.equal((await pushBlob(repo, image.config)).status, 201);
    const put = await pushManifest(repo, "v1", image.manifest);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("docker-content-digest"), image.manifest.digest);
    assert.equal(put.headers.get("location"), `/v2/${repo}/manifests/${image.manifest.digest}`);

    for (const reference of ["v1", image.manifest.digest]) {
      const res = await fetch(url(`/v2/${repo}/manifests/${reference}`), { headers: { Accept: ociManifest } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), ociManifest);
      assert.equal(res.headers.get("docker-content-digest"), image.manifest.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
    }
    const head = await fetch(url(`/v2/${repo}/manifests/v1`), { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(image.manifest.size));
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest);

    const blob = await fetch(url(`/v2/${repo}/blobs/${image.layer.digest}`));
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get("content-length"), String(image.layer.size));
    assert.equal(blob.headers.get("docker-content-digest"), image.layer.digest);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), image.layer.data);
    const blobHead = await fetch(url(`/v2/${repo}/blobs/${image.layer.digest}`), { method: "HEAD" });
    assert.equal(blobHead.headers.get("content-length"), String(image.layer.size));
    const ranged = await fetch(url(`/v2/${repo}/blobs/${image.layer.digest}`), { headers: { Range: "bytes=5-14" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 5-14/${image.layer.size}`);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), image.layer.data.subarray(5, 15));
  });

  test("chunked upload with PATCH and Content-Range; out-of-order chunk gets 416; status reports the range", async () => {
    const repo = "proto/chunked";
    const blob = testBlob(Buffer.alloc(300_000, 42));
    const start = await fetch(url(`/v2/${repo}/blobs/uploads/`), { method: "POST" });
    assert.equal(start.status, 202);
    const location = start.headers.get("location") ?? "";
    assert.ok(location.startsWith(`/v2/${repo}/blobs/uploads/`));
    const first = await fetch(url(location), {
      method: "PATCH",
      headers: { "Content-Range": "0-99999", "Content-Type": "application/octet-stream" },
      body: blob.data.subarray(0, 100_000),
    });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get("range"), "0-99999");
    const next = first.headers.get("location") ?? location;

    const outOfOrder = await fetch(url(next), {
      method: "PATCH",
      headers: { "Content-Range": "200000-299999" },
      body: blob.data.subarray(200_000),
    });
    assert.equal(outOfOrder.status, 416);

    const second = await fetch(url(next), {
      method: "PATCH",
      headers: { "Content-Range": "100000-299999" },
      body: blob.data.subarray(100_000),
    });
    assert.equal(second.status, 202);
    const status = await fetch(url(next));
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-299999");

    const done = await fetch(url(`${next}?digest=${blob.digest}`), { method: "PUT" });
    assert.equal(done.status, 201);
    assert.equal(done.headers.get("docker-content-digest"), blob.digest);
    const got = await fetch(url(`/v2/${repo}/blobs/${blob.digest}`));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
    // The finished session is gone.
    await expectError(await fetch(url(next)), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  test("cross-repository mount: 201 when the source has the blob, 202 upload session when not", async () => {
    const blob = testBlob("mount me");
    assert.equal((await pushBlob("proto/source", blob)).status, 201);
    const mounted = await fetch(url(`/v2/proto/target/blobs/uploads/?mount=${blob.digest}&from=proto/source`), {
      method: "POST",
    });
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.get("docker-content-digest"), blob.digest);
    assert.equal((await fetch(url(`/v2/proto/target/blobs/${blob.digest}`), { method: "HEAD" })).status, 200);

    const other = testBlob("not in the source");
    const fallback = await fetch(url(`/v2/proto/target2/blobs/uploads/?mount=${other.digest}&from=proto/source`), {
      method: "POST",
    });
    assert.equal(fallback.status, 202);
    const location = fallback.headers.get("location");
    assert.ok(location);
    assert.equal((await fetch(url(location), { method: "DELETE" })).status, 204);
  });

  test("tag list paginates with n, last and a Link header", async () => {
    const repo = "proto/tags";
    const image = testImage("amd64", "tags");
    await pushImage(repo, "e", image);
    for (const tag of ["c", "a", "d", "b"]) assert.equal((await pushManifest(repo, tag, image.manifest)).status, 201);
    const seen: string[] = [];
    let next: string | undefined = `/v2/${repo}/tags/list?n=2`;
    let pages = 0;
    while (next) {
      const res = await fetch(url(next));
      assert.equal(res.status, 200);
      const body = (await res.json()) as { name: string; tags: string[] };
      assert.equal(body.name, repo);
      assert.ok(body.tags.length <= 2);
      seen.push(...body.tags);
      pages++;
      next = /^<([^>]+)>;\s*rel="next"$/.exec(res.headers.get("link") ?? "")?.[1];
    }
    assert.deepEqual(seen, ["a", "b", "c", "d", "e"]);
    assert.equal(pages, 3);
    const all = (await (await fetch(url(`/v2/${repo}/tags/list`))).json()) as { tags: string[] };
    assert.deepEqual(all.tags, ["a", "b", "c", "d", "e"]);
  });

  test("multi-arch index, referrers with artifactType filter, delete", async () => {
    const repo = "proto/multi";
    const amd = testImage("amd64", "multi");
    const arm = testImage("arm64", "multi");
    await pushImage(repo, "amd", amd);
    await pushImage(repo, "arm", arm);
    const index = imageIndex([
      { manifest: amd.manifest, architecture: "amd64" },
      { manifest: arm.manifest, architecture: "arm64" },
    ]);
    const put = await pushManifest(repo, "v1", index, ociIndex);
    assert.equal(put.status, 201);
    const got = await fetch(url(`/v2/${repo}/manifests/v1`));
    assert.equal(got.headers.get("content-type"), ociIndex);
    assert.equal(got.headers.get("docker-content-digest"), index.digest);

    const empty = testBlob("{}");
    assert.equal((await pushBlob(repo, empty)).status, 201);
    const signature = testBlob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: ociManifest,
        artifactType: "application/example.signature",
        config: descriptor("application/vnd.oci.empty.v1+json", empty),
        layers: [],
        subject: descriptor(ociIndex, index),
      }),
    );
    const sigPut = await pushManifest(repo, signature.digest, signature);
    assert.equal(sigPut.status, 201);
    assert.equal(sigPut.headers.get("oci-subject"), index.digest);

    const referrers = await fetch(url(`/v2/${repo}/referrers/${index.digest}`));
    assert.equal(referrers.status, 200);
    assert.equal(referrers.headers.get("content-type"), ociIndex);
    const list = (await referrers.json()) as { manifests: { digest: string; artifactType: string }[] };
    assert.deepEqual(
      list.manifests.map((m) => [m.digest, m.artifactType]),
      [[signature.digest, "application/example.signature"]],
    );
    const filtered = await fetch(url(`/v2/${repo}/referrers/${index.digest}?artifactType=application/other`));
    assert.equal(filtered.headers.get("oci-filters-applied"), "artifactType");
    assert.deepEqual(((await filtered.json()) as { manifests: unknown[] }).manifests, []);

    assert.equal((await fetch(url(`/v2/${repo}/manifests/${signature.digest}`), { method: "DELETE" })).status, 202);
    const after = (await (await fetch(url(`/v2/${repo}/referrers/${index.digest}`))).json()) as {
      manifests: unknown[];
    };
    assert.deepEqual(after.manifests, []);

    assert.equal((await fetch(url(`/v2/${repo}/manifests/v1`), { method: "DELETE" })).status, 202);
    await expectError(await fetch(url(`/v2/${repo}/manifests/v1`)), 404, "MANIFEST_UNKNOWN");
    // The index is still there by digest: only the tag went.
    assert.equal((await fetch(url(`/v2/${repo}/manifests/${index.digest}`))).status, 200);
    assert.equal((await fetch(url(`/v2/${repo}/manifests/${index.digest}`), { method: "DELETE" })).status, 202);
    await expectError(await fetch(url(`/v2/${repo}/manifests/${index.digest}`)), 404, "MANIFEST_UNKNOWN");
    assert.equal((await fetch(url(`/v2/${repo}/blobs/${amd.layer.digest}`), { method: "DELETE" })).status, 202);
    await expectError(await fetch(url(`/v2/${repo}/blobs/${amd.layer.digest}`)), 404, "BLOB_UNKNOWN");
  });

  test("unknown things and unsupported methods", async () => {
    const missing = testBlob("never pushed");
    await expectError(await fetch(url(`/v2/proto/none/blobs/${missing.digest}`)), 404, "BLOB_UNKNOWN");
    await expectError(await fetch(url("/v2/proto/none/manifests/latest")), 404, "MANIFEST_UNKNOWN");
    await expectError(await fetch(url("/v2/proto/none/tags/list")), 404, "NAME_UNKNOWN");
    await expectError(
      await fetch(url("/v2/proto/none/blobs/uploads/00000000-0000-0000-0000-000000000000")),
      404,
      "BLOB_UPLOAD_UNKNOWN",
    );
    await expectError(await fetch(url("/v2/proto/none/tags/list"), { method: "DELETE" }), 405, "UNSUPPORTED");
  });
});

describe("embedded registry over HTTP: bad input", () => {
  test("repository names with '..', uppercase or over-long are NAME_INVALID", async () => {
    for (const path of [
      "/v2/a/../b/tags/list",
      "/v2/a/%2e%2e/b/tags/list",
      "/v2/Upper/Case/tags/list",
      `/v2/${"abcdefgh/".repeat(40)}x/tags/list`,
      `/v2/${"a".repeat(3000)}/tags/list`,
    ]) {
      const res = await rawGet(path);
      assert.equal(res.status, 400, `${path.slice(0, 60)}: ${res.body}`);
      assert.equal(JSON.parse(res.body).errors[0].code, "NAME_INVALID", path.slice(0, 60));
    }
    const blob = testBlob("x");
    const res = await fetch(url(`/v2/Bad/blobs/uploads/?digest=${blob.digest}`), { method: "POST", body: blob.data });
    await expectError(res, 400, "NAME_INVALID");
  });

  test("malformed digests are DIGEST_INVALID", async () => {
    await expectError(await fetch(url("/v2/bad/digest/blobs/sha256:xyz")), 400, "DIGEST_INVALID");
    await expectError(await fetch(url("/v2/bad/digest/manifests/sha256:1234")), 400, "DIGEST_INVALID");
    await expectError(await fetch(url("/v2/bad/digest/referrers/md5:abc")), 400, "DIGEST_INVALID");
    await expectError(
      await fetch(url("/v2/bad/digest/blobs/uploads/?digest=sha256:short"), { method: "POST", body: "abc" }),
      400,
      "DIGEST_INVALID",
    );
    const start = await fetch(url("/v2/bad/digest/blobs/uploads/"), { method: "POST" });
    const location = start.headers.get("location") ?? "";
    await expectError(await fetch(url(location), { method: "PUT", body: "abc" }), 400, "DIGEST_INVALID");
    await fetch(url(location), { method: "DELETE" });
    await expectError(
      await fetch(url("/v2/bad/digest/manifests/bad*tag"), { method: "PUT", body: "{}" }),
      400,
      "TAG_INVALID",
    );
  });

  test("a blob whose content does not match its digest is DIGEST_INVALID and never visible", async () => {
    const before = await assertStoreConsistent(registry.root, { allowTemp: true });
    const claimed = testBlob("what the client says it sends");
    const res = await fetch(url(`/v2/bad/mismatch/blobs/uploads/?digest=${claimed.digest}`), {
      method: "POST",
      body: "something else entirely",
    });
    await expectError(res, 400, "DIGEST_INVALID");
    await expectError(await fetch(url(`/v2/bad/mismatch/blobs/${claimed.digest}`)), 404, "BLOB_UNKNOWN");

    // The chunked path too: the session is cancelled, as distribution does.
    const start = await fetch(url("/v2/bad/mismatch/blobs/uploads/"), { method: "POST" });
    const location = start.headers.get("location") ?? "";
    assert.equal((await fetch(url(location), { method: "PATCH", body: "wrong bytes" })).status, 202);
    await expectError(
      await fetch(url(`${location}?digest=${claimed.digest}`), { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    await expectError(await fetch(url(location)), 404, "BLOB_UPLOAD_UNKNOWN");

    const afterBlobs = await assertStoreConsistent(registry.root, { allowTemp: true });
    assert.deepEqual(afterBlobs, before, "no blob file was added");
  });

  test("a manifest over 4 MiB is refused (413 MANIFEST_INVALID), with or without Content-Length", async () => {
    const repo = "bad/huge";
    const huge = Buffer.alloc(4 * 1024 * 1024 + 10, 0x20);
    const withLength = await fetch(url(`/v2/${repo}/manifests/v1`), {
      method: "PUT",
      headers: { "Content-Type": ociManifest },
      body: huge,
    });
    await expectError(withLength, 413, "MANIFEST_INVALID");

    const chunks = [huge.subarray(0, 3 * 1024 * 1024), huge.subarray(3 * 1024 * 1024)];
    const streamed = await fetch(url(`/v2/${repo}/manifests/v1`), {
      method: "PUT",
      headers: { "Content-Type": ociManifest },
      body: new ReadableStream({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk) controller.enqueue(chunk);
          else controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    await expectError(streamed, 413, "MANIFEST_INVALID");
    await expectError(await fetch(url(`/v2/${repo}/manifests/v1`)), 404, "MANIFEST_UNKNOWN");
    // The connection is still usable afterwards.
    assert.equal((await fetch(url("/v2/"))).status, 200);
  });

  test("invalid manifests: not JSON, and referencing missing blobs (MANIFEST_BLOB_UNKNOWN)", async () => {
    const repo = "bad/refs";
    await expectError(await pushManifest(repo, "v1", testBlob("not json")), 400, "MANIFEST_INVALID");
    const image = testImage("amd64", "refs");
    assert.equal((await pushBlob(repo, image.config)).status, 201);
    const res = await pushManifest(repo, "v1", image.manifest);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, "MANIFEST_BLOB_UNKNOWN");
    assert.ok(body.errors[0]?.message.includes(image.layer.digest));
    const index = imageIndex([{ manifest: image.manifest, architecture: "amd64" }]);
    await expectError(await pushManifest(repo, "v1", index, ociIndex), 400, "MANIFEST_BLOB_UNKNOWN");
    await expectError(await fetch(url(`/v2/${repo}/manifests/v1`)), 404, "MANIFEST_UNKNOWN");
  });

  test("a monolithic upload killed half way leaves no blob and no temp file; a later push works", async () => {
    const repo = "bad/killed";
    const blob = testBlob(Buffer.alloc(2 * 1024 * 1024, 9));
    await sendPartialThenKill(
      "POST",
      `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`,
      { "Content-Type": "application/octet-stream" },
      blob.size,
      blob.data.subarray(0, 700_000),
    );
    await waitFor(async () => (await tmpEntries()).length === 0, "the aborted upload's temp file to go");
    await expectError(await fetch(url(`/v2/${repo}/blobs/${blob.digest}`)), 404, "BLOB_UNKNOWN");
    await assertStoreConsistent(registry.root);
    assert.equal((await pushBlob(repo, blob)).status, 201);
    const got = await fetch(url(`/v2/${repo}/blobs/${blob.digest}`));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
  });

  test("a PATCH killed half way is undone: the session resumes from the last whole chunk", async () => {
    const repo = "bad/killed-patch";
    const blob = testBlob(Buffer.from(Array.from({ length: 1_200_000 }, (_, i) => i % 251)));
    const start = await fetch(url(`/v2/${repo}/blobs/uploads/`), { method: "POST" });
    const location = start.headers.get("location") ?? "";
    const first = await fetch(url(location), {
      method: "PATCH",
      headers: { "Content-Range": "0-199999" },
      body: blob.data.subarray(0, 200_000),
    });
    assert.equal(first.status, 202);
    await sendPartialThenKill(
      "PATCH",
      location,
      { "Content-Range": `200000-${blob.size - 1}` },
      blob.size - 200_000,
      blob.data.subarray(200_000, 600_000),
    );
    // Once the server has seen the abort, the session is back at 200000 bytes and takes the chunk again.
    let resumed: Response | undefined;
    await waitFor(async () => {
      const status = await fetch(url(location));
      if (status.headers.get("range") !== "0-199999") return false;
      resumed = await fetch(url(location), {
        method: "PATCH",
        headers: { "Content-Range": `200000-${blob.size - 1}` },
        body: blob.data.subarray(200_000),
      });
      return resumed.status === 202;
    }, "the killed chunk to be undone");
    assert.equal(resumed?.status, 202);
    await expectError(await fetch(url(`/v2/${repo}/blobs/${blob.digest}`)), 404, "BLOB_UNKNOWN");
    const done = await fetch(url(`${location}?digest=${blob.digest}`), { method: "PUT" });
    assert.equal(done.status, 201);
    const got = await fetch(url(`/v2/${repo}/blobs/${blob.digest}`));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
  });

  test("a final PUT killed half way leaves the blob invisible and the store consistent", async () => {
    const repo = "bad/killed-put";
    const blob = testBlob(Buffer.alloc(1024 * 1024, 3));
    const start = await fetch(url(`/v2/${repo}/blobs/uploads/`), { method: "POST" });
    const location = start.headers.get("location") ?? "";
    await sendPartialThenKill(
      `PUT`,
      `${location}?digest=${blob.digest}`,
      {},
      blob.size,
      blob.data.subarray(0, 300_000),
    );
    await waitFor(
      async () => (await fetch(url(location))).headers.get("range") === "0-0",
      "the killed PUT to be undone",
    );
    await expectError(await fetch(url(`/v2/${repo}/blobs/${blob.digest}`)), 404, "BLOB_UNKNOWN");
    await assertStoreConsistent(registry.root, { allowTemp: true });
    assert.equal(
      (await fetch(url(`${location}?digest=${blob.digest}`), { method: "PUT", body: blob.data })).status,
      201,
    );
    assert.equal((await fetch(url(`/v2/${repo}/blobs/${blob.digest}`), { method: "HEAD" })).status, 200);
  });

  test("8 concurrent pushes of the same blob all succeed; one file with the right content", async () => {
    const blob = testBlob(Buffer.alloc(4 * 1024 * 1024, 0x5a));
    const existing = await assertStoreConsistent(registry.root, { allowTemp: true });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pushBlob(`bad/concurrent${i % 3}`, blob)));
    for (const res of results) assert.equal(res.status, 201);
    const blobs = await assertStoreConsistent(registry.root, { allowTemp: true });
    assert.deepEqual(blobs, [...existing, blob.digest].sort());
    const file = join(registry.root, "blobs", "sha256", blob.digest.slice(7));
    assert.equal((await stat(file)).size, blob.size);
    for (let i = 0; i < 3; i++) {
      const got = await fetch(url(`/v2/bad/concurrent${i}/blobs/${blob.digest}`));
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
    }
  });
});
