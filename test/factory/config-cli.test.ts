// `boot-assets factory` as an operator runs it: Go-style flags reach the factory's parser untouched through
// the CLI, --check-config prints the start-up summary and exits 0, a bad command line exits 2 with one line
// per problem.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";

describe("boot-assets factory", () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "factory-cli-"));
    env = isolatedEnv(home);
    for (const name of Object.keys(env)) if (name.startsWith("IF_")) delete env[name];
  });
  after(() => rm(home, { recursive: true, force: true }));

  it("--check-config prints where it listens, what it reads and trusts, and exits 0", async () => {
    const result = await runCli(
      [
        "factory",
        "-http-port",
        "127.0.0.1:0",
        "--data-dir",
        join(home, "data"),
        "-image-registry=registry.example.test:5000",
        "-container-signature-subject-regexp",
        "ci@example\\.test",
        "--check-config",
        "-metrics-listen-addr=",
      ],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout.toString();
    assert.match(out, /^would listen on http:\/\/127\.0\.0\.1:0$/m);
    assert.match(
      out,
      /^reading images from registry\.example\.test:5000: registry\.example\.test:5000\/siderolabs\/imager/m,
    );
    assert.match(
      out,
      /trusting keyless signatures of subject ~ \^\(\?:ci@example\\\.test\)\$, issuer https:\/\/accounts\.google\.com/,
    );
    assert.match(out, new RegExp(`^cache: embedded store ${join(home, "data", "store")}`, "m"));
    assert.match(out, /^metrics disabled$/m);
    assert.match(out, /configuration is valid \(--check-config\): not starting/);
  });

  it("reads the IF_ environment", async () => {
    const result = await runCli(["factory", "--check-config"], { ...env, IF_HTTP_HTTPLISTENADDR: "127.0.0.1:0" });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString(), /^would listen on http:\/\/127\.0\.0\.1:0$/m);
  });

  it("a bad command line exits 2 with one line per problem naming the flag", async () => {
    const result = await runCli(
      [
        "factory",
        "-external-url",
        "not a url",
        "-cache-s3-enabled",
        "-http-port",
        "127.0.0.1:0",
        // Unbalanced: it would close the anchoring group, ^(?:a)|(.*)$, and match any subject.
        "-container-signature-subject-regexp",
        "a)|(.*",
      ],
      env,
    );
    assert.equal(result.code, 2);
    const lines = result.stderr
      .trim()
      .split("\n")
      .map((line) => line.replace(/^boot-assets: /, ""));
    assert.deepEqual(lines.sort(), [
      "-cache-s3-enabled is not supported yet (the S3 cache)",
      '-container-signature-subject-regexp "a)|(.*": invalid regular expression: error parsing regexp: unexpected ): `a)|(.*`',
      '-external-url: not an absolute URL: "not a url"',
    ]);
    assert.equal(result.stdout.length, 0, "nothing is started or summarized");
  });

  it("`-secureboot false` is refused with the = form as the fix", async () => {
    const result = await runCli(["factory", "-secureboot", "false"], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unexpected argument "false".*-secureboot=false/);
  });

  it("arguments after -- are refused, as Go's flag package leaves them positional", async () => {
    const result = await runCli(["factory", "--", "-http-port", ":1"], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unexpected argument "-http-port" after "--"/);
  });

  it("-h prints the flags and exits 0", async () => {
    const result = await runCli(["factory", "-h"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString(), /-container-signature-trusted-root value/);
  });

  it("without --check-config it starts, and a listen address in use stops it with the reason", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    try {
      const port = (busy.address() as AddressInfo).port;
      const result = await runCli(
        ["factory", "-http-port", `127.0.0.1:${port}`, "-metrics-listen-addr=", "--data-dir", join(home, "data")],
        env,
      );
      assert.equal(result.code, 4, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `^boot-assets: the HTTP listener cannot listen on -http-port 127\\.0\\.0\\.1:${port}: the address is already in use`,
          "m",
        ),
      );
      assert.doesNotMatch(result.stdout.toString(), /listening on|serving on/, "nothing claims to listen");

      const metrics = await runCli(
        [
          "factory",
          "-http-port",
          "127.0.0.1:0",
          "-metrics-listen-addr",
          `127.0.0.1:${port}`,
          "--data-dir",
          join(home, "data"),
        ],
        env,
      );
      assert.equal(metrics.code, 4, metrics.stderr);
      assert.match(
        metrics.stderr,
        new RegExp(`the metrics listener cannot listen on -metrics-listen-addr 127\\.0\\.0\\.1:${port}: the address`),
      );
      assert.doesNotMatch(metrics.stdout.toString(), /serving on/);

      // -container-signature-disabled is said loudly at start, in the log as well as in the summary.
      const unverified = await runCli(
        [
          "factory",
          "-container-signature-disabled",
          "-http-port",
          `127.0.0.1:${port}`,
          "-metrics-listen-addr=",
          "--data-dir",
          join(home, "data"),
        ],
        env,
      );
      assert.match(unverified.stdout.toString(), /^signature verification DISABLED/m);
      assert.match(unverified.stdout.toString(), /"level":40,.*"msg":"SIGNATURE VERIFICATION IS DISABLED: /);
    } finally {
      busy.close();
    }
  });
});
