// Extension and overlay catalogs against the test bed release published into a real registry and read with
// the real client: the API's shapes, digests equal to the extension images' own, hosts replaced by the
// configured registry, signatures enforced (a catalog signed by someone else is refused and nothing is
// served), extra catalogs merged per version with the extra entry winning a clash, and re-reading after the
// refresh interval. Expected values come from the release summary and the catalog files read back
// independently, not from the code under test.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { parse as parseYaml } from "yaml";
import { isAppError } from "../../src/errors.ts";
import type { FactoryConfig } from "../../src/factory/config/model.ts";
import { createSources, type FactorySources } from "../../src/factory/sources/index.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { publishTestbedRelease, type ReleaseSummary } from "../../src/testbed/release.ts";
import { loadOrCreateReleaseKeys, type ReleaseKeys } from "../../src/testbed/release-keys.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { flattenImage } from "../testbed/release-helpers.ts";
import { factoryConfig, ImageMaker, ManualClock, RecordingLog, scratchDir, sourcesApp } from "./sources-helpers.ts";

const extensionNames = [
  "siderolabs/testbed-dummy",
  "siderolabs/testbed-glibc",
  "siderolabs/testbed-hello",
  "siderolabs/testbed-legacy",
  "siderolabs/testbed-ucode",
];

