// The registry client's behaviour suite. It runs unchanged against the real CNCF distribution registry and
// against the embedded registry (client.distribution.test.ts, client.embedded.test.ts), so both the client
// and the embedded server are held to what distribution does. Expected digests are computed here with
// node:crypto, never taken from the code under test.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { AppError } from "../../src/errors.ts";
import { RegistryClient, type RegistryClientOptions } from "../../src/oci/client/client.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { type HttpFront, startFront } from "./http-front.ts";

export interface TestBlob {
  data: Buffer;
  digest: Digest;
  size: number;
}

export function testBlob(content: string | Buffer): TestBlob {
  const data = typeof content === "string" ? Buffer.from(content) : content;
  return { data, digest: `sha256:${createHash("sha256").update(data).digest("hex")}`, size: data.length };
}

export function descriptorOf(blob: TestBlob, mediaType: string, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: blob.digest, size: blob.size, ...extra };
}

/** An image manifest over a config and layers, as bytes plus its digest. */
export function imageManifest(config: TestBlob, layers: TestBlob[], extra: Record<string, unknown> = {}): TestBlob {
  return testBlob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptorOf(config, MediaType.ociConfig),
      layers: layers.map((l) => descriptorOf(l, MediaType.ociLayerGzip)),
      ...extra,
    }),
  );
}

/** A client for a loopback test registry: plain HTTP allowed for it, no user credentials, fast retries. */
export function testClient(host: string, extra: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({
    insecure: new Set([host]),
    certsDirs: [],
    credentials: async () => undefined,
    retryDelayMs: 10,
    ...extra,
  });
}

async function sha256OfStream(stream: Readable): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(stream, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) hash.update(chunk);
  });
  return `sha256:${hash.digest("hex")}`;
}

function isKind(kind: AppError["kind"], code?: string) {
  return (err: unknown) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (code !== undefined) assert.equal(err.code, code, err.message);
    return true;
  };
}

