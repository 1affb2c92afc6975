// The test bed release in a real registry for the imager-input tests: published into an embedded registry
// server on loopback, reached through a recording HTTP front (so tests count which blobs were fetched and
// can tamper with one), with the release's verification files (cosign.pub, trusted_root.json, identity.json).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Digest } from "../../src/oci/digest.ts";
import type { ImageManifest } from "../../src/oci/manifest.ts";
import { type RegistryServer, startRegistryServer } from "../../src/registry/server.ts";
import { publishTestbedRelease, type ReleaseImage, type ReleaseSummary } from "../../src/testbed/release.ts";
import { type FrontHooks, type HttpFront, startFront } from "../oci/http-front.ts";

export interface ReleaseRegistry {
  dir: string;
  server: RegistryServer;
  summary: ReleaseSummary;
  /** cosign.pub, trusted_root.json, identity.json */
  outDir: string;
  /** A front that records requests; tests reach the registry through it. */
  front: HttpFront;
  /** Another front over the same registry with the given hooks (stopped with the fixture). */
  frontWith(hooks: FrontHooks): Promise<HttpFront>;
  image(version: string, predicate: (image: ReleaseImage) => boolean): ReleaseImage;
  /** The layer digests of an image of the release, read from the store. */
  layerDigests(image: ReleaseImage): Promise<Digest[]>;
  close(): Promise<void>;
}

export async function openReleaseRegistry(versions: string[]): Promise<ReleaseRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "imager-inputs-"));
  const server = await startRegistryServer({ root: join(dir, "registry"), listen: "127.0.0.1:0", logger: false });
  const fronts: HttpFront[] = [];
  try {
    const outDir = join(dir, "out");
    const summary = await publishTestbedRelease({
      registry: server.address,
      repositoryFor: (name) => server.store.repository(name),
      out: outDir,
      versions,
    });
    const front = await startFront(server.url);
    fronts.push(front);
    return {
      dir,
      server,
      summary,
      outDir,
      front,
      async frontWith(hooks) {
        const another = await startFront(server.url, hooks);
        fronts.push(another);
        return another;
      },
      image(version, predicate) {
        const found = summary.versions.find((v) => v.version === version)?.images.find(predicate);
        if (found === undefined) throw new Error(`no such image in ${version}`);
        return found;
      },
      async layerDigests(image) {
        const record = await server.store.repository(image.repository).getManifest(image.digest);
        return (JSON.parse(record.body.toString("utf8")) as ImageManifest).layers.map((l) => l.digest);
      },
      async close() {
        for (const f of fronts) await f.stop();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const f of fronts) await f.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** GET requests (through `front`) for any of these blob digests. */
export function blobGets(front: HttpFront, digests: Iterable<string>): string[] {
  const wanted = new Set(digests);
  return front.requests
    .filter((r) => r.method === "GET")
    .map((r) => /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(r.url.split("?")[0] ?? "")?.[1])
    .filter((d): d is string => d !== undefined && wanted.has(d));
}

/** A regexp matching exactly `text` (for the keyless identity flags, which match the WHOLE value). */
export function exactRegExp(text: string): string {
  return `^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
}
