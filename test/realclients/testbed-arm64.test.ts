// containerd pulls the test bed's arm64 installer: the release published for linux/amd64 + linux/arm64 to the
// embedded registry over HTTP, then `ctr image pull --platform linux/arm64` of the installer(-base) index picks
// and unpacks its arm64 image — whose config says arm64 and whose busybox is an aarch64 ELF — and nothing of
// the amd64 one.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { RegistryClient } from "../../src/oci/client/index.ts";
import { publishTestbedRelease, type ReleaseImage } from "../../src/testbed/release.ts";
import { type RunningContainerd, startContainerd } from "../harness/containerd.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";

/** ELF e_machine of AArch64 (elf.h EM_AARCH64). */
const emAarch64 = 183;

describe("containerd pulls the test bed's arm64 installer", () => {
  let registry: RunningRegistry;
  let containerd: RunningContainerd;
  let client: RegistryClient;
  let scratch: string;
  let installer: ReleaseImage;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "testbed-arm64-"));
    registry = await startEmbeddedRegistry();
    client = new RegistryClient({ insecure: [registry.host], retries: 0 });
    const summary = await publishTestbedRelease({
      registry: registry.host,
      client,
      versions: ["v1.10.3"],
      arches: ["amd64", "arm64"],
      keysDir: join(scratch, "keys"),
    });
    const found = summary.versions[0]?.images.find((i) => i.kind === "installer");
    assert.ok(found !== undefined);
    installer = found;
    containerd = await startContainerd();
  });
  after(async () => {
    await containerd?.stop();
    await client?.close();
    await registry?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  test("ctr image pull --platform linux/arm64 takes the arm64 image of the installer index", async () => {
    const ref = `${registry.host}/${installer.repository}:${installer.tag}`;
    const arm64 = installer.platforms?.find((p) => p.arch === "arm64")?.digest;
    const amd64 = installer.platforms?.find((p) => p.arch === "amd64")?.digest;
    assert.ok(arm64 !== undefined && amd64 !== undefined, "the installer is not a two-platform index");
    await containerd.ctr(["image", "pull", "--plain-http", "--platform", "linux/arm64", ref], 120_000);

    // Blobs as bytes (the harness's ctr() decodes stdout as text).
    const content = async (digest: string): Promise<Buffer> =>
      (
        await promisify(execFile)("ctr", ["-a", containerd.socket, "content", "get", digest], {
          encoding: "buffer",
          maxBuffer: 64 * 1024 * 1024,
        })
      ).stdout;
    const manifest = JSON.parse((await content(arm64)).toString("utf8")) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    const config = JSON.parse((await content(manifest.config.digest)).toString("utf8")) as { architecture: string };
    assert.equal(config.architecture, "arm64");
    await assert.rejects(containerd.ctr(["content", "get", amd64]), "the amd64 image was fetched too");

    // The layer's bin/busybox (a tar member) is an AArch64 executable.
    const layer = manifest.layers[0];
    assert.ok(layer !== undefined);
    const tar = gunzipSync(await content(layer.digest));
    let machine: number | undefined;
    for (let at = 0; at + 512 <= tar.length; ) {
      const name = tar.toString("utf8", at, at + 100).replace(/\0.*$/s, "");
      if (name === "") break;
      const size = Number.parseInt(
        tar
          .toString("latin1", at + 124, at + 136)
          .replace(/\0.*$/s, "")
          .trim(),
        8,
      );
      if (name === "bin/busybox") machine = tar.readUInt16LE(at + 512 + 18);
      at += 512 + Math.ceil(size / 512) * 512;
    }
    assert.equal(machine, emAarch64);
  });
});
