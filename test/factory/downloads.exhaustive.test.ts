// The exhaustive tier's share of the downloads (downloads-suite.ts): every disk format and compression the CI
// tier's downloads.test.ts leaves out, at v1.10.3, each downloaded from the factory, checked with its own tool
// and equal byte for byte to what `boot-assets build` writes.

import { describeDownloads } from "./downloads-suite.ts";

describeDownloads("every disk format and compression downloads and equals `boot-assets build`", {
  "v1.10.3": [
    "metal-amd64.qcow2",
    "metal-amd64.ova",
    "metal-amd64.raw.xz",
    "metal-amd64.raw.zst",
    "metal-amd64.raw.gz",
  ],
});
