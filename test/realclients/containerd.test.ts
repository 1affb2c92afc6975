import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type RunningContainerd, startContainerd } from "../harness/containerd.ts";
import { startEmbeddedRegistry } from "../harness/embedded.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { type MultiArchLayout, writeMultiArchLayout } from "./fixture.ts";
import { pushLayout } from "./skopeo.ts";

/** Rows of a `ctr … ls` table as arrays of whitespace-separated cells, header dropped. */
function tableRows(output: string): string[][] {
  return output
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/));
}

describe("containerd pulls from the embedded registry", () => {
  let registry: RunningRegistry;
  let containerd: RunningContainerd;
  let workDir: string;
  let source: MultiArchLayout;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "ctr-test-"));
    source = await writeMultiArchLayout(join(workDir, "src"), "v1");
    registry = await startEmbeddedRegistry();
    await pushLayout(source.dir, "v1", `${registry.host}/ns/img:v1`);
    containerd = await startContainerd();
  });
  after(async () => {
    await containerd?.stop();
    await registry?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  test("ctr image pull --plain-http --all-platforms fetches the whole multi-arch image", async () => {
    const ref = `${registry.host}/ns/img:v1`;
    await containerd.ctr(["image", "pull", "--plain-http", "--all-platforms", ref], 120_000);

    const images = tableRows((await containerd.ctr(["image", "ls"])).stdout);
    const row = images.find((cells) => cells[0] === ref);
    assert.ok(row, `ctr image ls does not list ${ref}`);
    assert.equal(row[1], "application/vnd.oci.image.index.v1+json");
    assert.equal(row[2], source.index.digest);
    const platforms = row.find((cell) => cell.includes("linux/"))?.split(",");
    assert.deepEqual(platforms?.sort(), ["linux/amd64", "linux/arm64"]);

    const content = new Set(tableRows((await containerd.ctr(["content", "ls"])).stdout).map((cells) => cells[0]));
    for (const digest of source.allDigests) {
      assert.ok(content.has(digest), `containerd's content store lacks ${digest}`);
    }

    // Both platforms were unpacked: a one-layer image's snapshot is keyed by its layer's diff_id.
    const snapshots = new Set(tableRows((await containerd.ctr(["snapshot", "ls"])).stdout).map((cells) => cells[0]));
    for (const diffId of source.diffIds) {
      assert.ok(snapshots.has(diffId), `no unpacked snapshot for layer ${diffId}`);
    }
  });
});
