// What the wizard shows per cloud platform beyond src/talos/platforms.ts: its architectures, its usual disk
// image format and whether Secure Boot images are offered for it. From upstream's cloud platform list (talos
// pkg/machinery/platforms/platforms.go CloudPlatforms: Architectures, DiskImageSuffix, SecureBootSupported,
// MinVersion). Platforms Talos keeps only for compatibility (packet) or that have no boot media (container)
// are not offered.

import { type Platform, platforms } from "../../talos/platforms.ts";

export interface PlatformUi {
  arches: readonly ("amd64" | "arm64")[];
  diskSuffix: string;
  secureBoot: boolean;
  /** The first Talos version upstream offers the platform in (major.minor.patch[-pre]). */
  since?: string;
}

const both = ["amd64", "arm64"] as const;
const amd64 = ["amd64"] as const;

const table: Readonly<Record<string, PlatformUi>> = {
  metal: { arches: both, diskSuffix: "raw.zst", secureBoot: true },
  aws: { arches: both, diskSuffix: "raw.xz", secureBoot: false },
  gcp: { arches: both, diskSuffix: "raw.tar.gz", secureBoot: false },
  equinixMetal: { arches: both, diskSuffix: "raw.xz", secureBoot: false },
  azure: { arches: both, diskSuffix: "vhd.xz", secureBoot: true },
  "digital-ocean": { arches: amd64, diskSuffix: "raw.gz", secureBoot: false },
  nocloud: { arches: both, diskSuffix: "raw.xz", secureBoot: true },
  openstack: { arches: both, diskSuffix: "raw.xz", secureBoot: false },
  vmware: { arches: both, diskSuffix: "ova", secureBoot: false },
  akamai: { arches: amd64, diskSuffix: "raw.gz", secureBoot: false, since: "1.7.0" },
  cloudstack: { arches: both, diskSuffix: "raw.gz", secureBoot: true, since: "1.8.0-alpha.2" },
  hcloud: { arches: amd64, diskSuffix: "raw.xz", secureBoot: false },
  oracle: { arches: both, diskSuffix: "qcow2", secureBoot: false },
  upcloud: { arches: amd64, diskSuffix: "raw.xz", secureBoot: false },
  vultr: { arches: amd64, diskSuffix: "raw.xz", secureBoot: false },
  exoscale: { arches: both, diskSuffix: "qcow2", secureBoot: false },
  opennebula: { arches: both, diskSuffix: "raw.zst", secureBoot: false, since: "1.7.0" },
  scaleway: { arches: both, diskSuffix: "raw.zst", secureBoot: false },
  alibabacloud: { arches: both, diskSuffix: "qcow2", secureBoot: false, since: "1.14.0-beta.2" },
};

/** The wizard's facts for a platform; undefined for one it does not offer. */
export function platformUi(name: string): PlatformUi | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

/** The cloud platforms the wizard offers, by title. */
export function cloudPlatforms(): Array<Platform & PlatformUi> {
  return platforms
    .filter((p) => p.name !== "metal" && platformUi(p.name) !== undefined)
    .map((p) => ({ ...p, ...(platformUi(p.name) as PlatformUi) }))
    .sort((a, b) => a.title.localeCompare(b.title));
}
