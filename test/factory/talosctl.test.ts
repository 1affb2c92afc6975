// talosctl downloads from the factory started from the seed command line against the test bed release in a
// real registry, as upstream serves them (image-factory internal/frontend/http/talosctl.go, http.go;
// internal/artifacts/manager.go, versions.go; acceptance test internal/integration/talosctl_test.go):
// the list is the talosctl-* files at the root of the version's talosctl-all image, sorted, as full URLs under
// -external-url; a download is that file's bytes; a version before 1.11 lists [] and its downloads answer
// 404 `version X is not available`. The expected files and bytes are read from the registry here, not from
// the factory's code.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildImage, LayerStore, pushImage } from "../../src/oci/image-builder.ts";
import { signImage } from "../../src/signing/sign.ts";
import { KeySigner } from "../../src/signing/signer.ts";
import { flattenImage } from "../testbed/release-helpers.ts";
import { type PublishedTestbed, type SeedBed, startSeedBed, startSeedFactory, waitFor200 } from "./service-harness.ts";

const externalUrl = "https://factory.example.test/"; // the seed command line's -external-url

/** talos quirks SupportsFactoryTalosctlDownload: from 1.11.0-alpha.3, the pre-release part dropped. */
function talosctlVersion(version: string): boolean {
  const core = /^v?(\d+)\.(\d+)/.exec(version);
  return core !== null && (Number(core[1]) > 1 || Number(core[2]) >= 11);
}

