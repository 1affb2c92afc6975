// The fields of the Talos version rules (src/talos/version-rules.ts holds the table that sets them): what
// each rule decides, in words, beside its type.

import type { UkiPayloadSection } from "../formats/uki.ts";

export type InitramfsCompression = "zstd" | "xz";

export interface VersionRules {
  /** The version asked for, as given. */
  readonly version: string;
  /** major.minor.patch it was read as, or undefined when it is not a version (newest rules apply). */
  readonly semver: string | undefined;
  /** Where kernel modules live in the rootfs and in extensions (no leading slash). */
  readonly modulesPath: "lib/modules" | "usr/lib/modules";
  /** Where firmware lives (no leading slash). */
  readonly firmwarePath: "lib/firmware" | "usr/lib/firmware";
  /** Compression of the initramfs and of the cpio appended to it. */
  readonly initramfsCompression: InitramfsCompression;
  /** mksquashfs compressor for extension layers (with level 18 for zstd). */
  readonly squashfsCompression: InitramfsCompression;
  /**
   * Extension squashfs images carry the SELinux labels the extension's tar gave (`SCHILY.xattr.security.selinux`
   * PAX records) as mksquashfs pseudo xattrs, and no other xattr (`-xattrs-exclude '.*'`). Before: no flags.
   */
  readonly squashfsSelinuxLabels: boolean;
  /** UEFI boots only through systemd-boot; BIOS still through GRUB (dual-boot). Before: GRUB for both. */
  readonly sdBootForUefi: boolean;
  /** The installer image repository: `installer-base` (unified installer) or `installer`. */
  readonly installerImage: "installer" | "installer-base";
  /** Boot files in the installer's artifacts layer, under `usr/install/<arch>/`. */
  readonly installerArtifacts: readonly string[];
  /** A secure-boot installer's artifacts (signed systemd-boot and UKI), under `usr/install/<arch>/`. */
  readonly secureBootInstallerArtifacts: readonly string[];
  /** Paths (absolute) under which an extension's non-directory entries must lie. */
  readonly extensionAllowedPaths: readonly string[];
  /** Kernel args every image gets (after the platform's), in upstream's order. */
  readonly defaultKernelArgs: readonly string[];
  /** Kernel args added for secure boot images. */
  readonly secureBootKernelArgs: readonly string[];
  /** nvme_core.io_timeout=4294967295 is an AWS platform arg instead of a default arg for every platform. */
  readonly nvmeIoTimeoutAwsOnly: boolean;
  /** The metal platform's amd64 console args include console=ttyS0. */
  readonly metalConsoleTtyS0: boolean;
  /** ISO images get talos.halt_if_installed=1. */
  readonly haltIfInstalled: boolean;
  /** ISOs carry a volume label `Talos-<version>`. */
  readonly isoVolumeLabel: boolean;
  /** META may be gzip-compressed in talos.environment=INSTALLER_META_BASE64. */
  readonly compressedMeta: boolean;
  /** GRUB menus have a "Reset Talos installation" entry. */
  readonly grubResetOption: boolean;
  /** UKIs can be built. */
  readonly uki: boolean;
  /** An ISO takes the schematic's boot loader choice (quirks ISOSupportsSettingBootloader). */
  readonly isoBootloaderOverride: boolean;
  /** A schematic may embed a machine configuration (quirks SupportsEmbeddedConfig). */
  readonly embeddedConfig: boolean;
  /** One installer for every boot loader (installer-base + UKI artifacts): installers and UKIs take extra args. */
  readonly unifiedInstaller: boolean;
  /** UKIs carry .profile sections: main, then reset (ISOs) or reset-maintenance (disk images, installers). */
  readonly ukiProfiles: boolean;
  /** UKIs carry a `.splash` boot image. */
  readonly ukiSplash: boolean;
  /** The order of a UKI's payload sections (profiles and .pcrsig follow). */
  readonly ukiSectionOrder: readonly UkiPayloadSection[];
  /**
   * The UKI's PE headers are written anew as Talos's native assembler does (src/formats/pe-native.ts); before,
   * the stub's headers are kept and the sections appended (src/formats/pe.ts).
   */
  readonly ukiPeHeadersRewritten: boolean;
  /** Overlays (board support) are supported. */
  readonly overlays: boolean;
  /** Disk images leave STATE/EPHEMERAL to Talos's first boot. */
  readonly skipDataPartitions: boolean;
  /** Disk images get a META header even with no META values (else META stays zeroed). */
  readonly metaAlwaysWritten: boolean;
  /** BOOT partition size in MiB (GRUB layout; the UKI layout's EFI is 100 + 1 + this). */
  readonly bootPartitionMiB: number;
  /** mkfs.xfs config file upstream passes for BOOT. */
  readonly xfsMkfsConfig: string;
  /** The factory lists and serves talosctl binaries from the release's `talosctl-all` image. */
  readonly talosctlDownload: boolean;
  /** The imager image carries the release's SBOM, `usr/install/<arch>/talos.spdx.json` (the imager never reads it). */
  readonly imagerSbom: boolean;
  /** The OVA's virtual hardware version (OVF vssd:VirtualSystemType). */
  readonly ovaHardwareVersion: "vmx-13" | "vmx-15";
  /** The OVA's OVF sets the VMware ExtraConfig disk.EnableUUID=true (stable disk serials in the guest). */
  readonly ovaDiskEnableUuid: boolean;
}

export type MutableRules = { -readonly [K in keyof VersionRules]: VersionRules[K] } & {
  /** Flags behind the default kernel args, turned into the ordered list at the end. */
  args: {
    initOnAlloc: boolean;
    nvmeIoTimeout: boolean;
    ima: boolean;
    selinux: boolean;
    moduleSigEnforce: boolean;
    procMemOverride: boolean;
    lockdown: boolean;
  };
};

export interface VersionRule {
  /** First version the rule applies to (major.minor.patch). */
  readonly since: string;
  /** The rule in words, as the reference states it. */
  readonly rule: string;
  readonly apply: (rules: MutableRules) => void;
}
