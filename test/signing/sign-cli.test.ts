import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";

const run = promisify(execFile);
const main = new URL("../../src/cli/main.ts", import.meta.url).pathname;

async function cli(args: string[], env: Record<string, string>, cwd: string) {
  return run(process.execPath, [main, ...args], { env: { ...process.env, ...env }, cwd });
}

describe("boot-assets generate-key-pair and sign", () => {
  let registry: RunningRegistry;
  let dir: string;
  before(async () => {
    registry = await startEmbeddedRegistry();
    dir = await mkdtemp(join(tmpdir(), "sign-cli-"));
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("generates an encrypted key pair and signs an image with it, once", async () => {
    const env = { COSIGN_PASSWORD: "pw" };
    const generated = await cli(["generate-key-pair"], env, dir);
    assert.match(generated.stdout, /cosign\.key/);
    assert.match(await readFile(join(dir, "cosign.key"), "utf8"), /ENCRYPTED SIGSTORE PRIVATE KEY/);
    await assert.rejects(cli(["generate-key-pair"], env, dir), /exists/);

    const repo = new RegistryClient({ insecure: [registry.host], certsDirs: [] }).repository(
      `${registry.host}/cli/app`,
    );
    const config = Buffer.from("{}");
    const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}` as const;
    await repo.putBlob(config, { digest: configDigest });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: configDigest, size: 2 },
        layers: [],
      }),
    );
    const digest = await repo.putManifest(manifest, MediaType.ociManifest, "v1");

    const image = `${registry.host}/cli/app:v1`;
    const signed = await cli(["sign", image, "--key", "cosign.key", "--insecure"], env, dir);
    assert.equal(signed.stdout, `${registry.host}/cli/app@${digest}: wrote signature sha256-${digest.slice(7)}.sig\n`);
    const again = await cli(["sign", image, "--key", "cosign.key", "--insecure"], env, dir);
    assert.match(again.stdout, /already signed/);
    assert.equal(
      JSON.parse((await repo.getManifest(`sha256-${digest.slice(7)}.sig`)).body.toString()).layers.length,
      1,
    );

    await assert.rejects(
      cli(["sign", image, "--key", "cosign.key", "--insecure"], { COSIGN_PASSWORD: "no" }, dir),
      (err: { stderr: string }) => /decryption failed/.test(err.stderr),
    );
  });
});
