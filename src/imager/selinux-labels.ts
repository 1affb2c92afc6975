// SELinux labels of extension images (Talos ≥ 1.13): upstream's untar records the label of every tar entry
// with a PAX `SCHILY.xattr.security.selinux` record (pkg/archiver/untar.go; here oci/flatten.ts, kept in the
// source cache), and compress.go's xattrPseudoFlags hands those still present in the extension's rootfs to
// mksquashfs as pseudo xattrs, the rootfs itself as "/".

import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../errors.ts";

/** The label upstream gives the embedded machine configuration (talos constants.StateSelinuxLabel). */
export const embeddedConfigSelinuxLabel = "system_u:object_r:system_state_t:s0";
/** Where the embedded configuration lies inside its extension's rootfs (constants.EmbeddedConfigDirectory). */
export const embeddedConfigPath = "usr/local/etc/talos/config.yaml";

/** An extension's labels (paths relative to its directory) as paths inside its rootfs. */
export function rootfsLabels(labels: ReadonlyMap<string, string> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [path, label] of labels ?? []) {
    if (path === "rootfs") out.set("/", label);
    else if (path.startsWith("rootfs/")) out.set(path.slice("rootfs/".length), label);
  }
  return out;
}

/** The extension's labels of paths still in its rootfs (firmware moved out loses them), as upstream checks. */
export async function presentLabels(
  extension: string,
  rootfs: string,
  labels: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [path, label] of labels) {
    // A pseudo definition is one line, and no program argument holds a NUL (upstream's exec fails on it).
    if (/[\0\n]/.test(label))
      throw badRequest(
        `extension ${extension}: the SELinux label of /${path.replace(/^\//, "")} holds a NUL or a newline`,
      );
    const full = path === "/" ? rootfs : join(rootfs, path);
    if ((await lstat(full).catch(() => undefined)) !== undefined) out.set(path, label);
  }
  return out;
}
