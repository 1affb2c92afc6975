// THE Talos version rules table: the one place that says what changes at which Talos version. Everything
// version-dependent (test bed, imager, cmdline builder, disk layout) reads `rulesFor(version)`; nowhere
// else compares versions.
//
// Semantics follow upstream's quirks package (siderolabs/talos pkg/machinery/imager/quirks): a version is
// parsed tolerantly ("v" prefix, missing minor/patch), pre-release and build parts are dropped (so
// v1.10.0-alpha.1 follows the 1.10.0 rules), and a tag that does not parse gets the NEWEST rules.
// (Upstream is inconsistent here in two places — UseSDBootForUEFI and SupportsIMA answer as for an OLD
// version when the tag does not parse; we apply "newest" uniformly, as its comments intend.)
//
// The table is a baseline (the oldest behaviour we describe, Talos 1.0–1.3) plus rows, each with the
// first version it applies to and the rule in words; rulesFor applies every row up to the version.
//
// Not a row: quirks XFSMinAllocationGroupSize (a 64 GiB allocation-group floor from 1.14) bounds only the
// volumes Talos itself formats at run time (machined's volumeconfig asks quirks.New("")); the BOOT partition of
// an image is made by internal/pkg/partition/format.go with the version's mkfs.xfs config file alone.

import semver from "semver";
import { ukiSectionOrderTalos15, ukiSectionOrderTalos110 } from "../formats/uki.ts";
import type { Bootloader } from "./schematic.ts";
import { parseVersionCore } from "./version.ts";
import type { MutableRules, VersionRule, VersionRules } from "./version-rules-fields.ts";

export type { InitramfsCompression, VersionRule, VersionRules } from "./version-rules-fields.ts";

const allowedPaths15 = [
  "/etc/cri/conf.d",
  "/lib/firmware",
  "/lib/modules",
  "/lib64/ld-linux-x86-64.so.2",
  "/usr/etc/udev/rules.d",
  "/usr/local",
  "/usr/share/glvnd",
  "/usr/share/egl",
  "/etc/vulkan",
];

function baseline(): MutableRules {
  return {
    version: "",
    semver: undefined,
    modulesPath: "lib/modules",
    firmwarePath: "lib/firmware",
    initramfsCompression: "xz",
    squashfsCompression: "xz",
    squashfsSelinuxLabels: false,
    sdBootForUefi: false,
    installerImage: "installer",
    installerArtifacts: ["vmlinuz", "initramfs.xz"],
    // talos pkg/imager/out.go outInstaller: before UseSDBootForUEFI the signed UKI is `vmlinuz.efi.signed`
    // ("support for older secureboot installers").
    secureBootInstallerArtifacts: ["systemd-boot.efi", "vmlinuz.efi.signed"],
    extensionAllowedPaths: allowedPaths15,
    defaultKernelArgs: [],
    secureBootKernelArgs: [],
    nvmeIoTimeoutAwsOnly: false,
    metalConsoleTtyS0: true,
    haltIfInstalled: false,
    isoVolumeLabel: false,
    compressedMeta: false,
    grubResetOption: false,
    uki: false,
    isoBootloaderOverride: false,
    embeddedConfig: false,
    unifiedInstaller: false,
    ukiProfiles: false,
    ukiSplash: false,
    // talos internal/pkg/secureboot/uki/uki.go Build (1.5–1.9): objcopy --add-section in the generators' order.
    ukiSectionOrder: ukiSectionOrderTalos15,
    ukiPeHeadersRewritten: false,
    overlays: false,
    skipDataPartitions: false,
    metaAlwaysWritten: false,
    bootPartitionMiB: 1000,
    xfsMkfsConfig: "/usr/share/xfsprogs/mkfs/lts_6.1.conf",
    talosctlDownload: false,
    imagerSbom: false,
    ovaHardwareVersion: "vmx-13",
    ovaDiskEnableUuid: false,
    args: {
      initOnAlloc: true,
      nvmeIoTimeout: true,
      ima: true,
      selinux: false,
      moduleSigEnforce: false,
      procMemOverride: false,
      lockdown: true,
    },
  };
}

