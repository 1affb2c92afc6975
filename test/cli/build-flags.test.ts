// The `build` command line, read in process: the factory's own flag names with Go's rules (one or two
// dashes), every problem reported at once, flags after an asset refused, and the factory's signature checks.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readBuildCommandLine } from "../../src/cli/build.ts";
import { isConfigError } from "../../src/factory/config/index.ts";

describe("boot-assets build: command line", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "build-flags-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("factory flag names with one or two dashes; defaults as the factory's", async () => {
    const line = await readBuildCommandLine(
      [
        "--image-registry",
        "registry.example:5000",
        "-talos-version=1.10.3",
        "--schematic",
        "s.yaml",
        "-insecure",
        "kernel-amd64",
        "kernel-amd64",
      ],
      {},
      dir,
    );
    assert.ok(!("help" in line));
    assert.equal(line.talosVersion, "v1.10.3");
    assert.equal(line.schematicFile, join(dir, "s.yaml"));
    assert.equal(line.outputDir, dir);
    assert.deepEqual(line.assets, ["kernel-amd64"]);
    assert.equal(line.settings.images.imager, "registry.example:5000/siderolabs/imager");
    assert.equal(line.settings.images.installerBase, "registry.example:5000/siderolabs/installer-base");
    assert.equal(line.settings.images.insecure, true);
    // No flag: the vendor's keyless identity, as the factory defaults to.
    assert.equal(line.settings.signatures.options.identities.length, 1);
    assert.equal(line.settings.signatures.options.publicKeyFile, undefined);
  });

  test("every problem at once: missing flags, no asset, a bad signature option", async () => {
    await assert.rejects(
      readBuildCommandLine(["-container-signature-pubkey", join(dir, "missing.pub")], {}, dir),
      (err: unknown) => {
        assert.ok(isConfigError(err));
        const text = err.problems.join("\n");
        assert.match(text, /-talos-version is required/);
        assert.match(text, /-schematic is required/);
        assert.match(text, /no asset to build/);
        assert.match(text, /-container-signature-pubkey .*missing\.pub/);
        return true;
      },
    );
  });

  test("-ca-file and repeatable -certs-dir: the factory's registry trust flags, paths from the working directory", async () => {
    const { execFileSync } = await import("node:child_process");
    const { mkdir } = await import("node:fs/promises");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        "-keyout",
        join(dir, "ca.key"),
        "-out",
        join(dir, "ca.pem"),
      ]),
      {
        stdio: "ignore",
      },
    );
    await mkdir(join(dir, "certs.d"), { recursive: true });
    const args = ["--talos-version", "v1.10.3", "--schematic", "s.yaml"];
    const line = await readBuildCommandLine(
      [...args, "--ca-file", "ca.pem", "-certs-dir=certs.d", "--certs-dir", dir, "kernel-amd64"],
      {},
      dir,
    );
    assert.ok(!("help" in line));
    assert.deepEqual(line.settings.registryTls, {
      caFile: join(dir, "ca.pem"),
      certsDirs: [join(dir, "certs.d"), dir],
    });
    await assert.rejects(readBuildCommandLine([...args, "-certs-dir", "nowhere", "kernel-amd64"], {}, dir), (err) => {
      assert.ok(isConfigError(err));
      assert.deepEqual(err.problems, ["-certs-dir nowhere: no such directory"]);
      return true;
    });
  });

  test("an undefined flag and a flag after an asset are refused by name", async () => {
    await assert.rejects(
      readBuildCommandLine(["-no-such-flag"], {}, dir),
      /flag provided but not defined: -no-such-flag/,
    );
    await assert.rejects(
      readBuildCommandLine(
        ["--talos-version", "v1.10.3", "--schematic", "s", "kernel-amd64", "--output-dir", "x"],
        {},
        dir,
      ),
      /--output-dir: flags go before the asset names/,
    );
  });

  test("the public key flag loads the key like the factory does", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const key = join(dir, "cosign.pub");
    await writeFile(
      key,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }),
    );
    const line = await readBuildCommandLine(
      ["--talos-version", "v1.10.3", "--schematic", "s", "-container-signature-pubkey", key, "cmdline-metal-amd64"],
      {},
      dir,
    );
    assert.ok(!("help" in line));
    assert.ok(line.settings.signatures.loaded.key !== undefined);
    assert.equal(line.settings.signatures.options.publicKeyFile, key);
  });

  test("-h asks for usage", async () => {
    assert.deepEqual(await readBuildCommandLine(["-h"], {}, dir), { help: true });
  });
});
