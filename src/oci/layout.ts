// OCI image layout on disk (image-spec image-layout.md): an `oci-layout` marker file, `index.json` (an
// image index naming the layout's images, by `org.opencontainers.image.ref.name` annotation), and
// `blobs/<alg>/<hex>` holding every blob and manifest. Standard tools (skopeo `oci:DIR:ref`, containerd,
// oras) read and write this format, so it is how stored content moves in and out of this project.
//
// Blobs are written atomically (temp file in the same directory, fsync, rename) and verified against
// their digest on the way in and on the way out; index.json is replaced atomically too.

import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, badRequest, notFound } from "../errors.ts";
import { fsyncDirectory, writeFileAtomic } from "../util/fs.ts";
import { type Digest, digestAlgorithm, digestHex, parseDigest, VerifyingStream } from "./digest.ts";
import { type Descriptor, type ImageIndex, parseManifest } from "./manifest.ts";
import { MediaType } from "./mediatypes.ts";
import type { BlobInfo } from "./repository.ts";

export const refNameAnnotation = "org.opencontainers.image.ref.name";
const layoutVersion = "1.0.0";
/** index.json is small metadata; refuse to read an absurd one. */
const maxIndexBytes = 16 * 1024 * 1024;

// image-layout.md: ref ::= component ("/" component)*; component ::= alphanum (separator alphanum)*.
const refNamePattern =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

export function validateRefName(refName: string): string {
  if (refName.length > 1024 || !refNamePattern.test(refName))
    throw badRequest(`invalid OCI layout reference name "${refName.slice(0, 200)}"`, "NAME_INVALID");
  return refName;
}

export class OciLayout {
  readonly dir: string;
  /** Serializes index.json read-modify-write within this process. */
  private indexLock: Promise<unknown> = Promise.resolve();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates a layout in `dir` (made if missing), or opens the one already there. */
  static async create(dir: string): Promise<OciLayout> {
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    const layout = new OciLayout(dir);
    if ((await stat(join(dir, "oci-layout")).catch(() => undefined)) === undefined)
      await writeFileAtomic(
        dir,
        join(dir, "oci-layout"),
        Buffer.from(`${JSON.stringify({ imageLayoutVersion: layoutVersion })}\n`),
      );
    if ((await stat(join(dir, "index.json")).catch(() => undefined)) === undefined)
      await layout.writeIndex({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
    return await OciLayout.open(dir);
  }

  /** Opens an existing layout, checking its `oci-layout` marker. */
  static async open(dir: string): Promise<OciLayout> {
    let marker: unknown;
    try {
      marker = JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw notFound(`"${dir}" is not an OCI image layout: no oci-layout file`);
      throw badRequest(`"${dir}/oci-layout" is not valid JSON`);
    }
    const version = (marker as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    if (version !== layoutVersion)
      throw new AppError("Unsupported", `OCI layout "${dir}" has imageLayoutVersion ${JSON.stringify(version)}`, {
        code: "UNSUPPORTED",
      });
    const layout = new OciLayout(dir);
    await layout.readIndex();
    return layout;
  }

  blobPath(digest: Digest): string {
    parseDigest(digest);
    return join(this.dir, "blobs", digestAlgorithm(digest), digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return (await this.statBlob(digest)) !== undefined;
  }

  async statBlob(digest: Digest): Promise<BlobInfo | undefined> {
    const info = await stat(this.blobPath(digest)).catch(() => undefined);
    return info?.isFile() ? { digest, size: info.size } : undefined;
  }

  /**
   * Stores a blob; with `expected`, the content must match it (else Integrity, and nothing is stored).
   * A blob already present under the expected digest is not written again.
   */
  async putBlob(content: Readable | Uint8Array, expected?: { digest: Digest; size?: number }): Promise<BlobInfo> {
    if (expected !== undefined) {
      const existing = await this.statBlob(expected.digest);
      if (existing !== undefined && (expected.size === undefined || existing.size === expected.size)) {
        if (content instanceof Readable) content.destroy();
        return existing;
      }
    }
    const verify = new VerifyingStream(expected?.digest, expected?.size);
    const algorithm = expected ? digestAlgorithm(expected.digest) : "sha256";
    const directory = join(this.dir, "blobs", algorithm);
    await mkdir(directory, { recursive: true });
    // The final name is only known after hashing; write to a temp name, verify, then rename.
    const temp = join(directory, `.tmp-${randomBytes(8).toString("hex")}`);
    try {
      const source = content instanceof Readable ? content : Readable.from([Buffer.from(content)]);
      // `flush` fsyncs the file before it is closed, so the rename below never exposes unwritten data.
      await pipeline(source, verify, createWriteStream(temp, { flags: "wx", mode: 0o644, flush: true }));
      const digest = verify.digest();
      await rename(temp, join(directory, digestHex(digest)));
      await fsyncDirectory(directory);
      return { digest, size: verify.size };
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** A blob's content; the stream fails with Integrity if the file does not match its digest. */
  async getBlob(digest: Digest): Promise<Readable> {
    const info = await this.statBlob(digest);
    if (info === undefined) throw notFound(`blob ${digest} is not in OCI layout "${this.dir}"`, "BLOB_UNKNOWN");
    const verify = new VerifyingStream(digest, info.size);
    pipeline(createReadStream(this.blobPath(digest)), verify).catch(() => {
      // A read error also destroys `verify`, which reports it to the reader.
    });
    return verify;
  }

  /** Stores a manifest or index body (validated) as a blob and returns its descriptor. */
  async putManifest(body: Uint8Array, mediaType: string): Promise<Descriptor> {
    const { mediaType: effective } = parseManifest(body, mediaType);
    const info = await this.putBlob(body);
    return { mediaType: effective, digest: info.digest, size: info.size };
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, "index.json");
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size === undefined) throw notFound(`OCI layout "${this.dir}" has no index.json`);
    if (size > maxIndexBytes)
      throw badRequest(`OCI layout "${this.dir}" has an index.json over ${maxIndexBytes} bytes`);
    const { manifest } = parseManifest(await readFile(path), MediaType.ociIndex);
    return manifest as ImageIndex;
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(this.dir, join(this.dir, "index.json"), Buffer.from(JSON.stringify(index)));
  }

  /**
   * Adds a descriptor to index.json. With `refName`, it is annotated with it and replaces any entry that had
   * the same name; without, an identical unnamed entry is not added twice.
   */
  async addToIndex(descriptor: Descriptor, refName?: string): Promise<void> {
    if (refName !== undefined) validateRefName(refName);
    const run = this.indexLock.then(async () => {
      const index = await this.readIndex();
      const entry: Descriptor = { ...descriptor };
      if (refName !== undefined) entry.annotations = { ...descriptor.annotations, [refNameAnnotation]: refName };
      const others = index.manifests.filter((m) =>
        refName !== undefined
          ? m.annotations?.[refNameAnnotation] !== refName
          : !(m.digest === entry.digest && m.annotations?.[refNameAnnotation] === undefined),
      );
      await this.writeIndex({ ...index, manifests: [...others, entry] });
    });
    this.indexLock = run.catch(() => {});
    await run;
  }

  /** The index entry annotated with `refName`; NotFound if none. */
  async resolve(refName: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const found = index.manifests.find((m) => m.annotations?.[refNameAnnotation] === refName);
    if (found === undefined)
      throw notFound(`no image named "${refName}" in OCI layout "${this.dir}"`, "MANIFEST_UNKNOWN");
    return found;
  }
}
