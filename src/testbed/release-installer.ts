// The test bed's installer program, in the release's `installer` (Talos < 1.10) or `installer-base` (≥ 1.10)
// image at upstream's path, `/bin/installer` (its entrypoint), next to a static busybox that runs it. It stands
// in for Talos's installer: it installs nothing, but checks that the installer image the imager built around
// it carries the boot artifacts that Talos version's installer expects (from the version rules table) and
// prints what it would install where — enough for a container run to tell a right image from a wrong one.

import type { TarEntry } from "../oci/tar.ts";
import type { VersionRules } from "../talos/version-rules.ts";

export const installerPath = "bin/installer";

/** Shell-quotes a value for a POSIX sh single-quoted string. */
function shQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** `arch`: the platform the image is for, the default of `--arch`. */
export function installerScript(rules: VersionRules, arch: "amd64" | "arm64" = "amd64"): string {
  return `#!/bin/busybox sh
# boot-assets test bed installer for Talos ${rules.version} (stands in for Talos's installer; installs nothing).
# Usage: installer install [--disk DEVICE] [--arch ARCH]
set -eu
talos_version=${shQuote(rules.version)}
artifacts=${shQuote(rules.installerArtifacts.join(" "))}
command="\${1:-install}"
[ $# -gt 0 ] && shift
disk=/dev/sda
arch=${arch}
while [ $# -gt 0 ]; do
  case "$1" in
    --disk) disk="$2"; shift 2 ;;
    --disk=*) disk="\${1#--disk=}"; shift ;;
    --arch) arch="$2"; shift 2 ;;
    --arch=*) arch="\${1#--arch=}"; shift ;;
    *) shift ;;
  esac
done
case "$command" in
  version) echo "test bed installer for Talos $talos_version"; exit 0 ;;
  install) ;;
  *) echo "unknown command: $command" >&2; exit 2 ;;
esac
echo "test bed installer for Talos $talos_version: install to $disk ($arch)"
missing=0
for name in $artifacts; do
  file="/usr/install/$arch/$name"
  if [ -f "$file" ]; then
    echo "would install $file ($(/bin/busybox wc -c < "$file") bytes)"
  else
    echo "missing $file" >&2
    missing=1
  fi
done
exit $missing
`;
}

/** The installer image's layer for `arch` (default amd64): the script and the busybox of that architecture that runs it. */
export function installerLayer(
  rules: VersionRules,
  busybox: { path: string; size: number },
  arch: "amd64" | "arm64" = "amd64",
): TarEntry[] {
  return [
    { type: "file", path: installerPath, mode: 0o755, content: Buffer.from(installerScript(rules, arch)) },
    { type: "file", path: "bin/busybox", mode: 0o755, sourcePath: busybox.path, size: busybox.size },
    { type: "symlink", path: "bin/sh", target: "busybox" },
  ];
}
