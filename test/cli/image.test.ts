// `boot-assets inspect | tags | copy` run as real child processes against real registries: the embedded
// registry (plain HTTP and TLS) and CNCF distribution, with skopeo as the independent judge of digests.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { startDistribution } from "../harness/distribution.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import { makeTestPki, type TestPki } from "../harness/tls.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { type MultiArchLayout, readLayoutBlobs, writeMultiArchLayout } from "../realclients/fixture.ts";
import { type CliResult, isolatedEnv, runCli } from "./run-cli.ts";

const execFileAsync = promisify(execFile);

/** `skopeo inspect --raw`: the manifest bytes as an independent client sees them. */
async function skopeoRaw(reference: string, ...flags: string[]): Promise<Buffer> {
  const { stdout } = await execFileAsync("skopeo", ["inspect", "--raw", ...flags, `docker://${reference}`], {
    encoding: "buffer",
    timeout: 60_000,
  });
  return stdout;
}

function assertOk(result: CliResult, what: string): string {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}): ${result.stderr}`);
  return result.stdout.toString("utf8");
}

function assertFails(result: CliResult, what: string): void {
  assert.notEqual(result.code, 0, `${what} should fail, printed: ${result.stdout.toString("utf8")}`);
  assert.equal(result.stderr.trim().split("\n").length, 1, `one-line error expected: ${result.stderr}`);
}

let work: string;
let env: NodeJS.ProcessEnv;
let source: MultiArchLayout;
let pki: TestPki;
const registries: RunningRegistry[] = [];
let plain: RunningRegistry;
let secure: RunningRegistry;
let distribution: RunningRegistry;

const cli = (...args: string[]) => runCli(args, env);
const blobFile = (digest: string) => readFile(join(source.dir, "blobs", "sha256", digest.slice("sha256:".length)));

before(async () => {
  work = await mkdtemp(join(tmpdir(), "cli-image-test-"));
  env = isolatedEnv(join(work, "home"));
  [source, pki] = await Promise.all([writeMultiArchLayout(join(work, "source"), "v1"), makeTestPki(join(work, "pki"))]);
  // Each registry is remembered as soon as it runs, so `after` stops it even if another fails to start.
  const started = async (starting: Promise<RunningRegistry>) => {
    const registry = await starting;
    registries.push(registry);
    return registry;
  };
  [plain, secure, distribution] = await Promise.all([
    started(startEmbeddedRegistry()),
    started(startEmbeddedRegistry({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } })),
    started(startDistribution()),
  ]);
});

after(async () => {
  await Promise.all(registries.map((r) => r.stop()));
  if (work) await rm(work, { recursive: true, force: true });
});

describe("boot-assets copy", () => {
  it("copies oci-layout → distribution → embedded → oci-layout keeping every digest and byte", async () => {
    const indexBytes = await blobFile(source.index.digest);
    const toDistribution = await cli(
      "copy",
      "--all",
      "--insecure",
      `oci:${source.dir}:v1`,
      `${distribution.host}/chain/img:v1`,
    );
    assert.equal(assertOk(toDistribution, "copy to distribution").trim(), source.index.digest);
    const blobCount = source.configs.length + source.layers.length;
    assert.match(toDistribution.stderr, new RegExp(`${blobCount} blob\\(s\\) .* transferred, 0 already present`));
    assert.deepEqual(await skopeoRaw(`${distribution.host}/chain/img:v1`, "--tls-verify=false"), indexBytes);

    const toEmbedded = await cli(
      "copy",
      "--all",
      "--insecure",
      `docker://${distribution.host}/chain/img:v1`,
      `docker://${plain.host}/chain/img:v2`,
    );
    assert.equal(assertOk(toEmbedded, "copy distribution to embedded").trim(), source.index.digest);
    assert.deepEqual(await skopeoRaw(`${plain.host}/chain/img:v2`, "--tls-verify=false"), indexBytes);
    const arm64 = source.manifests[1];
    assert.ok(arm64);
    assert.deepEqual(
      await skopeoRaw(`${plain.host}/chain/img@${arm64.digest}`, "--tls-verify=false"),
      await blobFile(arm64.digest),
    );

    // No tag on the destination: the layout entry takes the source's tag.
    const out = join(work, "out-layout");
    const toLayout = await cli("copy", "--all", "--insecure", `${plain.host}/chain/img:v2`, `oci:${out}`);
    assert.equal(assertOk(toLayout, "copy embedded to layout").trim(), source.index.digest);
    const outIndex = JSON.parse(await readFile(join(out, "index.json"), "utf8"));
    assert.deepEqual(
      outIndex.manifests.map((d: { digest: string; annotations: Record<string, string> }) => [
        d.annotations["org.opencontainers.image.ref.name"],
        d.digest,
      ]),
      [["v2", source.index.digest]],
    );
    const sourceBlobs = await readLayoutBlobs(source.dir);
    assert.equal(sourceBlobs.size, source.allDigests.length);
    assert.deepEqual(await readLayoutBlobs(out), sourceBlobs);

    // Again: every blob is already there and is skipped, the digest is the same.
    const again = await cli("copy", "--all", "--insecure", `oci:${source.dir}:v1`, `${distribution.host}/chain/img:v1`);
    assert.equal(assertOk(again, "second copy").trim(), source.index.digest);
    assert.match(again.stderr, new RegExp(`0 blob\\(s\\) \\(0 bytes\\) transferred, ${blobCount} already present`));
  });

  it("without --all copies the current platform's image, or the one --platform names", async () => {
    const [amd64, arm64] = source.manifests;
    assert.ok(amd64 && arm64);
    const [byDefault, chosen] = await Promise.all([
      cli("copy", "--insecure", `oci:${source.dir}:v1`, `${plain.host}/single/img:amd`),
      cli("copy", "--insecure", "--platform", "linux/arm64", `oci:${source.dir}:v1`, `${plain.host}/single/img:arm`),
    ]);
    assert.equal(assertOk(byDefault, "copy default platform").trim(), amd64.digest);
    assert.equal(assertOk(chosen, "copy linux/arm64").trim(), arm64.digest);
    assert.deepEqual(
      await skopeoRaw(`${plain.host}/single/img:arm`, "--tls-verify=false"),
      await blobFile(arm64.digest),
    );

    const missing = await cli(
      "copy",
      "--insecure",
      "--platform",
      "linux/s390x",
      `oci:${source.dir}:v1`,
      `oci:${join(work, "x")}`,
    );
    assertFails(missing, "copy of an absent platform");
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /no image for platform linux\/s390x \(offered: linux\/amd64, linux\/arm64\)/);
  });

  it("refuses a destination digest the source does not have, and unsupported transports", async () => {
    const wrong = `sha256:${"0".repeat(64)}`;
    const [mismatch, transport] = await Promise.all([
      cli("copy", "--all", "--insecure", `oci:${source.dir}:v1`, `${plain.host}/pinned/img@${wrong}`),
      cli("copy", "docker-archive:/tmp/x.tar", `oci:${join(work, "y")}`),
    ]);
    assertFails(mismatch, "copy to a wrong digest");
    assert.equal(mismatch.code, 2);
    assert.match(mismatch.stderr, new RegExp(`resolves to ${source.index.digest}.*names digest ${wrong}`));
    assertFails(transport, "docker-archive source");
    assert.match(transport.stderr, /docker-archive: transport is not supported/);
  });
});

