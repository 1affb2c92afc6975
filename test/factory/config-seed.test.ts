// The seed deployment command (quoted in README.md, as the talos-boot-assets project deploys it) must start the factory
// as written: the same flags in the same order, with only paths, the listen address and the domain changed.
// The regexps are given as the program receives them once a shell has quoted them: `\.`, not `\\.`.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import type { FactoryConfig } from "../../src/factory/config/model.ts";
import { isConfigError } from "../../src/factory/config/problems.ts";
import { wellKnownCertificatesFromDebian } from "../../src/imager/well-known-certificates.ts";
import type { WellKnownCertificates } from "../../src/talos/secureboot-database.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { type KeyFiles, makeKeyFiles } from "./config-fixtures.ts";

const issuerRegExp = "(https://token\\.actions\\.githubusercontent\\.com)|(https://accounts\\.google.com)";
const subjectRegExp =
  "(https://github.com/jfroy/talos-boot-assets/\\.github/workflows/assets\\.yaml@refs/heads/release-.+)|(.+@siderolabs\\.com)";

function seedArgv(keys: KeyFiles): string[] {
  return [
    "-cache-repository",
    "localhost:5000/cache",
    "-cache-signing-key-path",
    keys.cacheKey,
    "-container-signature-issuer-regexp",
    issuerRegExp,
    "-container-signature-subject-regexp",
    subjectRegExp,
    "-external-url",
    "https://factory.example.test/",
    "-http-port",
    "127.0.0.1:8080",
    "-image-registry",
    "ghcr.io",
    "-installer-external-repository",
    "factory.example.test/installer",
    "-installer-internal-repository",
    "localhost:5000/installer",
    "-min-talos-version",
    "1.8.2",
    "-schematic-service-repository",
    "localhost:5000/schematics",
    "-secureboot",
    "-secureboot-pcr-key-path",
    keys.pcrKey,
    "-secureboot-signing-cert-path",
    keys.ukiCert,
    "-secureboot-signing-key-path",
    keys.ukiKey,
    "-talos-versions-recheck-interval",
    "1h",
  ];
}

const githubWorkflow = {
  issuer: "https://token.actions.githubusercontent.com",
  subject: "https://github.com/jfroy/talos-boot-assets/.github/workflows/assets.yaml@refs/heads/release-1.9",
};
const siderolabsAccount = { issuer: "https://accounts.google.com", subject: "release-bot@siderolabs.com" };

// Each of these matches the seed regexps when they are searched unanchored (as upstream and cosign do).
const unanchoredBypasses = [
  {
    why: "another repository whose subject merely contains the trusted workflow",
    issuer: "https://token.actions.githubusercontent.com",
    subject:
      "https://github.com/mallory/fork/.github/workflows/x.yaml@refs/heads/https://github.com/jfroy/talos-boot-assets/.github/workflows/assets.yaml@refs/heads/release-1",
  },
  {
    why: "an address at a domain that only starts with siderolabs.com",
    issuer: "https://accounts.google.com",
    subject: "mallory@siderolabs.com.evil.example",
  },
  {
    why: "an issuer that only starts with the trusted one",
    issuer: "https://accounts.google.com.evil.example",
    subject: "release-bot@siderolabs.com",
  },
];

