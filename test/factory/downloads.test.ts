// Every asset kind downloads from the factory and equals `boot-assets build` (downloads-suite.ts): at v1.10.3
// the kernel, initramfs, cmdline, UKI, installer, the dual-boot ISO and a disk image as raw, converted (VHD,
// whose footer identity is made from the inputs) and compressed (.raw.tar.gz); the GRUB ISO of v1.8.2.
// Every other disk format and compression (qcow2, OVA, .raw.xz, .raw.zst, .raw.gz) is the exhaustive tier's
// (downloads.exhaustive.test.ts, `npm test -- exhaustive`).
// Then a client that goes away while its uncached asset builds: the build goes on, the next request is a cache
// hit, and the request log records 499 as upstream's MatchError does for a cancelled request
// (internal/frontend/http/http.go).

import { describeDownloads } from "./downloads-suite.ts";

describeDownloads(
  "every asset kind downloads and equals `boot-assets build`",
  {
    "v1.10.3": [
      "kernel-amd64",
      "initramfs-amd64.xz",
      "cmdline-metal-amd64",
      "metal-amd64-uki.efi",
      "installer-amd64.tar",
      "metal-amd64.iso",
      "metal-amd64.raw",
      "metal-amd64.vhd",
      "metal-amd64.raw.tar.gz",
    ],
    "v1.8.2": ["metal-amd64.iso"],
  },
  { clientThatLeaves: true },
);
