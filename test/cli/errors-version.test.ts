// The CLI's front door: `--version`, and one explanation of registry failures for every command.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { isolatedEnv, runCli } from "./run-cli.ts";

describe("boot-assets --version", () => {
  it("prints the package version for --version and -v", async () => {
    const manifest = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    for (const flag of ["--version", "-v"]) {
      const result = await runCli([flag], process.env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString("utf8"), `${manifest.version}\n`);
    }
  });
});

describe("a plain-HTTP registry reached without --insecure", () => {
  let registry: RunningRegistry;
  let home: string;
  before(async () => {
    registry = await startEmbeddedRegistry();
    home = await mkdtemp(join(tmpdir(), "cli-errors-"));
  });
  after(async () => {
    await registry.stop();
    await rm(home, { recursive: true, force: true });
  });

  it("reads the same for every command: the TLS reason and the flag that cures it, no OpenSSL dump", async () => {
    const keyFile = join(home, "k.pem");
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
    await writeFile(join(home, "k.pub"), publicKey.export({ type: "spki", format: "pem" }));
    const image = `${registry.host}/acme/app:v1`;
    const commands = [
      ["tags", `${registry.host}/acme/app`],
      ["inspect", image],
      ["verify", "--key", join(home, "k.pub"), image],
      ["sign", "--key", keyFile, image],
    ];
    for (const args of commands) {
      const result = await runCli(args, isolatedEnv(home));
      assert.equal(result.code, 5, `${args[0]}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /TLS error: wrong version number \(the registry may serve plain HTTP: allow that with --insecure\)\n$/,
        args[0],
      );
      assert.doesNotMatch(result.stderr, /SSL routines|openssl/, args[0]);
    }
  });
});
