// HTTP behaviours no registry here exhibits on its own, so small node:http servers play them:
// blob redirects to storage on another origin (as S3-backed registries answer), and Link pagination of
// tags (distribution 2.8 ignores `n`).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { AppError } from "../../src/errors.ts";
import { RegistryClient } from "../../src/oci/client/client.ts";
import type { Digest } from "../../src/oci/digest.ts";

async function serve(handler: RequestListener) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const credentials = async () => ({ kind: "basic" as const, username: "alice", password: "wonderland" });
const expectedAuthorization = `Basic ${Buffer.from("alice:wonderland").toString("base64")}`;

describe("blob redirects", () => {
  const stops: Array<() => Promise<void>> = [];
  after(() => Promise.all(stops.map((s) => s())));

  const content = Buffer.from("blob bytes kept in object storage");
  const digest = `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;

  async function setup(storageBody: Buffer) {
    const storageHeaders: IncomingHttpHeaders[] = [];
    const storage = await serve((req, res) => {
      storageHeaders.push(req.headers);
      res.writeHead(200, { "content-length": String(storageBody.length) });
      res.end(storageBody);
    });
    const registryHeaders: IncomingHttpHeaders[] = [];
    // A registry demanding Basic auth that sends blob GETs to the storage origin with a 307.
    const registry = await serve((req, res) => {
      registryHeaders.push(req.headers);
      if (req.headers.authorization !== expectedAuthorization) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="test"' });
        res.end();
      } else if (req.url === "/v2/") {
        res.writeHead(200);
        res.end();
      } else if (req.url === `/v2/app/blobs/${digest}`) {
        res.writeHead(307, { location: `${storage.url}/bucket/data?signature=abc` });
        res.end();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    stops.push(storage.stop, registry.stop);
    const client = new RegistryClient({ insecure: [registry.host], certsDirs: [], credentials, retryDelayMs: 10 });
    stops.push(() => client.close());
    return { client, registry, storageHeaders, registryHeaders };
  }

  it("follows a 307 to another origin without sending Authorization there", async () => {
    const { client, registry, storageHeaders, registryHeaders } = await setup(content);
    const reader = await client.repository(`${registry.host}/app`).getBlob(digest);
    const chunks: Buffer[] = [];
    for await (const chunk of reader.stream) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), content);
    assert.equal(storageHeaders.length, 1);
    assert.equal(storageHeaders[0]?.authorization, undefined);
    assert.ok(registryHeaders.some((h) => h.authorization === expectedAuthorization));
  });

  it("still verifies the bytes that storage returns", async () => {
    const { client, registry, storageHeaders } = await setup(Buffer.from("blob bytes kept in object storagE"));
    const reader = await client.repository(`${registry.host}/app`).getBlob(digest);
    await assert.rejects(
      (async () => {
        for await (const _ of reader.stream) {
          // drain
        }
      })(),
      (err: unknown) => err instanceof AppError && err.kind === "Integrity",
    );
    assert.equal(storageHeaders[0]?.authorization, undefined);
  });
});

describe("tag list pagination", () => {
  it("follows relative and absolute Link headers until the last page", async () => {
    const allTags = Array.from({ length: 25 }, (_, i) => `v${i}`);
    const seen: string[] = [];
    let base = "";
    const registry = await serve((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      seen.push(url.pathname + url.search);
      if (url.pathname === "/v2/") {
        res.writeHead(200);
        res.end();
        return;
      }
      const n = Number(url.searchParams.get("n"));
      const last = url.searchParams.get("last");
      const start = last ? allTags.indexOf(last) + 1 : 0;
      const page = allTags.slice(start, start + n);
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (start + n < allTags.length) {
        const next = `/v2/app/tags/list?n=${n}&last=${page.at(-1)}`;
        // Alternate relative and absolute links, as registries do both.
        headers.link = `<${start === 0 ? next : base + next}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify({ name: "app", tags: page }));
    });
    base = registry.url;
    const client = new RegistryClient({ insecure: true, certsDirs: [], credentials: async () => undefined });
    try {
      assert.deepEqual(await client.repository(`${registry.host}/app`).listTags({ pageSize: 10 }), allTags);
      assert.deepEqual(
        seen.filter((p) => p.startsWith("/v2/app/")),
        ["/v2/app/tags/list?n=10", "/v2/app/tags/list?n=10&last=v9", "/v2/app/tags/list?n=10&last=v19"],
      );
    } finally {
      await client.close();
      await registry.stop();
    }
  });
});

describe("transport failures", () => {
  it("retries a GET whose connection was reset, then succeeds", async () => {
    let calls = 0;
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200);
        res.end();
        return;
      }
      calls++;
      if (calls === 1) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ name: "app", tags: ["a"] }));
    });
    const client = new RegistryClient({
      insecure: true,
      certsDirs: [],
      credentials: async () => undefined,
      retryDelayMs: 10,
    });
    try {
      assert.deepEqual(await client.repository(`${registry.host}/app`).listTags(), ["a"]);
      assert.equal(calls, 2);
    } finally {
      await client.close();
      await registry.stop();
    }
  });

  it("gives up on a registry that never answers, after the timeout, as Upstream", async () => {
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200);
        res.end();
      }
      // Anything else: never answer.
    });
    const client = new RegistryClient({
      insecure: true,
      certsDirs: [],
      credentials: async () => undefined,
      timeoutMs: 300,
      retries: 1,
      retryDelayMs: 10,
    });
    try {
      const started = Date.now();
      await assert.rejects(client.repository(`${registry.host}/app`).getManifest("v1"), (err: unknown) => {
        assert.ok(err instanceof AppError);
        assert.equal(err.kind, "Upstream");
        assert.match(err.message, /127\.0\.0\.1/);
        return true;
      });
      assert.ok(Date.now() - started < 5000);
    } finally {
      await client.close();
      await registry.stop();
    }
  });
});
