// The `--config` form (YAML, JSON, .env files and `env=PREFIX` environment), how sources combine with legacy
// flags (later wins, env=IF_ first), and the refusals: unknown keys, features not built yet, malformed values
// and unusable key files, each one line naming the flag or key.

import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConfigError, type FactoryConfig, parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { describeFactoryConfig } from "../../src/factory/config/summary.ts";
import { type KeyFiles, makeKeyFiles } from "./config-fixtures.ts";

let keys: KeyFiles;
before(async () => {
  keys = await makeKeyFiles();
});
after(() => keys.cleanup());

async function file(name: string, text: string): Promise<string> {
  const path = join(keys.dir, name);
  await writeFile(path, text);
  return path;
}

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<FactoryConfig> =>
  parseFactoryCommandLine(argv, env, { cwd: keys.dir });

async function problems(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<readonly string[]> {
  try {
    await parse(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      assert.equal(err.kind, "BadRequest");
      for (const line of err.problems) assert.doesNotMatch(line, /\n/, "one line per problem");
      return err.problems;
    }
    throw err;
  }
  assert.fail("expected a ConfigError");
}

async function singleProblem(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const found = await problems(argv, env);
  assert.equal(found.length, 1, `exactly one problem, got: ${found.join(" | ")}`);
  return found[0] as string;
}

describe("configuration files", () => {
  it("YAML: nested keys, a repository as one string or as parts, lists and durations", async () => {
    const yaml = await file(
      "factory.yaml",
      [
        "http:",
        "  httpListenAddr: 127.0.0.1:9000",
        "  externalURL: https://factory.example.test/base",
        "  allowedOrigins: [https://ui.example.test]",
        "build: {minTalosVersion: v1.9.0, maxConcurrency: 2, brokenTalosVersions: [1.9.1]}",
        "cache:",
        "  oci: registry.example.test:5000/factory/cache",
        "  schematic: {negativeTTL: 1m30s}",
        "artifacts:",
        "  schematic: {registry: registry.example.test:5000, namespace: factory, repository: schematics, insecure: true}",
        "  talosVersionRecheckInterval: 300ms",
        "metrics: {addr: ''}",
      ].join("\n"),
    );
    const config = await parse(["--config", yaml]);
    assert.deepEqual(config.http.listen, { host: "127.0.0.1", port: 9000, text: "127.0.0.1:9000" });
    assert.equal(config.http.externalUrl, "https://factory.example.test/base/");
    assert.deepEqual(config.http.allowedOrigins, ["https://ui.example.test"]);
    assert.equal(config.versions.minTalosVersion, "1.9.0");
    assert.deepEqual(config.versions.brokenTalosVersions, ["1.9.1"]);
    assert.equal(config.maxConcurrency, 2);
    assert.equal(config.schematicCache.negativeTtlMs, 90_000);
    assert.equal(config.versions.recheckIntervalMs, 300);
    assert.equal(config.metricsListen, undefined);
    assert.deepEqual(config.stores.cache, {
      kind: "remote",
      registry: "registry.example.test:5000",
      repository: "factory/cache",
      insecure: false,
      reference: "registry.example.test:5000/factory/cache",
    });
    assert.equal(config.stores.schematics.kind === "remote" && config.stores.schematics.insecure, true);
    assert.equal(
      config.stores.schematics.kind === "remote" && config.stores.schematics.repository,
      "factory/schematics",
    );
  });

  it("JSON, with keys matched case-insensitively as upstream does", async () => {
    const json = await file(
      "factory.json",
      JSON.stringify({ HTTP: { ExternalUrl: "http://10.0.0.5:8080" }, containerSignature: { disabled: true } }),
    );
    const config = await parse(["--config", `file=${json}`, "-metrics-listen-addr="]);
    assert.equal(config.http.externalUrl, "http://10.0.0.5:8080/");
    assert.equal(config.signatures.loaded.disabled, true);
  });

  it(".env: IF_ prefix optional, quotes, comments and export", async () => {
    const env = await file(
      "factory.env",
      [
        "# the factory",
        "export IF_HTTP_EXTERNALURL=https://dotenv.example.test/",
        'BUILD_MAXCONCURRENCY="3"',
        "IF_ARTIFACTS_CORE_REGISTRY=registry.example.test # our mirror",
        'IF_HTTP_ALLOWEDORIGINS=\'["https://a.example","https://b.example"]\'',
      ].join("\n"),
    );
    const config = await parse(["--config", env]);
    assert.equal(config.http.externalUrl, "https://dotenv.example.test/");
    assert.equal(config.maxConcurrency, 3);
    assert.equal(config.images.imager, "registry.example.test/siderolabs/imager");
    assert.deepEqual(config.http.allowedOrigins, ["https://a.example", "https://b.example"]);
  });

  it("several sources in one --config value, comma separated", async () => {
    const a = await file("a.yaml", "build: {maxConcurrency: 4}\n");
    const b = await file("b.json", '{"build": {"maxConcurrency": 5}}');
    assert.equal((await parse([`--config=${a},${b}`])).maxConcurrency, 5);
    assert.equal((await parse([`--config=${b},${a}`])).maxConcurrency, 4);
  });

  it("registry trust (this project's registry.caFile, registry.certsDirs) from YAML and from IF_", async () => {
    await mkdir(join(keys.dir, "certs-a"), { recursive: true });
    await mkdir(join(keys.dir, "certs-b"), { recursive: true });
    const yaml = await file(
      "trust.yaml",
      "registry:\n  caFile: uki-signing-cert.pem\n  certsDirs: [certs-a, certs-b]\n",
    );
    const fromFile = await parse(["--config", yaml]);
    assert.deepEqual(fromFile.registryTls, {
      caFile: keys.ukiCert,
      certsDirs: [join(keys.dir, "certs-a"), join(keys.dir, "certs-b")],
    });
    const summary = describeFactoryConfig(fromFile);
    assert.ok(summary.includes(`trusting registries' certificates also from ${keys.ukiCert}`), summary.join("\n"));
    const fromEnv = await parse([], { IF_REGISTRY_CAFILE: keys.otherCert, IF_REGISTRY_CERTSDIRS: '["certs-b"]' });
    assert.deepEqual(fromEnv.registryTls, { caFile: keys.otherCert, certsDirs: [join(keys.dir, "certs-b")] });
  });

  it("an empty file configures nothing", async () => {
    const empty = await file("empty.yaml", "");
    assert.equal((await parse(["--config", empty])).http.externalUrl, "https://localhost/");
  });
});

describe("precedence: defaults < env=IF_ < the command line from left to right", () => {
  const env = { IF_HTTP_EXTERNALURL: "https://from-env.example/", IF_BUILD_MAXCONCURRENCY: "7" };

  it("env=IF_ is read without being asked for", async () => {
    const config = await parse([], env);
    assert.equal(config.http.externalUrl, "https://from-env.example/");
    assert.equal(config.maxConcurrency, 7);
  });

  it("a config file overrides the environment", async () => {
    const yaml = await file("url.yaml", "http: {externalURL: https://from-file.example/}\n");
    const config = await parse(["--config", yaml], env);
    assert.equal(config.http.externalUrl, "https://from-file.example/");
    assert.equal(config.maxConcurrency, 7, "what the file does not set stays as the environment set it");
  });

  it("a legacy flag after a config file overrides it; one before it is overridden", async () => {
    const yaml = await file("url2.yaml", "http: {externalURL: https://from-file.example/}\n");
    assert.equal(
      (await parse(["--config", yaml, "-external-url", "https://from-flag.example/"], env)).http.externalUrl,
      "https://from-flag.example/",
    );
    assert.equal(
      (await parse(["-external-url", "https://from-flag.example/", "--config", yaml], env)).http.externalUrl,
      "https://from-file.example/",
    );
  });

  it("an explicit --config env=PREFIX applies where it stands", async () => {
    const yaml = await file("url3.yaml", "http: {externalURL: https://from-file.example/}\n");
    const config = await parse(["--config", yaml, "--config", "env=OTHER_"], {
      OTHER_HTTP_EXTERNALURL: "https://from-other-env.example/",
    });
    assert.equal(config.http.externalUrl, "https://from-other-env.example/");
  });

  it("environment names map to keys case-insensitively, _ as the separator, JSON for [ and {", async () => {
    const config = await parse([], {
      IF_CONTAINERSIGNATURE_SUBJECTREGEXP: "builder@example\\.test",
      IF_CONTAINERSIGNATURE_ISSUER: "https://issuer.example.test",
      IF_HTTP_ALLOWEDORIGINS: '["https://x.example"]',
      IF_ARTIFACTS_INSTALLER_INTERNAL: '{"registry":"localhost:5000","repository":"installers","insecure":true}',
    });
    const policy = config.signatures.loaded.keyless?.policy;
    assert.ok(policy?.match({ issuer: "https://issuer.example.test", subject: "builder@example.test" }));
    assert.equal(policy?.match({ issuer: "https://issuer.example.test", subject: "builder@exampleXtest" }), undefined);
    assert.deepEqual(config.http.allowedOrigins, ["https://x.example"]);
    assert.deepEqual(config.stores.installerInternal, {
      kind: "remote",
      registry: "localhost:5000",
      repository: "installers",
      insecure: true,
      reference: "localhost:5000/installers",
    });
  });
});

describe("defaults", () => {
  it("the embedded store under ./data, the vendor identity anchored", async () => {
    const config = await parse([]);
    assert.equal(config.dataDir.root, join(keys.dir, "data"));
    assert.equal(config.dataDir.store, join(keys.dir, "data", "store"));
    assert.equal(config.stores.cache.kind, "embedded");
    assert.equal(config.stores.schematics.kind, "embedded");
    assert.equal(config.stores.installerInternal.kind, "embedded");
    assert.equal(config.stores.installerExternal, undefined);
    assert.equal(config.cacheSigningKey.file, join(keys.dir, "data", "keys", "cache-signing-key.pem"));
    assert.equal(config.cacheSigningKey.privateKey, undefined);
    assert.deepEqual(config.http.listen, { host: undefined, port: 8080, text: ":8080" });
    assert.equal(config.images.imager, "ghcr.io/siderolabs/imager");
    assert.deepEqual(config.registryTls, { caFile: undefined, certsDirs: undefined }, "system roots, default certs.d");
    const policy = config.signatures.loaded.keyless?.policy;
    const google = "https://accounts.google.com";
    assert.ok(policy?.match({ issuer: google, subject: "someone@siderolabs.com" }));
    assert.ok(policy?.match({ issuer: google, subject: "releasemgr-svc@talos-production.iam.gserviceaccount.com" }));
    assert.equal(policy?.match({ issuer: google, subject: "someone@siderolabs.com.evil.example" }), undefined);
    assert.equal(policy?.match({ issuer: google, subject: "@siderolabs.com" }), undefined);
  });

  it("a public key alone, with keyless verification switched off by an empty subject regexp", async () => {
    const config = await parse(["-container-signature-pubkey", keys.cosignPub, "-container-signature-subject-regexp="]);
    assert.equal(config.signatures.loaded.keyless, undefined);
    assert.equal(config.signatures.loaded.key?.hashAlgo, "sha256");
  });
});

describe("refusals, one line each naming the flag or key", () => {
  it("an unknown key in a file names the key and the file", async () => {
    const yaml = await file("unknown.yaml", "http:\n  externalUrl: https://x.example/\n  listen: :1\n");
    assert.equal(
      await singleProblem(["--config", yaml]),
      `http.listen (in ${yaml}): unknown configuration key "http.listen"`,
    );
  });

  it("an unknown IF_ variable names the variable", async () =>
    assert.match(
      await singleProblem([], { IF_HTTP_PORT: ":1" }),
      /^IF_HTTP_PORT \(environment\): unknown configuration key "http.port"/,
    ));

  it("a section given a scalar names it", async () => {
    const yaml = await file("scalar.yaml", "http: 8080\n");
    assert.match(await singleProblem(["--config", yaml]), /^http \(in .*scalar\.yaml\): expected a mapping/);
  });

  it("an unsupported config format, a missing file and an unknown provider", async () => {
    assert.match(
      await singleProblem(["--config", "factory.toml"]),
      /^--config: factory\.toml: unsupported config format "\.toml"/,
    );
    assert.match(
      await singleProblem(["--config", "missing.yaml"]),
      /^--config missing\.yaml: cannot read it \(ENOENT\)/,
    );
    assert.match(await singleProblem(["--config", "vault=secret/x"]), /unsupported config provider "vault"/);
    assert.match(await singleProblem(["--config", "env="]), /env= needs a prefix/);
  });

  it("malformed YAML, duplicate keys and an alias bomb are refused naming the file", async () => {
    const broken = await file("broken.yaml", "http: [\n");
    assert.match(await singleProblem(["--config", broken]), /^--config .*broken\.yaml: not valid YAML/);
    const duplicate = await file("dup.yaml", "build: {maxConcurrency: 1}\nbuild: {maxConcurrency: 2}\n");
    assert.match(await singleProblem(["--config", duplicate]), /not valid YAML \(Map keys must be unique/);
    const levels = ["a: &a [x,x,x,x,x,x,x,x,x]"];
    for (let i = 1; i < 8; i++)
      levels.push(
        `${"abcdefgh"[i]}: &${"abcdefgh"[i]} [${Array(9)
          .fill(`*${"abcdefgh"[i - 1]}`)
          .join(",")}]`,
      );
    const bomb = await file("bomb.yaml", `${levels.join("\n")}\n`);
    const started = Date.now();
    assert.match(
      await singleProblem(["--config", bomb]),
      /^--config .*bomb\.yaml: not usable YAML \(Excessive alias count/,
    );
    assert.ok(Date.now() - started < 5000, "refused fast");
  });

  it("legacy flags for features not built yet are refused by name when set", async () => {
    assert.equal(await singleProblem(["-cache-s3-enabled"]), "-cache-s3-enabled is not supported yet (the S3 cache)");
    assert.equal(
      await singleProblem(["-cache-cdn-host", "cdn.example.test"]),
      "-cache-cdn-host is not supported yet (the CDN cache)",
    );
    assert.match(
      await singleProblem(["-secureboot-azure-key-vault-url", "https://v.example"]),
      /^-secureboot-azure-key-vault-url is not supported yet/,
    );
  });

  it("…but accepted at their default value, as an upstream command line may spell them out", async () => {
    const config = await parse([
      "-cache-s3-enabled=false",
      "-cache-s3-bucket",
      "image-factory",
      "-insecure-cache-s3=0",
    ]);
    assert.equal(config.maxConcurrency, 6);
  });

  it("config keys for features not built yet are refused by key and file", async () => {
    const yaml = await file("cdn.yaml", "cache: {cdn: {enabled: true}}\nauthentication: {enabled: false}\n");
    assert.equal(
      await singleProblem(["--config", yaml]),
      `cache.cdn.enabled (in ${yaml}) is not supported yet (the CDN cache)`,
    );
    assert.match(
      await singleProblem([], { IF_REGISTRY_JOBS: "8" }),
      /^IF_REGISTRY_JOBS \(environment\) is not supported yet/,
    );
  });

  it("a number where a string belongs is refused, not read as YAML's float (1.10 would become 1.1)", async () => {
    const yaml = await file("float.yaml", "build: {minTalosVersion: 1.10}\n");
    assert.equal(
      await singleProblem(["--config", yaml]),
      `build.minTalosVersion (in ${yaml}): expected a string, got the number 1.1: quote it`,
    );
  });

  it("malformed URLs", async () => {
    assert.match(await singleProblem(["-external-url", "factory.example.test"]), /^-external-url: not an absolute URL/);
    assert.match(
      await singleProblem(["-external-pxe-url", "ftp://pxe.example/"]),
      /^-external-pxe-url: must be an http or https URL/,
    );
    assert.match(
      await singleProblem(["-external-url", "https://x.example/?a=1"]),
      /^-external-url: must not have a query/,
    );
  });

  it("malformed durations", async () => {
    assert.match(
      await singleProblem(["-talos-versions-recheck-interval", "1d"]),
      /^-talos-versions-recheck-interval: unknown unit "d"/,
    );
    assert.match(
      await singleProblem(["-registry-refresh-interval=0"]),
      /^-registry-refresh-interval: must be more than zero/,
    );
    const yaml = await file("ttl.yaml", "cache: {schematic: {negativeTTL: 30}}\n");
    assert.match(
      await singleProblem(["--config", yaml]),
      /^cache\.schematic\.negativeTTL \(in .*\): expected a duration string/,
    );
  });

  it("malformed regexps name the flag", async () => {
    assert.match(
      await singleProblem(["-container-signature-subject-regexp", "(a"]),
      /^-container-signature-subject-regexp "\(a": invalid regular expression/,
    );
    assert.match(
      await singleProblem(["-container-signature-issuer-regexp", "(?<=x)y"]),
      /^-container-signature-issuer-regexp .*invalid regular expression/,
    );
    assert.match(
      await singleProblem([], { IF_CONTAINERSIGNATURE_SUBJECTREGEXP: "[z-a]" }),
      /^IF_CONTAINERSIGNATURE_SUBJECTREGEXP \(environment\) "\[z-a\]": invalid regular expression/,
    );
  });

  it("upstream's unanchored default subject regexp is refused, as it would match nothing here", async () =>
    assert.match(
      await singleProblem(["-container-signature-subject-regexp", "@siderolabs\\.com$"]),
      /^-container-signature-subject-regexp: .*upstream's unanchored default/,
    ));

  it("unusable key files name the flag", async () => {
    assert.equal(
      await singleProblem(["-cache-signing-key-path", "missing.pem"]),
      "-cache-signing-key-path missing.pem: cannot read it (ENOENT)",
    );
    assert.match(
      await singleProblem(["-cache-signing-key-path", keys.notAKey]),
      /^-cache-signing-key-path .*not-a-key\.pem: .*no PEM block/,
    );
    assert.match(
      await singleProblem(["-cache-signing-key-path", keys.pcrKey]),
      /^-cache-signing-key-path .*: a rsa key; cache entries are signed with an ECDSA key/,
    );
    assert.match(
      await singleProblem(["-container-signature-pubkey", keys.cacheKey]),
      /^-container-signature-pubkey .*holds a private key/,
    );
    assert.match(
      await singleProblem(["-container-signature-trusted-root", keys.notAKey]),
      /^-container-signature-trusted-root .*: not JSON/,
    );
    assert.match(
      await singleProblem([
        "-container-signature-pubkey-hashalgo",
        "md5",
        "-container-signature-pubkey",
        keys.cosignPub,
      ]),
      /^-container-signature-pubkey-hashalgo: "md5" is not sha256/,
    );
  });

  it("an unusable -ca-file or -certs-dir names the flag (or key) and the path", async () => {
    assert.equal(await singleProblem(["-ca-file", "missing.pem"]), "-ca-file missing.pem: cannot read it (ENOENT)");
    assert.equal(
      await singleProblem(["--ca-file", keys.notAKey]),
      `--ca-file ${keys.notAKey}: no PEM certificate in it`,
    );
    assert.equal(
      await singleProblem(["-ca-file", keys.cacheKey]),
      `-ca-file ${keys.cacheKey}: no PEM certificate in it`,
      "a private key is not a CA",
    );
    const mangled = await file(
      "mangled-ca.pem",
      (await readFile(keys.ukiCert, "utf8")).replace(/\n[A-Za-z0-9+/]{64}\n/, "\nAAAA\n"),
    );
    assert.match(
      await singleProblem(["-ca-file", mangled]),
      /^-ca-file .*mangled-ca\.pem: certificate 1 is not usable/,
    );
    assert.equal(await singleProblem(["-ca-file", keys.dir]), `-ca-file ${keys.dir}: not a regular file`);
    assert.equal(await singleProblem(["-certs-dir", "no-such-dir"]), "-certs-dir no-such-dir: no such directory");
    assert.equal(
      await singleProblem(["-certs-dir", keys.dir, "-certs-dir", keys.ukiCert]),
      `-certs-dir ${keys.ukiCert}: not a directory`,
    );
    const yaml = await file("bad-trust.yaml", "registry: {caFile: not-a-key.pem}\n");
    assert.equal(
      await singleProblem(["--config", yaml]),
      `registry.caFile (in ${yaml}) not-a-key.pem: no PEM certificate in it`,
    );
  });

  it("Secure Boot: keys required when enabled, refused when not, certificate must match the key", async () => {
    const sb = [
      "-secureboot-signing-key-path",
      keys.ukiKey,
      "-secureboot-signing-cert-path",
      keys.ukiCert,
      "-secureboot-pcr-key-path",
      keys.pcrKey,
    ];
    assert.deepEqual(await problems(["-secureboot", "-secureboot-pcr-key-path", keys.pcrKey]), [
      "-secureboot: needs -secureboot-signing-key-path",
      "-secureboot: needs -secureboot-signing-cert-path",
    ]);
    assert.match(
      await singleProblem(sb.slice(0, 2)),
      /^-secureboot-signing-key-path: set, but Secure Boot is not enabled \(-secureboot\)/,
    );
    const mismatched = [
      "-secureboot",
      ...sb.slice(0, 2),
      "-secureboot-signing-cert-path",
      keys.otherCert,
      "-secureboot-pcr-key-path",
      keys.pcrKey,
    ];
    assert.match(
      await singleProblem(mismatched),
      /^-secureboot-signing-cert-path .*other-cert\.pem: does not certify the key of -secureboot-signing-key-path/,
    );
    assert.match(
      await singleProblem(["-secureboot", ...sb.slice(0, 4), "-secureboot-pcr-key-path", keys.ukiCert]),
      /^-secureboot-pcr-key-path .*: no PEM private key/,
    );
    assert.equal((await parse(["-secureboot=true", ...sb])).secureBoot.enabled, true);
  });

  it("repositories need a registry host and no tag; insecure needs a repository", async () => {
    assert.match(
      await singleProblem(["-cache-repository", "cache"]),
      /^-cache-repository "cache": needs a registry host/,
    );
    assert.match(
      await singleProblem(["-schematic-service-repository", "localhost:5000/schematics:v1"]),
      /^-schematic-service-repository .*: a repository takes no tag/,
    );
    assert.match(
      await singleProblem(["-insecure-cache-repository"]),
      /^-insecure-cache-repository: set, but there is no repository \(-cache-repository\)/,
    );
    assert.match(await singleProblem(["-image-registry", "ghcr"]), /^-image-registry: not a registry host/);
    assert.match(
      await singleProblem(["-imager-image", "siderolabs/imager:v1.9.0"]),
      /^-imager-image: an image name takes no tag/,
    );
    assert.match(
      await singleProblem(["-extra-extensions-catalog", "team/extensions:{version}"]),
      /^-extra-extensions-catalog: .*needs a registry host/,
    );
  });

  it("listen addresses, versions, numbers and the log level", async () => {
    assert.match(await singleProblem(["-http-port", "8080"]), /^-http-port: missing port/);
    assert.match(await singleProblem(["-http-port", ":99999"]), /^-http-port: invalid port "99999"/);
    assert.match(
      await singleProblem(["-metrics-listen-addr", ":8080"]),
      /^-metrics-listen-addr: :8080 clashes with -http-port :8080/,
    );
    assert.match(await singleProblem(["-min-talos-version", "latest"]), /^-min-talos-version: not a version/);
    assert.match(
      await singleProblem(["-asset-builder-max-concurrency", "many"]),
      /^-asset-builder-max-concurrency: invalid integer "many"/,
    );
    assert.match(
      await singleProblem(["-asset-builder-max-concurrency", "0"]),
      /^-asset-builder-max-concurrency: 0 is not between 1 and 1024/,
    );
    assert.match(await singleProblem(["-log-level", "verbose"]), /^-log-level: "verbose" is not one of/);
  });

  it("every problem is reported at once", async () => {
    const found = await problems([
      "-external-url",
      "nope",
      "-talos-versions-recheck-interval",
      "soon",
      "-cache-s3-enabled",
      "-http-port",
      "x",
    ]);
    assert.equal(found.length, 4, found.join(" | "));
  });
});
