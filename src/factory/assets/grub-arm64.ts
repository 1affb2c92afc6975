// The factory's source of GRUB's arm64-efi modules for arm64 GRUB ISOs and disk images: the machine's when
// grub-efi-arm64-bin is installed, else Debian's package taken (never installed) into the package store under
// the factory's cache directory (`<dir>/debs`, `<dir>/debs-extracted`, `<dir>/apt/bookworm-arm64`).

import { resolveGrubPlatformDir } from "../../tools/grub.ts";

export function factoryGrubArm64EfiDir(
  cacheDir: string,
  log: (line: string) => void,
): (signal?: AbortSignal) => Promise<string> {
  return (signal) => resolveGrubPlatformDir("arm64-efi", { cacheDir, log, ...(signal ? { signal } : {}) });
}
