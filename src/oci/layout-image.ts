// An OCI image layout seen as an image source and destination for `copyImage`: manifests are named by
// index.json's ref-name annotation (the `oci:DIR:REF` of skopeo), everything else is a blob. Only the
// top-level manifest of a copy gets an index.json entry; child manifests of an index are blobs only.

import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { badRequest, integrity, notFound } from "../errors.ts";
import { type Digest, isDigest } from "./digest.ts";
import type { OciLayout } from "./layout.ts";
import { refNameAnnotation } from "./layout.ts";
import { type Descriptor, maxManifestBytes, parseManifest } from "./manifest.ts";
import type { BlobInfo, BlobReader, ManifestRecord, PutBlobOptions } from "./repository.ts";

export class OciLayoutImageStore {
  readonly layout: OciLayout;
  readonly displayName: string;

  constructor(layout: OciLayout) {
    this.layout = layout;
    this.displayName = `oci:${layout.dir}`;
  }

  /** The ref names of index.json, in index order (unnamed entries are left out). */
  async listTags(): Promise<string[]> {
    const index = await this.layout.readIndex();
    return index.manifests.flatMap((d) => {
      const name = d.annotations?.[refNameAnnotation];
      return name === undefined ? [] : [name];
    });
  }

  /**
   * What `oci:DIR` without a reference means: the layout's only image (its ref name, or its digest when
   * unnamed). With several images the caller must say which; the error lists them.
   */
  async defaultReference(): Promise<string> {
    const { manifests } = await this.layout.readIndex();
    const only = manifests.length === 1 ? manifests[0] : undefined;
    if (only !== undefined) return only.annotations?.[refNameAnnotation] ?? only.digest;
    if (manifests.length === 0) throw notFound(`OCI layout "${this.layout.dir}" holds no image`, "MANIFEST_UNKNOWN");
    const names = manifests.map((d) => d.annotations?.[refNameAnnotation] ?? d.digest);
    throw badRequest(
      `OCI layout "${this.layout.dir}" holds ${manifests.length} images; name one as oci:DIR:REF (${names.join(", ")})`,
    );
  }

  /** A manifest by ref name (through index.json) or by digest, read whole (bounded) and verified. */
  async getManifest(reference: string): Promise<ManifestRecord> {
    let descriptor: Pick<Descriptor, "digest" | "mediaType" | "size"> | undefined;
    let digest: Digest;
    if (isDigest(reference)) digest = reference;
    else {
      descriptor = await this.layout.resolve(reference);
      digest = descriptor.digest;
    }
    const info = await this.layout.statBlob(digest);
    if (info === undefined)
      throw notFound(`manifest ${digest} is not in OCI layout "${this.layout.dir}"`, "MANIFEST_UNKNOWN");
    if (info.size > maxManifestBytes)
      throw badRequest(
        `manifest ${digest} in "${this.layout.dir}" is over ${maxManifestBytes} bytes`,
        "MANIFEST_INVALID",
      );
    if (descriptor !== undefined && descriptor.size !== info.size)
      throw integrity(
        `OCI layout "${this.layout.dir}": manifest ${digest} is ${info.size} bytes, index.json says ${descriptor.size}`,
        "SIZE_INVALID",
      );
    // getBlob's stream verifies the digest: `buffer` rejects if the file does not match it.
    const body = await buffer(await this.layout.getBlob(digest));
    const parsed = parseManifest(body, descriptor?.mediaType);
    return { digest, mediaType: parsed.mediaType, body };
  }

  statBlob(digest: Digest): Promise<BlobInfo | undefined> {
    return this.layout.statBlob(digest);
  }

  async getBlob(digest: Digest, options?: { size?: number }): Promise<BlobReader> {
    const info = await this.layout.statBlob(digest);
    if (info === undefined) throw notFound(`blob ${digest} is not in OCI layout "${this.layout.dir}"`, "BLOB_UNKNOWN");
    if (options?.size !== undefined && info.size !== options.size)
      throw integrity(
        `OCI layout "${this.layout.dir}": blob ${digest} is ${info.size} bytes, expected ${options.size}`,
        "SIZE_INVALID",
      );
    return { digest, size: info.size, stream: await this.layout.getBlob(digest) };
  }

  putBlob(content: Readable | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
    return this.layout.putBlob(
      content,
      options.digest === undefined ? undefined : { digest: options.digest, size: options.size },
    );
  }

  /** Stores a manifest as a blob; with `tag`, also names it in index.json (replacing the tag's old entry). */
  async putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest> {
    const descriptor = await this.layout.putManifest(body, mediaType);
    if (tag !== undefined) await this.layout.addToIndex(descriptor, tag);
    return descriptor.digest;
  }
}
