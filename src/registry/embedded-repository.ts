// The in-process face of the embedded store: the `Repository` the factory uses when it needs no external
// registry. Calls go straight to the store, with no HTTP hop.

import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/manifest.ts";
import type { BlobInfo, BlobReader, ManifestRecord, PutBlobOptions, Repository } from "../oci/repository.ts";
import type { RegistryStore } from "./store.ts";

export class EmbeddedRepository implements Repository {
  readonly name: string;
  readonly displayName: string;
  private readonly store: RegistryStore;

  /** Use `store.repository(name)`, which validates the name. */
  constructor(store: RegistryStore, name: string) {
    this.store = store;
    this.name = name;
    this.displayName = `embedded/${name}`;
  }

  statBlob(digest: Digest): Promise<BlobInfo | undefined> {
    return this.store.statBlob(this.name, digest);
  }

  getBlob(digest: Digest): Promise<BlobReader> {
    return this.store.getBlob(this.name, digest);
  }

  putBlob(content: Readable | Uint8Array, options?: PutBlobOptions): Promise<BlobInfo> {
    return this.store.putBlob(this.name, content, options);
  }

  statManifest(reference: string): Promise<(BlobInfo & { mediaType: string }) | undefined> {
    return this.store.statManifest(this.name, reference);
  }

  getManifest(reference: string): Promise<ManifestRecord> {
    return this.store.getManifest(this.name, reference);
  }

  async putManifest(body: Uint8Array, mediaType: string, tag?: string): Promise<Digest> {
    const options = tag === undefined ? { mediaType } : { mediaType, reference: tag };
    return (await this.store.putManifest(this.name, body, options)).digest;
  }

  deleteManifest(reference: string): Promise<void> {
    return this.store.deleteManifest(this.name, reference);
  }

  /** Tags in lexical order; NotFound (NAME_UNKNOWN) for a repository never pushed to, as from a remote. */
  listTags(): Promise<string[]> {
    return this.store.listTags(this.name);
  }

  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return this.store.referrers(this.name, subject, artifactType);
  }
}