describe("boot-assets inspect and tags over plain HTTP", () => {
  before(async () => {
    assertOk(
      await cli("copy", "--all", "--insecure", `oci:${source.dir}:v1`, `${plain.host}/shown/img:v1`),
      "seed copy",
    );
    assertOk(
      await cli("copy", "--all", "--insecure", `${plain.host}/shown/img:v1`, `${plain.host}/shown/img:v1.1`),
      "seed tag copy",
    );
  });

  it("prints digest, media type, size and platforms, as text, JSON or the raw bytes", async () => {
    const ref = `${plain.host}/shown/img:v1`;
    const [amd64, arm64] = source.manifests;
    assert.ok(amd64 && arm64);
    const [text, json, raw, rawChild, jsonChild] = await Promise.all([
      cli("inspect", "--insecure", ref),
      cli("inspect", "--insecure", "--json", ref),
      cli("inspect", "--insecure", "--raw", ref),
      cli("inspect", "--insecure", "--raw", "--platform", "linux/arm64", ref),
      cli("inspect", "--insecure", "--json", "--platform", "linux/amd64", `docker://${ref}`),
    ]);
    const indexBytes = await blobFile(source.index.digest);
    const shown = assertOk(text, "inspect");
    assert.match(shown, new RegExp(`Digest: +${source.index.digest}`));
    assert.match(shown, /Media type: +application\/vnd\.oci\.image\.index\.v1\+json/);
    assert.match(shown, new RegExp(`Size: +${indexBytes.length} bytes`));
    assert.match(shown, new RegExp(`linux/amd64 +${amd64.digest}`));
    assert.match(shown, new RegExp(`linux/arm64 +${arm64.digest}`));

    const report = JSON.parse(assertOk(json, "inspect --json"));
    assert.equal(report.digest, source.index.digest);
    assert.equal(report.size, indexBytes.length);
    assert.deepEqual(
      report.manifests.map((m: { platform: string; digest: string; size: number }) => [m.platform, m.digest, m.size]),
      [
        ["linux/amd64", amd64.digest, amd64.size],
        ["linux/arm64", arm64.digest, arm64.size],
      ],
    );

    assertOk(raw, "inspect --raw");
    assert.deepEqual(raw.stdout, indexBytes);
    assertOk(rawChild, "inspect --raw --platform");
    assert.deepEqual(rawChild.stdout, await blobFile(arm64.digest));

    const child = JSON.parse(assertOk(jsonChild, "inspect --json --platform"));
    assert.equal(child.digest, amd64.digest);
    assert.equal(child.index.digest, source.index.digest);
    assert.equal(child.config.digest, source.configs[0]?.digest);
    assert.deepEqual(
      child.layers.map((l: { digest: string }) => l.digest),
      [source.layers[0]?.digest],
    );
  });

  it("lists tags one per line; names the problem when a tag or the scheme is wrong", async () => {
    const [listed, missing, noInsecure, imageNotRepo] = await Promise.all([
      cli("tags", "--insecure", `${plain.host}/shown/img`),
      cli("inspect", "--insecure", `${plain.host}/shown/img:nope`),
      cli("inspect", `${plain.host}/shown/img:v1`),
      cli("tags", "--insecure", `${plain.host}/shown/img:v1`),
    ]);
    assert.deepEqual(assertOk(listed, "tags").split("\n").filter(Boolean).sort(), ["v1", "v1.1"]);

    assertFails(missing, "inspect of a missing tag");
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /shown\/img/);
    assert.match(missing.stderr, /MANIFEST_UNKNOWN|not found|nope/);

    // Plain HTTP without --insecure: HTTPS is tried, fails, and the message says what would help.
    assertFails(noInsecure, "inspect of a plain-HTTP registry without --insecure");
    assert.ok(noInsecure.stderr.includes(plain.host), noInsecure.stderr);
    assert.match(noInsecure.stderr, /--insecure/);

    assertFails(imageNotRepo, "tags of an image reference");
    assert.equal(imageNotRepo.code, 2);
  });
});

