// The test bed's board overlay image, laid out as upstream's overlay images are (siderolabs/sbc-*; talos
// pkg/imager/imager.go handleOverlay):
//   artifacts/<arch>/board.txt            what the installer copies into the EFI partition
//   installers/testbed_board              the installer: a busybox sh script speaking upstream's protocol
//                                         (pkg/machinery/overlay/adapter: `get-options` / `install`, YAML on stdin)
//   installers/testbed_arm64_board        the arm64 board's: the same, copying artifacts/arm64/board.txt
//   installers/testbed_broken             the same, except that `install` fails (for the error path)
//   profiles/<name>.yaml                  profiles whose customization.extraKernelArgs the factory merges
//   bin/busybox                           the static busybox the scripts run on
// `get-options` answers the kernel arg `testbed.overlay=<name>`, plus the schematic option `kernelArg` when
// set; `install` copies board.txt to <mountPrefix>/boot/EFI/testbed/ with the YAML it was given.
// Upstream's imager extracts the overlay for the build host's architecture (imager.go handleOverlay:
// runtime.GOARCH), so a board's installer copies its own architecture's artifacts whatever it runs on; and an
// SBC overlay image is published for both architectures (the same files, each with its own programs). With
// arm64 released, the test bed's overlay is likewise a linux/amd64 + linux/arm64 index.

import { stat } from "node:fs/promises";
import type { ImageSpec } from "../oci/image-builder.ts";
import type { TarEntry } from "../oci/tar.ts";
import type { OverlayEntry } from "../talos/catalog.ts";
import type { TestbedArch } from "./debian.ts";

export const testbedOverlayRepository = "siderolabs/sbc-testbed";
export const testbedOverlayTag = "v0.1.0";
/** The overlay that installs; `testbedBrokenOverlay` fails at `install`. */
export const testbedOverlay = "testbed_board";
export const testbedBrokenOverlay = "testbed_broken";
/** The arm64 board's overlay: its installer copies artifacts/arm64/board.txt. */
export const testbedArm64Overlay = "testbed_arm64_board";
/** The content of artifacts/amd64/board.txt. */
export const testbedBoardText = "boot-assets test bed board overlay\n";
/** The content of artifacts/arm64/board.txt: another text, so that which one was installed shows. */
export const testbedArm64BoardText = "boot-assets test bed board overlay (arm64)\n";
/** The kernel arg the overlays' profiles add (image-factory MergeOverlayProfile). */
export const testbedProfileArg = "testbed.overlay_profile=1";

/** The overlays: name, the artifacts' architecture its installer copies, whether `install` fails. */
const overlays: ReadonlyArray<readonly [string, TestbedArch, boolean]> = [
  [testbedOverlay, "amd64", false],
  [testbedBrokenOverlay, "amd64", true],
  [testbedArm64Overlay, "arm64", false],
];

function installerScript(name: string, board: TestbedArch, installFails: boolean): string {
  const install = installFails
    ? `  echo "${name}: this board cannot be installed" >&2\n  exit 3\n`
    : [
        `  prefix=$(field mountPrefix)`,
        `  artifacts=$(field artifactsPath)`,
        `  $bb mkdir -p "$prefix/boot/EFI/testbed"`,
        `  $bb cp "$artifacts/${board}/board.txt" "$prefix/boot/EFI/testbed/board.txt"`,
        `  echo "$input" > "$prefix/boot/EFI/testbed/install.yaml"`,
        "",
      ].join("\n");
  return `#!/bin/busybox sh
# boot-assets test bed overlay installer ${name} (overlay.Installer: get-options | install, YAML on stdin)
set -e
bb=/bin/busybox
input=$($bb cat)
field() { echo "$input" | $bb sed -n "s/^$1: *//p" | $bb head -n 1; }
case "$1" in
get-options)
  arg=$(field kernelArg)
  echo "name: ${name}"
  echo "kernelArgs:"
  echo "    - testbed.overlay=${name}"
  if [ -n "$arg" ]; then echo "    - $arg"; fi
  ;;
install)
${install}  ;;
*)
  echo "unknown command: $1" >&2
  exit 1
  ;;
esac
`;
}

function profile(board: TestbedArch): string {
  return `arch: ${board}\nplatform: metal\ncustomization:\n    extraKernelArgs:\n        - ${testbedProfileArg}\noutput:\n    kind: image\n    outFormat: .raw.xz\n`;
}

/** The overlay image for `arch` (its busybox's). */
export async function testbedOverlaySpec(busybox: string, arch: TestbedArch = "amd64"): Promise<ImageSpec> {
  const text = Buffer.from(testbedBoardText);
  const entries: TarEntry[] = [
    { type: "file", path: "bin/busybox", mode: 0o755, sourcePath: busybox, size: (await stat(busybox)).size },
    { type: "file", path: "artifacts/amd64/board.txt", mode: 0o644, content: text },
    { type: "file", path: "artifacts/arm64/board.txt", mode: 0o644, content: Buffer.from(testbedArm64BoardText) },
  ];
  for (const [name, board, fails] of overlays) {
    entries.push({
      type: "file",
      path: `installers/${name}`,
      mode: 0o755,
      content: Buffer.from(installerScript(name, board, fails)),
    });
    entries.push({ type: "file", path: `profiles/${name}.yaml`, mode: 0o644, content: Buffer.from(profile(board)) });
  }
  return { repository: testbedOverlayRepository, tag: testbedOverlayTag, arch, layers: [entries] };
}

/** The overlays catalog's entries for the pushed image. */
export function testbedOverlayEntries(host: string, digest: string): OverlayEntry[] {
  return overlays.map(([name]) => ({
    name,
    image: `${host}/${testbedOverlayRepository}:${testbedOverlayTag}`,
    digest,
  }));
}