/** The rows, oldest first. */
export const versionRuleTable: readonly VersionRule[] = [
  {
    since: "1.4.0",
    rule: "GRUB menus get a reset entry (talos pkg/machinery/imager/quirks/quirks.go SupportsResetGRUBOption; pkg/imager/iso/grub.go)",
    apply: (r) => {
      r.grubResetOption = true;
    },
  },
  {
    since: "1.5.0",
    rule: "UKIs can be built (talos pkg/machinery/imager/quirks/quirks.go SupportsUKI)",
    apply: (r) => {
      r.uki = true;
    },
  },
  {
    // Every UKI builder since UKIs exist appends the imager's embedded boot image (talos pkg/splash/splash.go
    // GetBootImage; internal/pkg/secureboot/uki/uki.go before 1.10, internal/pkg/uki/uki.go generateSplash).
    since: "1.5.0",
    rule: "UKIs carry a .splash boot image (talos pkg/splash/splash.go, internal/pkg/uki/uki.go)",
    apply: (r) => {
      r.ukiSplash = true;
    },
  },
  {
    since: "1.6.3",
    rule: "META in talos.environment may be gzip-compressed (talos pkg/machinery/imager/quirks/quirks.go SupportsCompressedEncodedMETA)",
    apply: (r) => {
      r.compressedMeta = true;
    },
  },
  {
    since: "1.7.0",
    rule: "overlays are supported (talos pkg/machinery/imager/quirks/quirks.go SupportsOverlay)",
    apply: (r) => {
      r.overlays = true;
    },
  },
  {
    since: "1.8.0",
    rule: "initramfs and extension squashfs use zstd instead of xz (talos pkg/machinery/imager/quirks/quirks.go UseZSTDCompression)",
    apply: (r) => {
      r.initramfsCompression = "zstd";
      r.squashfsCompression = "zstd";
    },
  },
  {
    since: "1.8.0",
    rule: "metal amd64 no longer has console=ttyS0 (talos pkg/machinery/imager/quirks/quirks.go SupportsMetalPlatformConsoleTTYS0)",
    apply: (r) => {
      r.metalConsoleTtyS0 = false;
    },
  },
  {
    since: "1.8.0",
    rule: "ISOs get talos.halt_if_installed=1 (talos pkg/machinery/imager/quirks/quirks.go SupportsHaltIfInstalled)",
    apply: (r) => {
      r.haltIfInstalled = true;
    },
  },
  {
    since: "1.8.0",
    rule: "ISOs get a volume label (talos pkg/machinery/imager/quirks/quirks.go SupportsISOLabel)",
    apply: (r) => {
      r.isoVolumeLabel = true;
    },
  },
  {
    since: "1.8.0",
    rule: "disk images leave STATE and EPHEMERAL to first boot (talos pkg/machinery/imager/quirks/quirks.go SkipDataPartitions)",
    apply: (r) => {
      r.skipDataPartitions = true;
    },
  },
  {
    since: "1.8.0",
    rule: "BOOT is made with the 6.6 LTS mkfs.xfs config (talos pkg/machinery/imager/quirks/quirks.go XFSMkfsConfig)",
    apply: (r) => {
      r.xfsMkfsConfig = "/usr/share/xfsprogs/mkfs/lts_6.6.conf";
    },
  },
  {
    since: "1.8.0",
    rule: "the OVA's virtual hardware is vmx-15 instead of vmx-13 (talos pkg/imager/ova/ova.go, commit 70fdca6a4)",
    apply: (r) => {
      r.ovaHardwareVersion = "vmx-15";
    },
  },
  {
    since: "1.9.0",
    rule: "extensions may add /sbin/ldconfig and udev rules move to /usr/lib/udev/rules.d (talos v1.9.0 pkg/machinery/extensions/extensions.go AllowedPaths)",
    apply: (r) => {
      r.extensionAllowedPaths = [
        ...r.extensionAllowedPaths.filter((p) => p !== "/usr/etc/udev/rules.d"),
        "/usr/lib/udev/rules.d",
        "/sbin/ldconfig",
      ];
    },
  },
  {
    since: "1.10.0",
    rule: "/usr merge: modules in usr/lib/modules, firmware in usr/lib/firmware, and the extension paths follow (talos pkg/machinery/imager/quirks/quirks.go KernelModulesPath, FirmwarePath; v1.10.0 pkg/machinery/extensions/extensions.go AllowedPaths)",
    apply: (r) => {
      r.modulesPath = "usr/lib/modules";
      r.firmwarePath = "usr/lib/firmware";
      r.extensionAllowedPaths = [
        "/etc/cri/conf.d",
        "/usr/lib/firmware",
        "/usr/lib/modules",
        "/usr/lib/ld-linux-x86-64.so.2",
        "/usr/bin/ldconfig",
        "/usr/lib/udev/rules.d",
        "/usr/local",
        "/usr/share/glvnd",
        "/usr/share/egl",
        "/etc/vulkan",
      ];
    },
  },
  {
    since: "1.10.0",
    rule: "UEFI boots only through systemd-boot (talos pkg/machinery/imager/quirks/quirks.go UseSDBootForUEFI)",
    apply: (r) => {
      r.sdBootForUefi = true;
    },
  },
  {
    since: "1.10.0",
    rule: "secure-boot installers carry the signed UKI as vmlinuz.efi, no longer vmlinuz.efi.signed (talos pkg/imager/out.go outInstaller, quirks UseSDBootForUEFI)",
    apply: (r) => {
      r.secureBootInstallerArtifacts = ["systemd-boot.efi", "vmlinuz.efi"];
    },
  },
  {
    since: "1.10.0",
    rule: "unified installer: installer-base image, artifacts are the UKI and systemd-boot (talos pkg/machinery/imager/quirks/quirks.go SupportsUnifiedInstaller)",
    apply: (r) => {
      r.installerImage = "installer-base";
      r.installerArtifacts = ["systemd-boot.efi", "vmlinuz.efi"];
      r.unifiedInstaller = true;
    },
  },
  {
    since: "1.10.0",
    // talos pkg/machinery/imager/quirks/quirks.go SupportsUKIProfiles; internal/pkg/uki/generate.go
    // generateProfiles; the reset profiles per output kind in pkg/imager/imager.go buildUKI.
    rule: "UKIs carry .profile sections: main, then reset (ISO) or reset-maintenance (disk image, installer) with its own .cmdline (talos pkg/machinery/imager/quirks/quirks.go SupportsUKIProfiles; internal/pkg/uki/generate.go)",
    apply: (r) => {
      r.ukiProfiles = true;
    },
  },
  {
    since: "1.10.0",
    // talos internal/pkg/uki/uki.go Build/BuildSigned (the generators' order); before, internal/pkg/secureboot/uki/
    // uki.go put .initrd third and .linux last.
    rule: "UKI payload sections go .osrel .cmdline .uname .splash .pcrpkey .linux .initrd (before: .osrel .cmdline .initrd .splash .uname .pcrpkey .linux) (talos internal/pkg/uki/uki.go)",
    apply: (r) => {
      r.ukiSectionOrder = ukiSectionOrderTalos110;
    },
  },
  {
    since: "1.10.0",
    // talos internal/pkg/uki/assemble.go → internal/pkg/uki/internal/pe/native.go AssembleNative; before,
    // internal/pkg/secureboot/uki/uki.go ran objcopy --add-section on the stub.
    rule: "UKI PE headers are written anew: DOS header with e_lfanew 0x80, linker version 0, TimeDateStamp = SOURCE_DATE_EPOCH, section data packed after the headers (talos internal/pkg/uki/internal/pe/native.go)",
    apply: (r) => {
      r.ukiPeHeadersRewritten = true;
    },
  },
  {
    since: "1.10.0",
    rule: "SELinux is enabled (selinux=1) (talos pkg/machinery/imager/quirks/quirks.go SupportsSELinux; pkg/machinery/kernel/kernel.go DefaultArgs)",
    apply: (r) => {
      r.args.selinux = true;
    },
  },
  {
    since: "1.10.0",
    rule: "BOOT is made with the 6.12 LTS mkfs.xfs config (talos pkg/machinery/imager/quirks/quirks.go XFSMkfsConfig)",
    apply: (r) => {
      r.xfsMkfsConfig = "/usr/share/xfsprogs/mkfs/lts_6.12.conf";
    },
  },
  {
    since: "1.11.0",
    rule: "IMA args are dropped after 1.10.x (talos pkg/machinery/imager/quirks/quirks.go SupportsIMA (up to 1.10.99); pkg/machinery/kernel/kernel.go DefaultArgs)",
    apply: (r) => {
      r.args.ima = false;
    },
  },
  {
    since: "1.11.0",
    rule: "the imager image carries the SBOM as usr/install/<arch>/talos.spdx.json (talos Dockerfile install-artifacts-<arch>; hack/sbom.sh)",
    apply: (r) => {
      r.imagerSbom = true;
    },
  },
  {
    since: "1.11.0",
    rule: "BOOT partition grows to 2000 MiB (talos pkg/machinery/imager/quirks/quirks.go PartitionSizes; quirks/partitions.go)",
    apply: (r) => {
      r.bootPartitionMiB = 2000;
    },
  },
  {
    // Upstream's minimum is 1.11.0-alpha.3, but quirks drop the pre-release part before comparing, so every
    // 1.11.0 pre-release qualifies: the same as 1.11.0 here.
    since: "1.11.0",
    rule: "talosctl downloads from the release's talosctl-all image, from 1.11.0-alpha.3 (talos quirks SupportsFactoryTalosctlDownload; image-factory internal/artifacts/manager.go GetTalosctlTuples)",
    apply: (r) => {
      r.talosctlDownload = true;
    },
  },
  {
    since: "1.12.0",
    rule: "extensions may add /usr/lib/ld-linux-aarch64.so.1 (talos v1.12.0 pkg/machinery/extensions/extensions.go AllowedPaths)",
    apply: (r) => {
      r.extensionAllowedPaths = [...r.extensionAllowedPaths, "/usr/lib/ld-linux-aarch64.so.1"];
    },
  },
  {
    since: "1.12.0",
    rule: "ISOs take the schematic's boot loader (talos pkg/machinery/imager/quirks/quirks.go ISOSupportsSettingBootloader)",
    apply: (r) => {
      r.isoBootloaderOverride = true;
    },
  },
  {
    since: "1.12.0",
    rule: "a schematic may embed a machine configuration, as a virtual extension (talos quirks SupportsEmbeddedConfig, pkg/imager/embed.go)",
    apply: (r) => {
      r.embeddedConfig = true;
    },
  },
  {
    since: "1.12.0",
    rule: "the OVA's OVF sets the ExtraConfig disk.EnableUUID=true after nvram (talos pkg/imager/ova/ova.go, commit 4fb4c8678)",
    apply: (r) => {
      r.ovaDiskEnableUuid = true;
    },
  },
  {
    since: "1.12.0",
    rule: "modules must be signed (module.sig_enforce=1) (talos pkg/machinery/imager/quirks/quirks.go SupportsDisablingModuleSignatureVerification; pkg/machinery/kernel/kernel.go DefaultArgs)",
    apply: (r) => {
      r.args.moduleSigEnforce = true;
    },
  },
  {
    since: "1.13.0",
    rule: "disk images always carry a written META, values or not (talos cmd/installer/pkg/install/install.go: image mode writes meta.img)",
    apply: (r) => {
      r.metaAlwaysWritten = true;
    },
  },
  {
    since: "1.13.0",
    rule: "extension squashfs images get the SELinux labels of the extension's tar entries (PAX SCHILY.xattr.security.selinux, the embedded config's included) as mksquashfs pseudo xattrs, every other xattr excluded (talos pkg/archiver/untar.go, internal/pkg/extensions/compress.go xattrPseudoFlags)",
    apply: (r) => {
      r.squashfsSelinuxLabels = true;
    },
  },
  {
    since: "1.13.0",
    rule: "BOOT is made with the 6.18 LTS mkfs.xfs config (talos pkg/machinery/imager/quirks/quirks.go XFSMkfsConfig; an mkfs.xfs without it uses the newest older one installed)",
    apply: (r) => {
      r.xfsMkfsConfig = "/usr/share/xfsprogs/mkfs/lts_6.18.conf";
    },
  },
  {
    since: "1.13.0",
    rule: "proc_mem.force_override=never is a default arg (talos pkg/machinery/imager/quirks/quirks.go ProcMemOverrideNever)",
    apply: (r) => {
      r.args.procMemOverride = true;
    },
  },
  {
    since: "1.14.0",
    rule: "extensions may add /etc/ld.so.conf and ld.so.cache, NVIDIA's tools and nvme (talos pkg/machinery/extensions/extensions.go AllowedPaths)",
    apply: (r) => {
      r.extensionAllowedPaths = [
        ...r.extensionAllowedPaths,
        "/etc/ld.so.conf",
        "/etc/ld.so.cache",
        "/usr/bin/nvidia-modprobe",
        "/usr/bin/nvidia-pcc",
        "/usr/bin/nvidia-smi",
        "/usr/bin/nvidia-ctk",
        "/usr/bin/nvidia-cdi-hook",
        "/usr/bin/nvme",
      ];
    },
  },
  {
    since: "1.14.0",
    rule: "init_on_alloc=1, the nvme timeout (AWS only from now) and lockdown=confidentiality are no longer defaults (talos pkg/machinery/imager/quirks/quirks.go DropInitOnAllocInArgs, NvmeCoreIoTimeoutAWSOnly, and on talos main ForcesLockdownConfidentiality (SecureBootArgs))",
    apply: (r) => {
      r.args.initOnAlloc = false;
      r.args.nvmeIoTimeout = false;
      r.args.lockdown = false;
    },
  },
  {
    since: "1.14.0",
    rule: "the AWS platform args carry nvme_core.io_timeout=4294967295 (talos pkg/machinery/imager/quirks/quirks.go NvmeCoreIoTimeoutAWSOnly; internal/app/machined/pkg/runtime/v1alpha1/platform/aws/aws.go)",
    apply: (r) => {
      r.nvmeIoTimeoutAwsOnly = true;
    },
  },
];