describe("talosctl downloads", () => {
  let bed: SeedBed | undefined;
  let testbed: PublishedTestbed;
  let base: string;
  let scratch: string;
  /** An offered version from 1.11, one before, and the files of the former's talosctl-all image. */
  let newer: string;
  let older: string | undefined;
  let files: Map<string, Buffer>;

  before(async () => {
    bed = await startSeedBed();
    ({ testbed, base } = bed);
    scratch = await mkdtemp(join(tmpdir(), "talosctl-test-"));
    const offered = (await (await fetch(`${base}/versions`)).json()) as string[];
    const withTalosctl = offered.filter(talosctlVersion);
    assert.ok(withTalosctl.length > 0, `the test bed offers a version from 1.11: ${offered.join(", ")}`);
    newer = withTalosctl.at(-1) as string;
    older = offered.find((v) => !talosctlVersion(v));
    const tree = join(scratch, "talosctl-all");
    await flattenImage(testbed.server.store.repository("siderolabs/talosctl-all"), newer, tree);
    files = new Map();
    for (const name of await readdir(tree)) files.set(name, await readFile(join(tree, name)));
  });
  after(async () => {
    await bed?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("GET /talosctl/:version: the image's talosctl-* files, sorted, as URLs under the external URL (application/json)", async () => {
    const expected = [...files.keys()]
      .filter((name) => name.startsWith("talosctl-"))
      .sort()
      .map((name) => `${externalUrl}talosctl/${newer}/${name}`);
    assert.ok(expected.length >= 4);
    for (const asked of [newer, newer.slice(1)]) {
      const res = await fetch(`${base}/talosctl/${asked}`);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.deepEqual(JSON.parse(text), expected, asked);
      assert.ok(text.endsWith("]\n"), "one line, as Go's json.Encoder writes it");
    }
  });

  it("GET /talosctl/:version/:path: the file's bytes, with its length, octet-stream and an attachment name; HEAD the same without a body", async () => {
    for (const [name, content] of files) {
      const res = await fetch(`${base}/talosctl/${newer}/${name}`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, body.toString());
      assert.ok(body.equals(content), name);
      assert.equal(res.headers.get("content-length"), String(content.length));
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assert.equal(res.headers.get("content-disposition"), `attachment; filename="${name}"`);

      const head = await fetch(`${base}/talosctl/${newer.slice(1)}/${name}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(content.length));
      assert.equal(head.headers.get("content-disposition"), `attachment; filename="${name}"`);
      assert.equal((await head.arrayBuffer()).byteLength, 0);
    }
  });

  it("a download takes a byte range and its ETag (as assets do)", async () => {
    const [name, content] = [...files][0] as [string, Buffer];
    const url = `${base}/talosctl/${newer}/${name}`;
    const ranged = await fetch(url, { headers: { Range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(content.subarray(10, 20)));
    const etag = ranged.headers.get("etag");
    assert.ok(etag);
    const again = await fetch(url, { headers: { "If-None-Match": etag } });
    assert.equal(again.status, 304);
  });

  it("a version before 1.11 lists [] and its downloads answer 404 `version X is not available`, as upstream", async (t) => {
    if (older === undefined) return t.skip("the test bed offers no version before 1.11");
    const list = await fetch(`${base}/talosctl/${older}`);
    assert.equal(list.status, 200);
    assert.equal(list.headers.get("content-type"), "application/json");
    assert.equal(await list.text(), "[]\n");
    // internal/integration/talosctl_test.go: v1.10.0 → 404 "version 1.10.0 is not available\n"
    const download = await fetch(`${base}/talosctl/${older}/talosctl-linux-amd64`);
    assert.equal(download.status, 404);
    assert.equal(await download.text(), `version ${older.slice(1)} is not available\n`);
  });

  it("a version not on offer: 404 as upstream; a malformed one: 400", async () => {
    for (const path of ["/talosctl/v1.9.99", "/talosctl/v1.9.99/talosctl-linux-amd64"]) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(await res.text(), "version 1.9.99 is not available\n");
    }
    const res = await fetch(`${base}/talosctl/not-a-version/talosctl-linux-amd64`);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /invalid Talos version "vnot-a-version"/);
  });

  it("a file the image lacks: 404 naming it and the binaries there (upstream answers 500 from os.Stat)", async () => {
    for (const name of ["talosctl-plan9-amd64", "talosctl-linux-amd64.sha256", "a b"]) {
      const res = await fetch(`${base}/talosctl/${newer}/${encodeURIComponent(name)}`);
      const text = await res.text();
      assert.equal(res.status, 404, `${name}: ${text}`);
      assert.match(text, /talosctl-linux-amd64/, name);
    }
  });

  it("requests at once on a fresh data directory share one pull: every answer right, one content cache entry", async () => {
    const fresh = await startSeedFactory(testbed);
    try {
      const url = fresh.factory.url.replace(/\/$/, "");
      await waitFor200(`${url}/readyz`);
      const wanted = [...files, ...files];
      const answers = await Promise.all(
        wanted.map(async ([name]) => {
          const res = await fetch(`${url}/talosctl/${newer}/${name}`);
          return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
        }),
      );
      for (const [i, [name, content]] of wanted.entries()) {
        assert.equal(answers[i]?.status, 200, name);
        assert.ok(answers[i]?.body.equals(content), name);
      }
      const entries = (await readdir(join(fresh.dataDir, "sources"))).filter((n) => n.startsWith("sha256-"));
      assert.equal(entries.length, 1, entries.join());
    } finally {
      await fresh.stop();
    }
  });

  it("a talosctl-all image signed by another key: 502 naming the image and the key it was checked against; nothing pulled", async () => {
    // The same version's talosctl-all, in another repository, signed by a key the factory does not trust.
    const repositoryName = "siderolabs/talosctl-other";
    const layers = new LayerStore(join(scratch, "layers"), 0);
    const image = await buildImage(
      {
        repository: repositoryName,
        tag: newer,
        layers: [[{ type: "file", path: "talosctl-linux-amd64", mode: 0o755, content: Buffer.from("untrusted\n") }]],
      },
      layers,
    );
    const repository = testbed.server.store.repository(repositoryName);
    const digest = await pushImage(repository, image);
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await signImage(repository, digest, new KeySigner(privateKey), {
      dockerReference: `${testbed.registry}/${repositoryName}`,
    });

    const other = await startSeedFactory(testbed, ["-talosctl-image", repositoryName]);
    try {
      const url = other.factory.url.replace(/\/$/, "");
      await waitFor200(`${url}/readyz`);
      for (const path of [`/talosctl/${newer}`, `/talosctl/${newer}/talosctl-linux-amd64`]) {
        const res = await fetch(`${url}${path}`);
        const text = await res.text();
        assert.equal(res.status, 502, `${path}: ${text}`);
        assert.ok(text.includes(`${testbed.registry}/${repositoryName}:${newer}`), text);
        assert.match(text, /signature/);
        assert.match(text, /cosign\.pub/, "the rule: the configured key");
      }
      const pulled = await readdir(join(other.dataDir, "sources")).catch(() => []);
      assert.deepEqual(
        pulled.filter((name) => name.startsWith("sha256-")),
        [],
      );
    } finally {
      await other.stop();
    }
  });
});
