// The test bed's `talosctl-all` image (Talos ≥ 1.11, rulesFor talosctlDownload): what the factory serves at
// /talosctl/:version. Like upstream's, the binaries lie at the image root, named `talosctl-<os>-<arch>[.exe]`
// (image-factory internal/artifacts/versions.go extractTalosctlTuples). They are not programs: small text
// files saying what they stand for, so a download can be told apart from any other.

import type { ImageSpec } from "../oci/image-builder.ts";
import type { TarEntry } from "../oci/tar.ts";

export const talosctlAllRepository = "siderolabs/talosctl-all";

/** The platforms the test bed ships a talosctl for (a subset of upstream's nine). */
export const testbedTalosctlFiles: readonly string[] = [
  "talosctl-darwin-arm64",
  "talosctl-linux-amd64",
  "talosctl-linux-arm64",
  "talosctl-windows-amd64.exe",
];

function standIn(file: string, version: string): Buffer {
  const line = `boot-assets test bed stand-in for ${file}, Talos ${version}\n`;
  // A few KiB, so byte ranges have something to cut.
  return Buffer.from(line.repeat(Math.ceil(4096 / line.length)));
}

export function talosctlAllSpec(version: string): ImageSpec {
  const entries: TarEntry[] = testbedTalosctlFiles.map((file) => ({
    type: "file",
    path: file,
    mode: 0o755,
    content: standIn(file, version),
  }));
  return { repository: talosctlAllRepository, tag: version, layers: [entries] };
}