function kernelArgs(args: MutableRules["args"]): string[] {
  const out: string[] = [];
  if (args.initOnAlloc) out.push("init_on_alloc=1");
  out.push("slab_nomerge", "pti=on", "consoleblank=0");
  if (args.nvmeIoTimeout) out.push("nvme_core.io_timeout=4294967295");
  out.push("printk.devkmsg=on");
  if (args.ima) out.push("ima_template=ima-ng", "ima_appraise=fix", "ima_hash=sha512");
  if (args.selinux) out.push("selinux=1");
  if (args.moduleSigEnforce) out.push("module.sig_enforce=1");
  if (args.procMemOverride) out.push("proc_mem.force_override=never");
  return out;
}

/**
 * Reads a Talos version the way upstream's semver.ParseTolerant does ("v" prefix, missing parts as 0),
 * keeping only major.minor.patch. Undefined when it is not a version.
 */
export function parseTalosVersion(version: string): string | undefined {
  return parseVersionCore(version);
}

/** Rules already computed, per version string (bounded: at most 1000 versions are kept). */
const rulesMemo = new Map<string, VersionRules>();

/** The rules for a Talos version (e.g. "v1.8.2", "v1.10.0-beta.1"; anything unparseable → newest). */
export function rulesFor(version: string): VersionRules {
  const known = rulesMemo.get(version);
  if (known !== undefined) return known;
  const parsed = parseTalosVersion(version);
  const rules = baseline();
  for (const row of versionRuleTable) if (parsed === undefined || semver.gte(parsed, row.since)) row.apply(rules);
  const { args, ...rest } = rules;
  const result: VersionRules = Object.freeze({
    ...rest,
    version,
    semver: parsed,
    defaultKernelArgs: Object.freeze(kernelArgs(args)),
    secureBootKernelArgs: Object.freeze(args.lockdown ? ["lockdown=confidentiality"] : []),
    extensionAllowedPaths: Object.freeze([...rest.extensionAllowedPaths]),
    installerArtifacts: Object.freeze([...rest.installerArtifacts]),
    secureBootInstallerArtifacts: Object.freeze([...rest.secureBootInstallerArtifacts]),
  });
  if (rulesMemo.size < 1000) rulesMemo.set(version, result);
  return result;
}

/**
 * The bootloader upstream picks for an image: secure boot → sd-boot; a schematic's choice where the output takes
 * one; before sd-boot-only UEFI → GRUB; an ISO before ISOs take a choice (1.10/1.11) → dual-boot whatever the
 * arch; else arm64 → sd-boot and amd64 → dual-boot (GRUB for BIOS, sd-boot for UEFI).
 */
export function bootloaderFor(
  rules: VersionRules,
  options: { arch: string; secureBoot: boolean; output: "iso" | "disk"; override?: Bootloader | undefined },
): Bootloader {
  // A schematic's choice wins unless Secure Boot is on (talos pkg/imager/profile/output.go selectBootloader).
  if (options.override !== undefined && !options.secureBoot) return options.override;
  if (options.secureBoot) return "sd-boot";
  if (!rules.sdBootForUefi) return "grub";
  // ISOs ignore the profile's boot loader until quirks ISOSupportsSettingBootloader (1.12): with
  // UseSDBootForUEFI they are hybrid for every arch (talos pkg/imager/out.go outISO, CreateHybrid).
  if (options.output === "iso" && !rules.isoBootloaderOverride) return "dual-boot";
  if (options.arch === "arm64") return "sd-boot";
  return "dual-boot";
}
