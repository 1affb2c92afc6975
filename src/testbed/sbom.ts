// The test bed release's SBOM: from Talos 1.11 upstream's imager image carries `usr/install/<arch>/
// talos.spdx.json` (talos Dockerfile, install-artifacts-<arch>: the rootfs's and the kernel's SPDX documents
// merged by hack/sbom.sh). The test bed's is an SPDX 2.3 JSON document listing the Debian packages its boot
// files come from, deterministic for the same packages and mtime. No consumer reads it; it is there so the
// imager image has upstream's contents for the version.

import type { DebianPackage } from "../tools/debian-packages.ts";

/** An SPDX ID part: letters, digits, "." and "-" only (SPDX 2.3 §3.2). */
function spdxIdPart(value: string): string {
  return value.replace(/[^A-Za-z0-9.-]+/g, "-");
}

/** `talos-<arch>.spdx.json` for `talosVersion`, listing `packages`. */
export function testbedSbom(options: {
  talosVersion: string;
  arch: string;
  packages: readonly DebianPackage[];
  mtime: number;
}): Buffer {
  const name = `talos-${options.arch}`;
  const created = new Date(options.mtime * 1000).toISOString().replace(/\.000Z$/, "Z");
  const packages = options.packages.map((p) => ({
    name: p.name,
    SPDXID: `SPDXRef-Package-deb-${spdxIdPart(p.name)}`,
    versionInfo: p.version,
    supplier: "Organization: Debian",
    downloadLocation: "NOASSERTION",
    filesAnalyzed: false,
    checksums: [{ algorithm: "SHA256", checksumValue: p.sha256 }],
    externalRefs: [
      {
        referenceCategory: "PACKAGE-MANAGER",
        referenceType: "purl",
        referenceLocator: `pkg:deb/debian/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}?arch=${options.arch}`,
      },
    ],
  }));
  const document = {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name,
    documentNamespace: `https://boot-assets.invalid/testbed/spdx/${encodeURIComponent(options.talosVersion)}/${name}`,
    creationInfo: { created, creators: ["Tool: boot-assets-testbed"] },
    packages,
    relationships: packages.map((p) => ({
      spdxElementId: "SPDXRef-DOCUMENT",
      relationshipType: "DESCRIBES",
      relatedSpdxElement: p.SPDXID,
    })),
  };
  return Buffer.from(`${JSON.stringify(document, null, 2)}\n`);
}
