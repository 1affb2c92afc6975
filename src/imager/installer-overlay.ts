// The installer image's overlay layer (talos pkg/imager/out.go outInstaller, with an overlay): from the overlay
// image for the installer's architecture,
//   overlay/artifacts/…           its artifacts/ tree
//   overlay/installers/default    its installers/<overlay name>
//   overlay/extra-options         the schematic's options as YAML
// each entry with its file's permission bits (filemap.Walk); links are read through (upstream opens the
// paths), inside the image tree only.

import { lstat, readdir, stat } from "node:fs/promises";
import { posix } from "node:path";
import { AppError } from "../errors.ts";
import type { TarEntry } from "../oci/tar.ts";
import { resolveInTree } from "../oci/tree-path.ts";
import { extraOptionsFile, installerOverlayPaths } from "../talos/overlay.ts";
import type { LocalOverlay } from "./inputs.ts";

const maxEntries = 100_000;

async function walk(root: string, inTree: string, imagePath: string, entries: TarEntry[]): Promise<void> {
  if (entries.length > maxEntries) throw new AppError("Upstream", `the overlay has more than ${maxEntries} artifacts`);
  const onDisk = await resolveInTree(root, inTree);
  const info = await stat(onDisk).catch(() => undefined);
  if (info === undefined) return;
  if (info.isDirectory()) {
    if (inTree !== "/artifacts") entries.push({ type: "directory", path: imagePath, mode: info.mode & 0o777 });
    const names = (await readdir(onDisk)).sort();
    for (const name of names) await walk(root, posix.join(inTree, name), posix.join(imagePath, name), entries);
  } else if (info.isFile()) {
    entries.push({ type: "file", path: imagePath, mode: info.mode & 0o777, sourcePath: onDisk, size: info.size });
  }
}

/** The layer's entries. The installer must be there; an image without artifacts gives none. */
export async function installerOverlayEntries(overlay: LocalOverlay): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  await walk(overlay.targetDir, "/artifacts", installerOverlayPaths.artifacts, entries);
  const installer = await resolveInTree(overlay.targetDir, posix.join("/installers", overlay.name));
  const info = await lstat(installer).catch(() => undefined);
  if (info === undefined || !info.isFile())
    throw new AppError(
      "Upstream",
      `overlay ${overlay.image}@${overlay.digest}: no installer installers/${overlay.name}`,
      {
        code: "OVERLAY_FAILED",
      },
    );
  entries.push({
    type: "file",
    path: installerOverlayPaths.installer,
    mode: info.mode & 0o777,
    sourcePath: installer,
    size: info.size,
  });
  // Upstream writes the file with mode 0644 (os.WriteFile) and Walk keeps it.
  entries.push({
    type: "file",
    path: installerOverlayPaths.extraOptions,
    mode: 0o644,
    content: Buffer.from(extraOptionsFile(overlay.options)),
  });
  return entries;
}
