// Builds a small multi-arch OCI image layout by hand (node:fs, tar-stream, zlib), independent of the
// project's own layout and layer code, so real clients are tested against bytes the project did not write.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
}

export interface MultiArchLayout {
  dir: string;
  tag: string;
  /** The image index the tag points at. */
  index: Descriptor;
  /** One manifest per platform, in index order. */
  manifests: Descriptor[];
  configs: Descriptor[];
  layers: Descriptor[];
  /** sha256 of each layer's uncompressed tar, in layer order (the config's rootfs.diff_ids). */
  diffIds: string[];
  /** Every blob of the image, index included. */
  allDigests: string[];
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A tar archive of `files` with fixed metadata, so the same input always gives the same bytes. */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on("data", (chunk) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    archive.on("end", resolve);
    archive.on("error", reject);
  });
  const mtime = new Date(0);
  archive.entry({ name: "etc/", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime });
  for (const [name, content] of Object.entries(files).sort()) {
    archive.entry({ name, mode: 0o644, uid: 0, gid: 0, mtime }, content);
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function writeBlob(dir: string, data: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256(data);
  await writeFile(join(dir, "blobs", "sha256", digest.slice("sha256:".length)), data);
  return { mediaType, digest, size: data.length };
}

/** Writes an OCI image layout holding one index (amd64 + arm64, each with a gzip tar layer) tagged `tag`. */
export async function writeMultiArchLayout(dir: string, tag = "v1"): Promise<MultiArchLayout> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests: Descriptor[] = [];
  const configs: Descriptor[] = [];
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const architecture of ["amd64", "arm64"]) {
    const tar = await tarOf({
      "etc/os-release": `ID=boot-assets-test\nARCH=${architecture}\n`,
      "etc/motd": `a ${architecture} image made for real-client tests\n`,
    });
    const layer = await writeBlob(dir, gzipSync(tar, { level: 6 }), "application/vnd.oci.image.layer.v1.tar+gzip");
    const configJson = {
      architecture,
      os: "linux",
      config: { Env: ["PATH=/usr/bin"] },
      rootfs: { type: "layers", diff_ids: [sha256(tar)] },
    };
    const config = await writeBlob(
      dir,
      Buffer.from(JSON.stringify(configJson)),
      "application/vnd.oci.image.config.v1+json",
    );
    const manifestJson = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: [layer],
    };
    const manifest = await writeBlob(
      dir,
      Buffer.from(JSON.stringify(manifestJson)),
      "application/vnd.oci.image.manifest.v1+json",
    );
    manifests.push({ ...manifest, platform: { architecture, os: "linux" } });
    configs.push(config);
    layers.push(layer);
    diffIds.push(sha256(tar));
  }
  const indexJson = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests };
  const index = await writeBlob(dir, Buffer.from(JSON.stringify(indexJson)), "application/vnd.oci.image.index.v1+json");
  const layoutIndex = {
    schemaVersion: 2,
    manifests: [{ ...index, annotations: { "org.opencontainers.image.ref.name": tag } }],
  };
  await writeFile(join(dir, "index.json"), JSON.stringify(layoutIndex));
  const allDigests = [index, ...manifests, ...configs, ...layers].map((d) => d.digest);
  return { dir, tag, index, manifests, configs, layers, diffIds, allDigests };
}

/** Every blob file of a layout, by digest, with its bytes. */
export async function readLayoutBlobs(dir: string): Promise<Map<string, Buffer>> {
  const blobDir = join(dir, "blobs", "sha256");
  const blobs = new Map<string, Buffer>();
  for (const name of (await readdir(blobDir)).sort()) {
    blobs.set(`sha256:${name}`, await readFile(join(blobDir, name)));
  }
  return blobs;
}
