// The Talos platforms boot assets can be made for, and the kernel args each one adds. Mirrors the
// KernelArgs() of every platform in upstream's machined runtime
// (internal/app/machined/pkg/runtime/v1alpha1/platform/<name>), which the imager calls for the cmdline.
// Version-dependent differences come from the version rules, never from a version test here.

import { badRequest } from "../errors.ts";
import type { VersionRules } from "./version-rules.ts";

export type Arch = "amd64" | "arm64";
export const architectures: readonly Arch[] = ["amd64", "arm64"];

export interface Platform {
  /** The name in asset paths and in `talos.platform=`. */
  readonly name: string;
  /** Human-readable name. */
  readonly title: string;
  /** The platform's kernel args for an architecture, in upstream's order (`key=value` or a bare `key`). */
  readonly kernelArgs: (arch: Arch, rules: VersionRules) => readonly string[];
}

const serialConsoles = ["console=tty1", "console=ttyS0", "net.ifnames=0"];
const dashboardOff = "talos.dashboard.disabled=1";
const kexecOff = "sysctl.kernel.kexec_load_disabled=1";
const always =
  (...args: string[]) =>
  () =>
    args;

const table: readonly Platform[] = [
  {
    name: "akamai",
    title: "Akamai",
    kernelArgs: always("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0"),
  },
  { name: "alibabacloud", title: "Alibaba Cloud", kernelArgs: always(...serialConsoles) },
  {
    name: "aws",
    title: "Amazon Web Services (AWS)",
    // AWS recommends the largest NVMe timeout; from 1.14 only AWS images carry it.
    kernelArgs: (_arch, rules) =>
      rules.nvmeIoTimeoutAwsOnly ? [...serialConsoles, "nvme_core.io_timeout=4294967295"] : serialConsoles,
  },
  {
    name: "azure",
    title: "Microsoft Azure",
    kernelArgs: always(
      "console=ttyS0,115200n8",
      "earlyprintk=ttyS0,115200",
      "rootdelay=300",
      "net.ifnames=0",
      dashboardOff,
      kexecOff,
    ),
  },
  { name: "cloudstack", title: "Apache CloudStack", kernelArgs: always(...serialConsoles) },
  // Talos in a container: no kernel args (platform/container/container.go); upstream builds assets for it too.
  { name: "container", title: "Container", kernelArgs: () => [] },
  {
    name: "digital-ocean",
    title: "DigitalOcean",
    kernelArgs: always("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0"),
  },
  {
    name: "equinixMetal",
    title: "Equinix Metal",
    kernelArgs: (arch) => (arch === "amd64" ? ["console=ttyS1,115200n8"] : ["console=ttyAMA0,115200"]),
  },
  { name: "exoscale", title: "Exoscale", kernelArgs: always(...serialConsoles) },
  {
    name: "gcp",
    title: "Google Cloud (GCP)",
    kernelArgs: always("console=ttyS0", "net.ifnames=0", dashboardOff, kexecOff),
  },
  { name: "hcloud", title: "Hetzner Cloud", kernelArgs: always(...serialConsoles) },
  {
    name: "metal",
    title: "Bare metal",
    kernelArgs: (arch, rules) => {
      if (arch === "arm64") return ["console=ttyAMA0", "console=tty0"];
      return rules.metalConsoleTtyS0 ? ["console=ttyS0", "console=tty0"] : ["console=tty0"];
    },
  },
  { name: "nocloud", title: "Nocloud", kernelArgs: always(...serialConsoles) },
  { name: "opennebula", title: "OpenNebula", kernelArgs: always(...serialConsoles) },
  { name: "openstack", title: "OpenStack", kernelArgs: always(...serialConsoles) },
  { name: "oracle", title: "Oracle Cloud", kernelArgs: always(...serialConsoles, dashboardOff) },
  // "packet" is kept by Talos for backwards compatibility: Equinix Metal under its old name (platform.go).
  {
    name: "packet",
    title: "Equinix Metal (Packet)",
    kernelArgs: (arch) => (arch === "amd64" ? ["console=ttyS1,115200n8"] : ["console=ttyAMA0,115200"]),
  },
  { name: "scaleway", title: "Scaleway", kernelArgs: always(...serialConsoles, dashboardOff) },
  { name: "upcloud", title: "UpCloud", kernelArgs: always("net.ifnames=0") },
  {
    name: "vmware",
    title: "VMware",
    kernelArgs: (arch) =>
      arch === "amd64"
        ? ["talos.config=guestinfo", "console=tty0", "console=ttyS0", "earlyprintk=ttyS0,115200", "net.ifnames=0"]
        : ["talos.config=guestinfo", "console=tty0", "console=ttyAMA0", "net.ifnames=0"],
  },
  { name: "vultr", title: "Vultr", kernelArgs: always("net.ifnames=0") },
];

const byName = new Map(table.map((p) => [p.name, p]));

/** Every platform, sorted by name. */
export const platforms: readonly Platform[] = table;

export function isPlatformName(name: string): boolean {
  return byName.has(name);
}

/** The platform named `name`; BadRequest naming it (and the known ones) when there is none. */
export function platformByName(name: string): Platform {
  const platform = byName.get(name);
  if (platform === undefined) {
    const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
    throw badRequest(`unknown platform "${shown}" (known: ${table.map((p) => p.name).join(", ")})`, "PLATFORM_UNKNOWN");
  }
  return platform;
}

export function isArch(value: string): value is Arch {
  return value === "amd64" || value === "arm64";
}
