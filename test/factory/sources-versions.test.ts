// The versions service against a real registry (the embedded server over HTTP, read with the real client):
// the imager repository's tags with the upstream rules, served from memory, re-read after the recheck
// interval (a clock moved by hand) one read at a time, and a registry outage that keeps the last good list
// while saying so in the logs, the state and the metrics.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FactoryConfig } from "../../src/factory/config/model.ts";
import { createSources, type FactorySources } from "../../src/factory/sources/index.ts";
import { RegistryClient } from "../../src/oci/client/index.ts";
import type { ImageReference } from "../../src/oci/reference.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import {
  factoryConfig,
  ImageMaker,
  ManualClock,
  RecordingLog,
  RecordingMetrics,
  scratchDir,
  sourcesApp,
} from "./sources-helpers.ts";

const minute = 60_000;
// What a release registry holds: releases of three minors, pre-releases of the newest and of an older minor,
// a pre-release kind upstream does not offer, a tag without "v", and tags that are not versions at all.
const tags = [
  "v1.8.2",
  "1.9.0",
  "v1.10.3",
  "v1.10.4-rc.1",
  "v1.11.0-alpha.1",
  "v1.11.0-beta.1",
  "v1.11.0-foo.1",
  "latest-dev",
  "main",
];

describe("Talos versions from a registry", () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  let baseConfig: FactoryConfig;
  let maker: ImageMaker;
  const running: FactorySources[] = [];
  const clients: RegistryClient[] = [];

  const pushImagerTag = (tag: string, repository = "siderolabs/imager", into = registry) => {
    const access = new RegistryClient({ insecure: [into.host], retries: 0 });
    return maker
      .push(access.repository(`${into.host}/${repository}`), repository, tag, { "usr/install/amd64/vmlinuz": tag })
      .finally(() => access.close());
  };

  function sources(
    config: FactoryConfig,
    options: { clock?: ManualClock; log?: RecordingLog; metrics?: RecordingMetrics; access?: RegistryClient } = {},
  ) {
    // As the service does: the image registry is reached insecurely when configured so.
    const access =
      options.access ??
      new RegistryClient({ insecure: config.images.insecure ? [config.images.registry] : false, retries: 0 });
    if (options.access === undefined) clients.push(access);
    const made = createSources(config, {
      client: access,
      log: options.log ?? new RecordingLog(),
      metrics: options.metrics,
      clock: options.clock,
    });
    running.push(made);
    return made;
  }

  before(async () => {
    scratch = await scratchDir("sources-versions-");
    maker = new ImageMaker(join(scratch.dir, "layers"));
    registry = await startEmbeddedRegistry();
    client = new RegistryClient({ insecure: [registry.host], retries: 0 });
    for (const tag of tags) await pushImagerTag(tag);
    baseConfig = await factoryConfig(
      ["-image-registry", registry.host, "-insecure-image-registry", "-container-signature-disabled"],
      join(scratch.dir, "data"),
    );
  });
  after(async () => {
    for (const s of running) await s.stop();
    for (const c of clients) await c.close();
    await client?.close();
    await registry?.stop();
    await scratch?.remove();
  });

  test("tags that read as semver are offered, pre-releases only of the newest minor, sorted", async () => {
    const s = sources(baseConfig);
    assert.equal(s.ready(), false, "not ready before the first read");
    await s.start();
    assert.equal(s.ready(), true);
    assert.deepEqual(await s.versions.names(), ["v1.8.2", "v1.9.0", "v1.10.3", "v1.11.0-alpha.1", "v1.11.0-beta.1"]);
    // The tag without "v" is printed as upstream prints versions but pulled by its own name.
    assert.equal(s.versions.resolve("1.9.0")?.tag, "1.9.0");
    assert.equal(s.versions.latest()?.name, "v1.10.3", "latest is the newest version that is not a pre-release");
  });

  test("has() takes the version with or without v and nothing else", async () => {
    const s = sources(baseConfig);
    await s.start();
    assert.equal(s.versions.has("1.10.3"), true);
    assert.equal(s.versions.has("v1.10.3"), true);
    assert.equal(s.versions.has("v1.11.0-beta.1"), true);
    for (const absent of ["1.10", "v1.10.4-rc.1", "latest-dev", "v1.11.0-foo.1", "1.12.0"])
      assert.equal(s.versions.has(absent), false, absent);
  });

  test("the minimum version and broken versions are left out; ?broken=true lists the broken ones", async () => {
    const config = await factoryConfig(
      [
        "-image-registry",
        registry.host,
        "-insecure-image-registry",
        "-container-signature-disabled",
        "-min-talos-version",
        "1.9.0",
      ],
      join(scratch.dir, "data"),
    );
    const s = sources({
      ...config,
      versions: { ...config.versions, brokenTalosVersions: ["1.10.3", "1.11.0-alpha.1"] },
    });
    await s.start();
    const app = await sourcesApp(s);
    try {
      const listed = await app.inject({ method: "GET", url: "/versions" });
      assert.equal(listed.statusCode, 200);
      assert.match(String(listed.headers["content-type"]), /^application\/json/);
      assert.deepEqual(listed.json(), ["v1.9.0", "v1.11.0-beta.1"]);
      const broken = await app.inject({ method: "GET", url: "/versions?broken=true" });
      assert.deepEqual(broken.json(), ["v1.10.3", "v1.11.0-alpha.1"]);
    } finally {
      await app.close();
    }
  });

  test("the list is served from memory and re-read once the recheck interval has passed, one read at a time", async () => {
    const clock = new ManualClock();
    let reads = 0;
    const counting = (ref: ImageReference) => {
      const repository = client.repository(ref);
      const listTags = repository.listTags.bind(repository);
      repository.listTags = (options) => {
        reads++;
        return listTags(options);
      };
      return repository;
    };
    const config = { ...baseConfig, images: { ...baseConfig.images, imager: `${registry.host}/refresh/imager` } };
    await pushImagerTag("v1.10.0", "refresh/imager");
    const made = createSources(config, { client: counting, log: new RecordingLog(), clock });
    running.push(made);
    await made.start();
    assert.deepEqual(await made.versions.names(), ["v1.10.0"]);
    assert.equal(reads, 1);

    await pushImagerTag("v1.10.1", "refresh/imager");
    clock.advance(config.versions.recheckIntervalMs - 1);
    assert.deepEqual(await made.versions.names(), ["v1.10.0"], "still the list in memory");
    assert.equal(reads, 1, "no read before the interval");

    clock.advance(1); // the background timer fires
    await Promise.all([made.versions.refresh(), made.versions.refresh(), made.versions.names()]);
    assert.equal(reads, 2, "callers during a read share it");
    assert.deepEqual(await made.versions.names(), ["v1.10.0", "v1.10.1"]);
    assert.equal(config.versions.recheckIntervalMs, 15 * minute, "the upstream default interval");
  });

  test("a registry outage keeps the last good list and says so", async () => {
    const second = await startEmbeddedRegistry();
    try {
      await pushImagerTag("v1.10.3", "siderolabs/imager", second);
      const config = await factoryConfig(
        ["-image-registry", second.host, "-insecure-image-registry", "-container-signature-disabled"],
        join(scratch.dir, "data"),
      );
      const clock = new ManualClock();
      const log = new RecordingLog();
      const metrics = new RecordingMetrics();
      const s = sources(config, { clock, log, metrics });
      await s.start();
      assert.deepEqual(await s.versions.names(), ["v1.10.3"]);
      assert.equal(s.versions.state().stale, false);

      await second.stop();
      clock.advance(config.versions.recheckIntervalMs);
      await s.versions.refresh();
      const state = s.versions.state();
      assert.equal(state.stale, true);
      assert.equal(state.ready, true, "still ready: the last good list is served");
      assert.ok(state.lastError && state.lastError.length > 0, "the failure is exposed");
      assert.deepEqual(await s.versions.names(), ["v1.10.3"]);
      assert.ok(
        log.warnings().some((w) => /last good list/.test(w.message) && w.details.stale === true),
        "a warning says the list is stale",
      );
      assert.deepEqual(metrics.stale, [false, true]);
      assert.deepEqual(
        metrics.refreshes.map((r) => r.outcome),
        ["ok", "error"],
      );
      const app = await sourcesApp(s);
      try {
        const res = await app.inject({ method: "GET", url: "/versions" });
        assert.equal(res.statusCode, 200);
        assert.deepEqual(res.json(), ["v1.10.3"]);
      } finally {
        await app.close();
      }
    } finally {
      await second.stop();
    }
  });

  test("with no list ever read, /versions answers 502 and the service is not ready; it retries on its own", async () => {
    const down = await startEmbeddedRegistry();
    const host = down.host;
    await down.stop();
    const config = await factoryConfig(
      ["-image-registry", host, "-insecure-image-registry", "-container-signature-disabled"],
      join(scratch.dir, "data"),
    );
    const clock = new ManualClock();
    const s = sources(config, { clock });
    await s.start();
    assert.equal(s.ready(), false);
    assert.equal(clock.pendingTimers, 1, "a retry is scheduled");
    const firstAttempt = s.versions.state().lastAttemptAt;
    clock.advance(2000); // the first retry comes well before the recheck interval
    await s.versions.refresh();
    assert.ok((s.versions.state().lastAttemptAt ?? 0) > (firstAttempt ?? 0), "it tried again");
    assert.equal(s.versions.state().stale, true);
    const app = await sourcesApp(s);
    try {
      const res = await app.inject({ method: "GET", url: "/versions" });
      assert.equal(res.statusCode, 502);
      assert.match(res.body, /Talos version list is not available/);
    } finally {
      await app.close();
    }
  });
});