export function clientSuite(start: () => Promise<RunningRegistry>): void {
  describe("registry client", () => {
    let registry: RunningRegistry;
    let client: RegistryClient;
    const fronts: HttpFront[] = [];
    const clients: RegistryClient[] = [];

    before(async () => {
      registry = await start();
      client = testClient(registry.host);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await Promise.all(fronts.map((f) => f.stop()));
      await client?.close();
      await registry?.stop();
    });

    /** A recording front before the registry, and a client that talks to the registry through it. */
    async function front(hooks?: Parameters<typeof startFront>[1], options?: RegistryClientOptions) {
      const f = await startFront(registry.url, hooks);
      fronts.push(f);
      const c = testClient(f.host, options);
      clients.push(c);
      return { front: f, client: c };
    }

    async function pushImage(repoName: string, seed: string, tag?: string, via = client) {
      const repo = via.repository(`${registry.host}/${repoName}`);
      const config = testBlob(JSON.stringify({ architecture: "amd64", os: "linux", seed }));
      const layer = testBlob(randomBytes(3000));
      await repo.putBlob(config.data);
      await repo.putBlob(Readable.from([layer.data.subarray(0, 1000), layer.data.subarray(1000)]));
      const manifest = imageManifest(config, [layer]);
      await repo.putManifest(manifest.data, MediaType.ociManifest, tag);
      return { repo, config, layer, manifest };
    }

    it("pings the registry over plain HTTP when it is marked insecure", async () => {
      const result = await client.ping(registry.host);
      assert.equal(result.scheme, "http");
      assert.equal(result.auth, "none");
    });

    it("round-trips blobs and a manifest by tag and by digest", async () => {
      const { repo, config, layer, manifest } = await pushImage("roundtrip/app", "one", "v1");

      assert.deepEqual(await repo.statBlob(layer.digest), { digest: layer.digest, size: layer.size });
      const reader = await repo.getBlob(layer.digest);
      assert.equal(reader.size, layer.size);
      assert.equal(await sha256OfStream(reader.stream), layer.digest);
      const configReader = await repo.getBlob(config.digest, { size: config.size });
      assert.equal(await sha256OfStream(configReader.stream), config.digest);

      const byTag = await repo.getManifest("v1");
      assert.equal(byTag.digest, manifest.digest);
      assert.equal(byTag.mediaType, MediaType.ociManifest);
      assert.deepEqual(byTag.body, manifest.data);
      const byDigest = await repo.getManifest(manifest.digest);
      assert.deepEqual(byDigest.body, manifest.data);

      assert.deepEqual(await repo.resolve("v1"), {
        digest: manifest.digest,
        mediaType: MediaType.ociManifest,
        size: manifest.size,
      });

      // A push by digest alone stores the manifest without a tag.
      const other = imageManifest(config, [layer], { annotations: { note: "untagged" } });
      assert.equal(await repo.putManifest(other.data, MediaType.ociManifest), other.digest);
      assert.deepEqual((await repo.getManifest(other.digest)).body, other.data);
      assert.deepEqual(await repo.listTags(), ["v1"]);
    });

    it("skips the upload of a blob the repository already has", async () => {
      const { layer } = await pushImage("exists/app", "exists");
      const { front: f, client: c } = await front();
      const repo = c.repository(`${f.host}/exists/app`);
      assert.deepEqual(await repo.putBlob(layer.data), { digest: layer.digest, size: layer.size });
      assert.deepEqual(
        f.requests.filter((r) => r.url.startsWith("/v2/exists/")).map((r) => r.method),
        ["HEAD"],
      );
    });

    it("selects a platform from a multi-arch index", async () => {
      const repo = client.repository(`${registry.host}/multiarch/app`);
      const children: Record<string, TestBlob> = {};
      for (const arch of ["amd64", "arm64"]) {
        const config = testBlob(JSON.stringify({ architecture: arch, os: "linux" }));
        const layer = testBlob(`layer for ${arch}`);
        await repo.putBlob(config.data);
        await repo.putBlob(layer.data);
        const manifest = imageManifest(config, [layer]);
        await repo.putManifest(manifest.data, MediaType.ociManifest);
        children[arch] = manifest;
      }
      const index = testBlob(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociIndex,
          manifests: Object.entries(children).map(([arch, m]) =>
            descriptorOf(m, MediaType.ociManifest, {
              platform:
                arch === "arm64"
                  ? { os: "linux", architecture: arch, variant: "v8" }
                  : { os: "linux", architecture: arch },
            }),
          ),
        }),
      );
      assert.equal(await repo.putManifest(index.data, MediaType.ociIndex, "multi"), index.digest);
      assert.equal((await repo.resolve("multi")).mediaType, MediaType.ociIndex);

      const arm = await repo.getPlatformManifest("multi", { os: "linux", architecture: "arm64" });
      assert.equal(arm.record.digest, children.arm64?.digest);
      const amd = await repo.getPlatformManifest("multi", { os: "linux", architecture: "amd64" });
      assert.equal(amd.record.digest, children.amd64?.digest);
      await assert.rejects(
        repo.getPlatformManifest("multi", { os: "linux", architecture: "s390x" }),
        (err: unknown) => isKind("NotFound")(err) && /linux\/s390x/.test((err as Error).message),
      );
    });

    it("uploads a multi-MiB blob in Content-Range chunks", async () => {
      const chunkSize = 1024 * 1024;
      const { front: f, client: c } = await front(undefined, { chunkSize, monolithicMaxBytes: chunkSize });
      const repo = c.repository(`${f.host}/chunked/app`);
      const big = testBlob(randomBytes(5 * chunkSize + 12345));
      // Odd-sized pieces, so chunk boundaries never line up with what the source yields.
      const pieces: Buffer[] = [];
      for (let at = 0; at < big.size; at += 777_777) pieces.push(big.data.subarray(at, at + 777_777));
      const result = await repo.putBlob(Readable.from(pieces));
      assert.deepEqual(result, { digest: big.digest, size: big.size });

      const patches = f.requests.filter((r) => r.method === "PATCH");
      assert.equal(patches.length, 6);
      let expectedStart = 0;
      for (const patch of patches) {
        const range = /^(\d+)-(\d+)$/.exec(String(patch.headers["content-range"]));
        assert.ok(range, `PATCH without a Content-Range: ${String(patch.headers["content-range"])}`);
        assert.equal(Number(range[1]), expectedStart);
        assert.equal(Number(patch.headers["content-length"]), Number(range[2]) - Number(range[1]) + 1);
        expectedStart = Number(range[2]) + 1;
      }
      assert.equal(expectedStart, big.size);
      const put = f.requests.find((r) => r.method === "PUT" && r.url.includes("/blobs/uploads/"));
      assert.ok(put && new URL(put.url, f.url).searchParams.get("digest") === big.digest);

      const reader = await client.repository(`${registry.host}/chunked/app`).getBlob(big.digest);
      assert.equal(await sha256OfStream(reader.stream), big.digest);
    });

    it("refuses to commit an upload whose content does not match the given digest", async () => {
      const repo = client.repository(`${registry.host}/mismatch/app`);
      const real = testBlob("the real content");
      const claimed = testBlob("some other content");
      await assert.rejects(repo.putBlob(real.data, { digest: claimed.digest }), isKind("Integrity"));
      assert.equal(await repo.statBlob(claimed.digest), undefined);
      assert.equal(await repo.statBlob(real.digest), undefined);
    });

    it("mounts a blob from another repository instead of uploading it", async () => {
      const { layer } = await pushImage("mount/source", "mount");
      const { front: f, client: c } = await front();
      const target = c.repository(`${f.host}/mount/target`);
      const result = await target.putBlob(Readable.from([layer.data]), {
        digest: layer.digest,
        size: layer.size,
        mountFrom: "mount/source",
      });
      assert.deepEqual(result, { digest: layer.digest, size: layer.size });
      const posts = f.requests.filter((r) => r.method === "POST");
      assert.equal(posts.length, 1);
      const query = new URL(posts[0]?.url ?? "", f.url).searchParams;
      assert.equal(query.get("mount"), layer.digest);
      assert.equal(query.get("from"), "mount/source");
      assert.equal(f.requests.filter((r) => r.method === "PATCH" || r.method === "PUT").length, 0);
      assert.deepEqual(await client.repository(`${registry.host}/mount/target`).statBlob(layer.digest), {
        digest: layer.digest,
        size: layer.size,
      });
    });

    it("lists tags across Link-paginated pages", async () => {
      const { repo, manifest } = await pushImage("paged/app", "paged");
      const tags = Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, "0")}`);
      for (const tag of tags) await repo.putManifest(manifest.data, MediaType.ociManifest, tag);

      // Count the tags on each page the registry sends (distribution 2.8 ignores `n` and sends one page;
      // registries that paginate must keep to n=10 and link the next page).
      const pageSizes: number[] = [];
      const { front: f, client: c } = await front(
        {
          rewriteBody: (req, status, body) => {
            if (req.url.includes("/tags/list") && status === 200)
              pageSizes.push(JSON.parse(body.toString()).tags.length);
            return body;
          },
        },
        { tagPageSize: 10 },
      );
      const listed = await c.repository(`${f.host}/paged/app`).listTags();
      assert.deepEqual([...listed].sort(), tags);
      const pages = f.requests.filter((r) => r.url.startsWith("/v2/paged/app/tags/list"));
      assert.ok(pages.every((p) => new URL(p.url, f.url).searchParams.get("n") === "10"));
      if (pageSizes.length === 1) assert.equal(pageSizes[0], 25, "one page must hold every tag");
      else {
        assert.ok(pageSizes.length >= 3, `expected at least 3 pages, got ${pageSizes.length}`);
        assert.ok(
          pageSizes.every((n) => n <= 10),
          `a page exceeded n=10: ${pageSizes.join(",")}`,
        );
      }

      await assert.rejects(
        c.repository(`${f.host}/paged/app`).listTags({ pageSize: 10, maxTags: 15 }),
        isKind("Upstream"),
      );
    });

    it("finds referrers through the referrers API or the fallback tag", async () => {
      const { repo, manifest: subject } = await pushImage("referrers/app", "subject", "v1");
      const empty = testBlob("{}");
      await repo.putBlob(empty.data);
      const pushArtifact = async (artifactType: string, content: string) => {
        const payload = testBlob(content);
        await repo.putBlob(payload.data);
        const body = testBlob(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.ociManifest,
            artifactType,
            config: descriptorOf(empty, MediaType.ociEmpty),
            layers: [descriptorOf(payload, "application/octet-stream")],
            subject: descriptorOf(subject, MediaType.ociManifest),
          }),
        );
        const descriptor = await repo.pushReferrer(body.data, MediaType.ociManifest);
        assert.equal(descriptor.digest, body.digest);
        return body;
      };
      const sbom = await pushArtifact("application/vnd.example.sbom", "an sbom");
      const sig = await pushArtifact("application/vnd.example.signature", "a signature");

      const all = await repo.referrers(subject.digest);
      assert.deepEqual(all.map((d) => d.digest).sort(), [sbom.digest, sig.digest].sort());
      const sboms = await repo.referrers(subject.digest, "application/vnd.example.sbom");
      assert.deepEqual(
        sboms.map((d) => [d.digest, d.artifactType, d.size]),
        [[sbom.digest, "application/vnd.example.sbom", sbom.size]],
      );
      assert.deepEqual(await repo.referrers(subject.digest, "application/vnd.example.none"), []);
      assert.deepEqual(await repo.referrers(testBlob("no such subject").digest), []);
    });

    it("deletes a manifest by digest", async () => {
      const { repo, manifest } = await pushImage("delete/app", "delete", "gone");
      assert.ok(await repo.statManifest(manifest.digest));
      await repo.deleteManifest(manifest.digest);
      assert.equal(await repo.statManifest(manifest.digest), undefined);
      await assert.rejects(repo.getManifest(manifest.digest), isKind("NotFound"));
      await assert.rejects(repo.getManifest("gone"), isKind("NotFound"));
    });

    it("maps 404 answers to NotFound errors naming repository and reference", async () => {
      const { repo } = await pushImage("notfound/app", "nf", "v1");
      await assert.rejects(repo.getManifest("missing"), (err: unknown) => {
        isKind("NotFound", "MANIFEST_UNKNOWN")(err);
        assert.match((err as Error).message, /notfound\/app/);
        assert.match((err as Error).message, /missing/);
        return true;
      });
      const absent = testBlob("never pushed").digest;
      await assert.rejects(repo.getBlob(absent), (err: unknown) => {
        isKind("NotFound")(err);
        assert.match((err as Error).message, new RegExp(absent));
        return true;
      });
      assert.equal(await repo.statBlob(absent), undefined);
      assert.equal(await repo.statManifest("missing"), undefined);
      const nowhere = client.repository(`${registry.host}/no/such/repo`);
      await assert.rejects(nowhere.getManifest("latest"), isKind("NotFound"));
      await assert.rejects(nowhere.listTags(), isKind("NotFound"));
    });

    it("fails, never returns, a blob or manifest whose bytes were corrupted on the way", async () => {
      const { layer, manifest } = await pushImage("corrupt/app", "corrupt", "v1");
      const flipFirstByte = (req: { method: string; url: string }, status: number, body: Buffer) => {
        if (req.method !== "GET" || status !== 200 || body.length === 0) return body;
        if (!req.url.includes("/blobs/") && !req.url.includes("/manifests/")) return body;
        const copy = Buffer.from(body);
        copy[0] = (copy[0] ?? 0) ^ 0xff;
        return copy;
      };
      const { front: f, client: c } = await front({ rewriteBody: flipFirstByte });
      const repo = c.repository(`${f.host}/corrupt/app`);
      const reader = await repo.getBlob(layer.digest);
      await assert.rejects(sha256OfStream(reader.stream), isKind("Integrity", "DIGEST_INVALID"));
      await assert.rejects(repo.getManifest(manifest.digest), isKind("Integrity", "DIGEST_INVALID"));
      // By tag, the body must match the Docker-Content-Digest the registry announced.
      await assert.rejects(repo.getManifest("v1"), isKind("Integrity", "DIGEST_INVALID"));
    });

    it("retries 503 and 429 answers, honouring Retry-After", async () => {
      const { manifest } = await pushImage("retry/app", "retry", "v1");
      const failures = [503, 429, 503];
      const { front: f, client: c } = await front({
        intercept: (req, res) => {
          if (!req.url?.includes("/manifests/") || failures.length === 0) return false;
          const status = failures.shift() as number;
          res.writeHead(status, status === 429 ? { "retry-after": "1" } : {});
          res.end();
          return true;
        },
      });
      const started = Date.now();
      const record = await c.repository(`${f.host}/retry/app`).getManifest("v1");
      assert.equal(record.digest, manifest.digest);
      assert.ok(Date.now() - started >= 900, "the 429's Retry-After of 1 s was not honoured");
      assert.equal(f.requests.filter((r) => r.url.includes("/manifests/")).length, 4);

      const { front: g, client: impatient } = await front(
        {
          intercept: (req, res) => {
            if (!req.url?.includes("/manifests/")) return false;
            res.writeHead(503);
            res.end();
            return true;
          },
        },
        { retries: 2 },
      );
      await assert.rejects(impatient.repository(`${g.host}/retry/app`).getManifest("v1"), isKind("Upstream"));
      assert.equal(g.requests.filter((r) => r.url.includes("/manifests/")).length, 3);
    });
  });
}