describe("extension and overlay catalogs of the test bed release", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  let summary: ReleaseSummary;
  let keys: ReleaseKeys;
  let maker: ImageMaker;
  let publicKeyFile: string;
  const running: FactorySources[] = [];
  const apps: FastifyInstance[] = [];

  const argv = (...extra: string[]) => [
    "-image-registry",
    registry.host,
    "-insecure-image-registry",
    "-container-signature-pubkey",
    publicKeyFile,
    ...extra,
  ];

  async function serve(config: FactoryConfig, options: { log?: RecordingLog; clock?: ManualClock } = {}) {
    const s = createSources(config, { client, log: options.log ?? new RecordingLog(), clock: options.clock });
    running.push(s);
    await s.start();
    const app = await sourcesApp(s);
    apps.push(app);
    return { sources: s, app };
  }

  const get = (app: FastifyInstance, url: string) => app.inject({ method: "GET", url });
  const extensionImages = (version: string) =>
    summary.versions.find((v) => v.version === version)?.images.filter((i) => i.kind === "extension") ?? [];
  const sign = () => ({ signer: keys.keySigner, registry: registry.host });
  const repo = (name: string) => client.repository(`${registry.host}/${name}`);

  before(async () => {
    scratch = await scratchDir("sources-catalogs-");
    registry = await startEmbeddedRegistry();
    client = new RegistryClient({ insecure: [registry.host], retries: 0 });
    summary = await publishTestbedRelease({ registry: registry.host, client, out: join(scratch.dir, "out") });
    publicKeyFile = join(scratch.dir, "out", "cosign.pub");
    keys = await loadOrCreateReleaseKeys(join(bootAssetsCacheDir(), "testbed", "keys"));
    maker = new ImageMaker(join(scratch.dir, "layers"));
  });
  after(async () => {
    for (const app of apps) await app.close();
    for (const s of running) await s.stop();
    await client?.close();
    await registry?.stop();
    await scratch?.remove();
  });

  test("/versions lists the release's semver tags (latest-dev is not one)", async () => {
    const { app } = await serve(await factoryConfig(argv(), join(scratch.dir, "data")));
    const res = await get(app, "/versions");
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), ["v1.8.2", "v1.10.3", "v1.12.11", "v1.13.9", "v1.14.0-rc.1"]);
  });

  test("extensions: names, digests of the images, authors and descriptions, host replaced by the image registry", async () => {
    const { app } = await serve(await factoryConfig(argv(), join(scratch.dir, "data")));
    const res = await get(app, "/version/v1.10.3/extensions/official");
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers["content-type"]), /^application\/json/);
    const listed = res.json() as Record<string, string>[];
    assert.deepEqual(listed.map((e) => e.name).sort(), extensionNames);

    // The catalog's own descriptions, read back from the image independently.
    const tree = join(scratch.dir, "catalog-v1.10.3");
    await flattenImage(repo("siderolabs/extensions"), "v1.10.3", tree);
    const descriptions = parseYaml(await readFile(join(tree, "descriptions.yaml"), "utf8")) as Record<
      string,
      { author: string; description: string }
    >;
    const lines = (await readFile(join(tree, "image-digests"), "utf8")).trim().split("\n");
    assert.ok(
      lines.every((line) => line.startsWith("ghcr.io/")),
      "the catalog names ghcr.io, as upstream's do",
    );

    for (const image of extensionImages("v1.10.3")) {
      const entry = listed.find((e) => e.name === image.repository);
      assert.ok(entry, `${image.repository} listed`);
      assert.deepEqual(Object.keys(entry).sort(), ["author", "description", "digest", "name", "ref"]);
      assert.equal(entry.digest, image.digest, "the digest of the pushed extension image");
      assert.equal(entry.ref, `${registry.host}/${image.repository}:${image.tag}`, "pulled from the image registry");
      const line = `ghcr.io/${image.repository}:${image.tag}@${image.digest}`;
      assert.ok(lines.includes(line));
      assert.equal(entry.author, descriptions[line]?.author);
      assert.equal(entry.description, descriptions[line]?.description);
      assert.ok((entry.description ?? "").length > 0);
    }
    const withoutV = await get(app, "/version/1.10.3/extensions/official");
    assert.deepEqual(withoutV.json(), listed, "the version may be given without v");
  });

  test("the lookup for the imager gives the reference and digest to pull", async () => {
    const { sources } = await serve(await factoryConfig(argv(), join(scratch.dir, "data")));
    const image = extensionImages("v1.8.2").find((i) => i.repository === "siderolabs/testbed-hello");
    assert.ok(image);
    const found = await sources.catalogs.extension("v1.8.2", "siderolabs/testbed-hello");
    assert.equal(found.digest, image.digest);
    assert.equal(found.ref, `${registry.host}/siderolabs/testbed-hello:${image.tag}`);
    assert.equal(found.pull, `${registry.host}/siderolabs/testbed-hello@${image.digest}`);
    // The pull reference verifies and resolves to the very image the release pushed.
    const verified = await sources.verifier.verify(found.pull);
    assert.equal(verified.digest, image.digest);
    await assert.rejects(sources.catalogs.extension("v1.8.2", "siderolabs/nope"), (err) => isAppError(err, "NotFound"));
  });

  test("malformed versions answer 400 naming them; versions not offered answer 404", async () => {
    const { app } = await serve(await factoryConfig(argv(), join(scratch.dir, "data")));
    for (const bad of ["1.10", "latest-dev", "v01.10.3", "vv1.10.3"]) {
      for (const kind of ["extensions", "overlays"]) {
        const res = await get(app, `/version/${bad}/${kind}/official`);
        assert.equal(res.statusCode, 400, `${bad} ${kind}`);
        assert.ok(res.body.includes(JSON.stringify(bad)), `the message names ${bad}: ${res.body}`);
      }
    }
    for (const unknown of ["1.9.9", "v1.10.4", "1.11.0-beta.2"]) {
      const res = await get(app, `/version/${unknown}/extensions/official`);
      assert.equal(res.statusCode, 404, unknown);
      assert.match(res.body, /not available/);
    }
  });

  test("overlays: the test bed's catalog, and a catalog with an overlay in the API's shape", async () => {
    const { app } = await serve(await factoryConfig(argv(), join(scratch.dir, "data")));
    const testbed = await get(app, "/version/v1.10.3/overlays/official");
    assert.equal(testbed.statusCode, 200, testbed.body);
    assert.deepEqual(
      (testbed.json() as Array<{ name: string; image: string }>).map(({ name, image }) => [name, image]),
      [
        ["testbed_board", "siderolabs/sbc-testbed"],
        ["testbed_broken", "siderolabs/sbc-testbed"],
        ["testbed_arm64_board", "siderolabs/sbc-testbed"],
      ],
    );

    const overlayDigest = `sha256:${"4".repeat(64)}`;
    await maker.push(
      repo("board/overlays"),
      "board/overlays",
      "v1.10.3",
      {
        "overlays.yaml": `overlays:\n  - name: rpi_generic\n    image: ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0\n    digest: ${overlayDigest}\n`,
      },
      sign(),
    );
    const custom = await serve(
      await factoryConfig(argv("-overlay-manifest-image", "board/overlays"), join(scratch.dir, "data")),
    );
    const res = await get(custom.app, "/version/1.10.3/overlays/official");
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), [
      {
        name: "rpi_generic",
        image: "siderolabs/sbc-raspberrypi",
        ref: `${registry.host}/siderolabs/sbc-raspberrypi:v0.1.0`,
        digest: overlayDigest,
      },
    ]);
  });

  test("a catalog signed by someone else is refused with 502 and nothing is served; disabled verification reads it", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const otherKey = join(scratch.dir, "other.pub");
    await writeFile(otherKey, other.publicKey.export({ type: "spki", format: "pem" }));
    const refusing = await serve(
      await factoryConfig(
        ["-image-registry", registry.host, "-insecure-image-registry", "-container-signature-pubkey", otherKey],
        join(scratch.dir, "data"),
      ),
    );
    for (const url of ["/version/v1.10.3/extensions/official", "/version/v1.10.3/overlays/official"]) {
      const res = await get(refusing.app, url);
      assert.equal(res.statusCode, 502, url);
      assert.match(res.body, /refused: no signature matched/);
      assert.doesNotMatch(res.body, /testbed-hello/);
    }

    const disabled = await serve(
      await factoryConfig(
        ["-image-registry", registry.host, "-insecure-image-registry", "-container-signature-disabled"],
        join(scratch.dir, "data"),
      ),
    );
    const res = await get(disabled.app, "/version/v1.10.3/extensions/official");
    assert.equal(res.statusCode, 200);
    assert.equal((res.json() as unknown[]).length, extensionNames.length);
  });

  test("an extra catalog per version is merged; on a clash the extra entry wins and a warning is logged", async () => {
    const teamHello = await maker.push(repo("team/hello"), "team/hello", "1.0.0", { "manifest.yaml": "hello" }, sign());
    const clashDigest = await maker.push(
      repo("team/testbed-hello"),
      "team/testbed-hello",
      "9.9.9",
      { "manifest.yaml": "ours" },
      sign(),
    );
    // A team catalog lists its images under their own host; they are pulled from the catalog's registry.
    const lines = [`ghcr.io/team/hello:1.0.0@${teamHello}`, `ghcr.io/siderolabs/testbed-hello:9.9.9@${clashDigest}`];
    await maker.push(
      repo("team/extensions"),
      "team/extensions",
      "v1.10.3",
      {
        "image-digests": `${lines.join("\n")}\n`,
        "descriptions.yaml": `${lines[0]}:\n  author: Team\n  description: Hello from the team\n`,
      },
      sign(),
    );
    const log = new RecordingLog();
    const { app } = await serve(
      await factoryConfig(
        argv("-extra-extensions-catalog", `${registry.host}/team/extensions:{version}`),
        join(scratch.dir, "data"),
      ),
      { log },
    );
    const res = await get(app, "/version/v1.10.3/extensions/official");
    assert.equal(res.statusCode, 200, res.body);
    const listed = res.json() as Record<string, string>[];
    assert.deepEqual(listed.map((e) => e.name).sort(), [...extensionNames, "team/hello"].sort());
    assert.deepEqual(
      listed.find((e) => e.name === "team/hello"),
      {
        name: "team/hello",
        ref: `${registry.host}/team/hello:1.0.0`,
        digest: teamHello,
        author: "Team",
        description: "Hello from the team",
      },
    );
    const hello = listed.find((e) => e.name === "siderolabs/testbed-hello");
    assert.equal(hello?.digest, clashDigest, "the extra entry wins the clash");
    assert.equal(hello?.ref, `${registry.host}/siderolabs/testbed-hello:9.9.9`);
    const clash = log.warnings().find((w) => /overrides/.test(w.message));
    assert.ok(clash, "a warning names the clash");
    assert.equal(clash.details.extension, "siderolabs/testbed-hello");

    // v1.8.2 has no extra catalog: the official list alone, with a warning.
    const older = await get(app, "/version/v1.8.2/extensions/official");
    assert.equal(older.statusCode, 200);
    assert.deepEqual((older.json() as Record<string, string>[]).map((e) => e.name).sort(), extensionNames);
    assert.ok(log.warnings().some((w) => /not published/.test(w.message) && w.details.version === "v1.8.2"));
  });

  test("an unsigned extra catalog is refused like any source image", async () => {
    await maker.push(repo("team/unsigned"), "team/unsigned", "v1.10.3", {
      "image-digests": `ghcr.io/team/hello:1.0.0@sha256:${"1".repeat(64)}\n`,
    });
    const { app } = await serve(
      await factoryConfig(
        argv("-extra-extensions-catalog", `${registry.host}/team/unsigned:{version}`),
        join(scratch.dir, "data"),
      ),
    );
    const res = await get(app, "/version/v1.10.3/extensions/official");
    assert.equal(res.statusCode, 502);
    assert.match(res.body, /team\/unsigned:v1\.10\.3: refused: no signature found/);
  });

  test("a hostile catalog cannot make the factory read outside the image", async () => {
    const cases = [
      // An absolute link means "inside the image": it is resolved in the tree, where nothing is.
      { name: "team/hostile-absolute", target: "/etc/hostname", expected: /no image-digests file/ },
      // A relative link that climbs out is refused while flattening.
      { name: "team/hostile-relative", target: "../../../../../../etc/hostname", expected: /escapes the root/ },
    ];
    for (const { name, target, expected } of cases) {
      await maker.push(repo(name), name, "v1.10.3", [{ type: "symlink", path: "image-digests", target }], sign());
      const { app } = await serve(
        await factoryConfig(
          argv("-extra-extensions-catalog", `${registry.host}/${name}:{version}`),
          join(scratch.dir, "data"),
        ),
      );
      const res = await get(app, "/version/v1.10.3/extensions/official");
      assert.equal(res.statusCode, 502, name);
      assert.ok(res.body.includes(name), res.body);
      assert.match(res.body, expected);
    }
  });

  test("a catalog is served from memory and re-read after the registry refresh interval", async () => {
    const clock = new ManualClock();
    const lineA = `ghcr.io/team/a:1@sha256:${"a".repeat(64)}`;
    const lineB = `ghcr.io/team/b:1@sha256:${"b".repeat(64)}`;
    const push = (line: string) =>
      maker.push(repo("team/moving"), "team/moving", "v1.10.3", { "image-digests": `${line}\n` }, sign());
    await push(lineA);
    const config = await factoryConfig(
      argv("-extra-extensions-catalog", `${registry.host}/team/moving:{version}`),
      join(scratch.dir, "data"),
    );
    const { sources } = await serve(config, { clock });
    const names = async () =>
      (await sources.catalogs.extensions("v1.10.3")).map((e) => e.name).filter((n) => n.startsWith("team/"));
    assert.deepEqual(await names(), ["team/a"]);

    await push(lineB);
    clock.advance(config.registryRefreshIntervalMs - 1);
    assert.deepEqual(await names(), ["team/a"], "within the interval: from memory");
    clock.advance(1);
    assert.deepEqual(await names(), ["team/a"], "the old list is served while it is re-read");
    await sources.catalogs.settled();
    assert.deepEqual(await names(), ["team/b"]);
  });
});
