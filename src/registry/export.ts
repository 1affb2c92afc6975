// Export of a repository to an OCI image layout, so stored content can be moved with standard tools
// (`skopeo copy oci:DIR:tag …`). Every tagged manifest is copied with everything it references — an index's
// child manifests and their config and layers — and named in index.json by its tag
// (org.opencontainers.image.ref.name). Blobs are verified against their digests on the way out.

import { isAppError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import { OciLayout } from "../oci/layout.ts";
import { isImageIndex, parseManifest, referencedDescriptors } from "../oci/manifest.ts";
import type { RegistryStore } from "./store.ts";

export interface ExportResult {
  layoutDir: string;
  /** Each exported tag and the digest it named. */
  tags: { tag: string; digest: Digest }[];
  /** Manifests and blobs written (or already present) in the layout. */
  objects: number;
}

/** Indexes of indexes are legal; this bounds how deep a hostile or broken store can make the walk. */
const maxNesting = 8;

export async function exportRepository(
  store: RegistryStore,
  repository: string,
  tags: string[] | "all",
  layoutDir: string,
): Promise<ExportResult> {
  const wanted = tags === "all" ? await store.listTags(repository) : tags;
  const layout = await OciLayout.create(layoutDir);
  const copied = new Set<Digest>();

  const copyManifest = async (reference: string, depth: number) => {
    const record = await store.getManifest(repository, reference);
    if (copied.has(record.digest)) return record;
    const { manifest } = parseManifest(record.body, record.mediaType);
    for (const descriptor of referencedDescriptors(manifest)) {
      if (copied.has(descriptor.digest)) continue;
      if (isImageIndex(manifest)) {
        if (depth >= maxNesting)
          throw new Error(`manifest ${record.digest} nests indexes deeper than ${maxNesting} levels`);
        await copyManifest(descriptor.digest, depth + 1);
        continue;
      }
      const blob = await store.getBlob(repository, descriptor.digest).catch((err: unknown) => {
        // Foreign layers live at their URLs, not in the registry; the layout may omit them too.
        if (isAppError(err, "NotFound") && descriptor.urls && descriptor.urls.length > 0) return undefined;
        throw err;
      });
      if (!blob) continue;
      await layout.putBlob(blob.stream, { digest: blob.digest, size: blob.size });
      copied.add(descriptor.digest);
    }
    await layout.putBlob(record.body, { digest: record.digest, size: record.body.length });
    copied.add(record.digest);
    return record;
  };

  const exported: ExportResult["tags"] = [];
  for (const tag of wanted) {
    const record = await copyManifest(tag, 0);
    await layout.addToIndex({ mediaType: record.mediaType, digest: record.digest, size: record.body.length }, tag);
    exported.push({ tag, digest: record.digest });
  }
  return { layoutDir, tags: exported, objects: copied.size };
}
