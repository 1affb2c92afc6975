// The factory's source of an mksquashfs ≥ 4.6 for Talos ≥ 1.13 extension images (SELinux labels): the
// machine's when recent enough, else Debian trixie's squashfs-tools fetched on first need into the package
// store under the factory's cache directory (`<dir>/debs`, `<dir>/debs-extracted`, `<dir>/apt/trixie`).

import { fetchTrixiePackage } from "../../tools/debian-packages.ts";
import { labellingMksquashfs } from "../../tools/squashfs-tools.ts";

export function factoryLabellingMksquashfs(
  cacheDir: string,
  log: (line: string) => void,
): (signal?: AbortSignal) => Promise<string | undefined> {
  return labellingMksquashfs({
    fetchPackage: async (signal) => {
      log("fetching squashfs-tools from Debian trixie (mksquashfs ≥ 4.6, for SELinux-labelled extension images)");
      return (await fetchTrixiePackage("squashfs-tools", { cacheDir, log, ...(signal ? { signal } : {}) })).root;
    },
    log,
  });
}