describe("boot-assets over TLS with a private CA", () => {
  let certsDir: string;

  before(async () => {
    certsDir = join(work, "certs.d");
    await mkdir(join(certsDir, secure.host), { recursive: true });
    await cp(pki.caCertFile, join(certsDir, secure.host, "ca.crt"));
  });

  it("works with --ca-file, with --certs-dir <dir>/<host:port>/ca.crt, and with --insecure; fails without", async () => {
    const ref = `${secure.host}/tls/img:v1`;
    const pushed = await cli("copy", "--all", "--ca-file", pki.caCertFile, `oci:${source.dir}:v1`, ref);
    assert.equal(assertOk(pushed, "copy with --ca-file").trim(), source.index.digest);

    const [viaCertsDir, tagsViaCaFile, viaInsecure, untrusted] = await Promise.all([
      cli("inspect", "--json", "--certs-dir", certsDir, ref),
      cli("tags", "--ca-file", pki.caCertFile, `${secure.host}/tls/img`),
      cli("inspect", "--json", "--insecure", ref),
      cli("inspect", ref),
    ]);
    assert.equal(JSON.parse(assertOk(viaCertsDir, "inspect with --certs-dir")).digest, source.index.digest);
    assert.equal(assertOk(tagsViaCaFile, "tags with --ca-file"), "v1\n");
    assert.equal(JSON.parse(assertOk(viaInsecure, "inspect with --insecure")).digest, source.index.digest);

    assertFails(untrusted, "inspect of an untrusted TLS registry");
    assert.equal(untrusted.code, 5);
    assert.ok(untrusted.stderr.includes(secure.host), untrusted.stderr);
    assert.match(untrusted.stderr, /certificate/i);
    assert.match(untrusted.stderr, /--ca-file/);

    // skopeo, trusting the same CA through a certs directory, sees the same bytes.
    assert.deepEqual(
      await skopeoRaw(ref, "--cert-dir", join(certsDir, secure.host)),
      await blobFile(source.index.digest),
    );
  });

  it("refuses a missing or non-PEM --ca-file and a missing --authfile with a one-line error naming the flag", async () => {
    const notPem = join(work, "not-a-cert.txt");
    await writeFile(notPem, "hello\n");
    const missingFile = join(work, "missing-ca.pem");
    const missingAuth = join(work, "missing-auth.json");
    const ref = `${secure.host}/tls/img:v1`;
    const [missing, garbage, auth] = await Promise.all([
      cli("inspect", "--ca-file", missingFile, ref),
      cli("tags", "--ca-file", notPem, `${secure.host}/tls/img`),
      cli("copy", "--authfile", missingAuth, ref, `oci:${join(work, "z")}`),
    ]);
    for (const [result, flag, file] of [
      [missing, "--ca-file", missingFile],
      [garbage, "--ca-file", notPem],
      [auth, "--authfile", missingAuth],
    ] as const) {
      assertFails(result, `${flag} ${file}`);
      assert.equal(result.code, 2);
      assert.ok(result.stderr.includes(`${flag} ${file}`), result.stderr);
    }
    assert.match(missing.stderr, /no such file/);
    assert.match(garbage.stderr, /no PEM certificate/);
  });
});