describe("the seed deployment command", () => {
  let keys: KeyFiles;
  let config: FactoryConfig;

  before(async () => {
    keys = await makeKeyFiles();
    config = await parseFactoryCommandLine(seedArgv(keys), {}, { cwd: keys.dir });
  });
  after(() => keys.cleanup());

  it("listens where it is told and keeps the domain as the external URL", () => {
    assert.deepEqual(config.http.listen, { host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" });
    assert.equal(config.http.externalUrl, "https://factory.example.test/");
    assert.equal(config.http.externalPxeUrl, "https://factory.example.test/");
  });

  it("reads images from ghcr.io and keeps its repositories in the local registry", () => {
    assert.equal(config.images.imager, "ghcr.io/siderolabs/imager");
    assert.equal(config.images.installerBase, "ghcr.io/siderolabs/installer-base");
    assert.equal(config.images.extensionManifest, "ghcr.io/siderolabs/extensions");
    assert.deepEqual(config.stores.cache, {
      kind: "remote",
      registry: "localhost:5000",
      repository: "cache",
      insecure: false,
      reference: "localhost:5000/cache",
    });
    assert.equal(
      config.stores.schematics.kind === "remote" && config.stores.schematics.reference,
      "localhost:5000/schematics",
    );
    assert.equal(
      config.stores.installerInternal.kind === "remote" && config.stores.installerInternal.reference,
      "localhost:5000/installer",
    );
    assert.equal(config.stores.installerExternal?.reference, "factory.example.test/installer");
  });

  it("takes the version floor and the recheck interval", () => {
    assert.equal(config.versions.minTalosVersion, "1.8.2");
    assert.equal(config.versions.recheckIntervalMs, 60 * 60 * 1000);
  });

  it("loads the cache signing key and the Secure Boot keys", () => {
    assert.equal(config.cacheSigningKey.explicit, true);
    assert.equal(config.cacheSigningKey.privateKey?.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.equal(config.secureBoot.enabled, true);
    if (!config.secureBoot.enabled) return;
    assert.match(config.secureBoot.signingCert.subject, /CN=test UKI signing/);
    assert.equal(config.secureBoot.pcrKey.asymmetricKeyType, "rsa");
  });

  it("trusts the GitHub workflow identity and the siderolabs.com accounts", () => {
    const policy = config.signatures.loaded.keyless?.policy;
    assert.ok(policy, "keyless verification is configured");
    assert.equal(config.signatures.options.identities.length, 1);
    assert.ok(policy.match(githubWorkflow), "the seed workflow's own signatures");
    assert.ok(policy.match(siderolabsAccount), "the vendor's extension signatures");
  });

  for (const bypass of unanchoredBypasses) {
    it(`does not trust ${bypass.why}`, () => {
      // The bypass is real for an unanchored search…
      assert.ok(new RegExp(subjectRegExp).test(bypass.subject) && new RegExp(issuerRegExp).test(bypass.issuer));
      // …and refused by the whole-string policy.
      assert.equal(config.signatures.loaded.keyless?.policy.match(bypass), undefined);
    });
  }

  it("is frozen", () => {
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.http) && Object.isFrozen(config.stores.cache));
    assert.throws(() => {
      (config.http as { externalUrl: string }).externalUrl = "https://elsewhere.example/";
    }, TypeError);
  });
});

describe("-secureboot-well-known-certificates-dir (an addition: upstream embeds the certificates)", () => {
  let keys: KeyFiles;
  let certs: WellKnownCertificates;

  before(async () => {
    keys = await makeKeyFiles();
    certs = await wellKnownCertificatesFromDebian(bootAssetsCacheDir());
  });
  after(() => keys.cleanup());

  it("is checked at start: a directory with every certificate is taken", async () => {
    const dir = join(keys.dir, "all");
    await mkdir(dir);
    for (const [i, der] of [...certs.kek, ...certs.db].entries()) await writeFile(join(dir, `cert${i}.der`), der);
    const config = await parseFactoryCommandLine(
      [...seedArgv(keys), "-secureboot-well-known-certificates-dir", "all"],
      {},
      { cwd: keys.dir },
    );
    assert.equal(config.secureBoot.enabled && config.secureBoot.wellKnownCertificatesDir, dir);
  });

  it("a directory lacking one is a problem naming the flag, the directory and the certificate", async () => {
    const dir = join(keys.dir, "some");
    await mkdir(dir);
    for (const [i, der] of [...certs.kek, ...certs.db.slice(1)].entries())
      await writeFile(join(dir, `cert${i}.der`), der);
    await assert.rejects(
      parseFactoryCommandLine(
        [...seedArgv(keys), "-secureboot-well-known-certificates-dir", "some"],
        {},
        { cwd: keys.dir },
      ),
      (err: unknown) => {
        assert.ok(isConfigError(err));
        assert.equal(err.problems.length, 1, err.message);
        assert.match(
          err.problems[0] as string,
          /^-secureboot-well-known-certificates-dir some lacks the well-known UEFI certificate "Microsoft Corporation UEFI CA 2011"/,
        );
        return true;
      },
    );
  });

  it("without -secureboot it is a problem", async () => {
    const argv = seedArgv(keys);
    argv.splice(argv.indexOf("-secureboot"), 7);
    await assert.rejects(
      parseFactoryCommandLine([...argv, "-secureboot-well-known-certificates-dir", "x"], {}, { cwd: keys.dir }),
      /-secureboot-well-known-certificates-dir: set, but Secure Boot is not enabled/,
    );
  });
});
