import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bootloaderFor,
  parseTalosVersion,
  rulesFor,
  type VersionRules,
  versionRuleTable,
} from "../../src/talos/version-rules.ts";

// One row per rule of upstream's quirks (siderolabs/talos pkg/machinery/imager/quirks/quirks.go, partitions.go): the rule's wording, then
// versions on both sides of its boundary with what must hold there.
const rows: [string, [string, (r: VersionRules) => unknown, unknown][]][] = [
  [
    "modules live in lib/modules before 1.10 and usr/lib/modules from 1.10",
    [
      ["v1.9.5", (r) => r.modulesPath, "lib/modules"],
      ["v1.10.0", (r) => r.modulesPath, "usr/lib/modules"],
      ["v1.8.2", (r) => r.firmwarePath, "lib/firmware"],
      ["v1.10.3", (r) => r.firmwarePath, "usr/lib/firmware"],
    ],
  ],
  [
    "initramfs.xz is zstd-compressed from 1.8 (xz before), extension squashfs too",
    [
      ["v1.7.7", (r) => r.initramfsCompression, "xz"],
      ["v1.8.0", (r) => r.initramfsCompression, "zstd"],
      ["v1.7.7", (r) => r.squashfsCompression, "xz"],
      ["v1.8.0", (r) => r.squashfsCompression, "zstd"],
    ],
  ],
  [
    "disk images: <1.10 grub; else dual-boot; secure boot and arm64 ≥1.10 sd-boot (talos pkg/imager/profile/output.go selectBootloader)",
    [
      ["v1.9.0", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "disk" }), "grub"],
      ["v1.9.0", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "disk" }), "grub"],
      ["v1.9.0", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: true, output: "disk" }), "sd-boot"],
      ["v1.10.0", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "disk" }), "dual-boot"],
      ["v1.10.0", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "disk" }), "sd-boot"],
      ["v1.11.5", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "disk" }), "sd-boot"],
      [
        "v1.10.0",
        (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "disk", override: "grub" }),
        "grub",
      ],
    ],
  ],
  [
    "ISOs: GRUB (every arch) <1.10; hybrid (every arch) for 1.10/1.11 with UseSDBootForUEFI; from 1.12 the profile's choice, arm64 sd-boot (talos pkg/imager/out.go outISO)",
    [
      ["v1.9.6", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "iso" }), "grub"],
      ["v1.9.6", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "iso" }), "grub"],
      ["v1.10.0", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "iso" }), "dual-boot"],
      ["v1.11.6", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "iso" }), "dual-boot"],
      ["v1.11.6", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "iso" }), "dual-boot"],
      ["v1.11.6", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: true, output: "iso" }), "sd-boot"],
      ["v1.12.0", (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "iso" }), "sd-boot"],
      ["v1.12.0", (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "iso" }), "dual-boot"],
      [
        "v1.12.0",
        (r) => bootloaderFor(r, { arch: "arm64", secureBoot: false, output: "iso", override: "grub" }),
        "grub",
      ],
    ],
  ],
  [
    "installer-base (unified installer, UKI + systemd-boot artifacts) from 1.10; installer with kernel + initramfs before",
    [
      ["v1.9.4", (r) => r.installerImage, "installer"],
      ["v1.9.4", (r) => r.installerArtifacts.join(" "), "vmlinuz initramfs.xz"],
      ["v1.10.0", (r) => r.installerImage, "installer-base"],
      ["v1.10.0", (r) => [...r.installerArtifacts].sort().join(" "), "systemd-boot.efi vmlinuz.efi"],
    ],
  ],
  [
    "secure-boot installers: the signed UKI is vmlinuz.efi.signed before 1.10 (talos pkg/imager/out.go outInstaller)",
    [
      ["v1.8.2", (r) => r.secureBootInstallerArtifacts.join(" "), "systemd-boot.efi vmlinuz.efi.signed"],
      ["v1.9.6", (r) => r.secureBootInstallerArtifacts.join(" "), "systemd-boot.efi vmlinuz.efi.signed"],
      ["v1.10.0-alpha.1", (r) => r.secureBootInstallerArtifacts.join(" "), "systemd-boot.efi vmlinuz.efi"],
      ["v1.12.0", (r) => r.secureBootInstallerArtifacts.join(" "), "systemd-boot.efi vmlinuz.efi"],
    ],
  ],
  [
    "extension squashfs carries the tar's SELinux labels, other xattrs excluded, from 1.13 (talos internal/pkg/extensions/compress.go xattrPseudoFlags)",
    [
      ["v1.12.4", (r) => r.squashfsSelinuxLabels, false],
      ["v1.13.0-alpha.1", (r) => r.squashfsSelinuxLabels, true],
      ["v1.13.0", (r) => r.squashfsSelinuxLabels, true],
    ],
  ],
  [
    "metal ttyS0 dropped at 1.8.0",
    [
      ["v1.7.6", (r) => r.metalConsoleTtyS0, true],
      ["v1.8.0", (r) => r.metalConsoleTtyS0, false],
    ],
  ],
  [
    "zstd and ISO volume label and halt_if_installed from 1.8.0",
    [
      ["v1.7.9", (r) => [r.isoVolumeLabel, r.haltIfInstalled], [false, false]],
      ["v1.8.0", (r) => [r.isoVolumeLabel, r.haltIfInstalled], [true, true]],
    ],
  ],
  [
    "BOOT's mkfs.xfs config follows the LTS kernel: 6.12 from 1.10, 6.18 from 1.13 (quirks XFSMkfsConfig)",
    [
      ["v1.12.4", (r) => r.xfsMkfsConfig, "/usr/share/xfsprogs/mkfs/lts_6.12.conf"],
      ["v1.13.0", (r) => r.xfsMkfsConfig, "/usr/share/xfsprogs/mkfs/lts_6.18.conf"],
    ],
  ],
  [
    "ISOs take the schematic's boot loader from Talos 1.12 (quirks ISOSupportsSettingBootloader)",
    [
      ["v1.11.5", (r) => r.isoBootloaderOverride, false],
      ["v1.12.0", (r) => r.isoBootloaderOverride, true],
      [
        "v1.8.0",
        (r) => bootloaderFor(r, { arch: "amd64", secureBoot: false, output: "disk", override: "sd-boot" }),
        "sd-boot",
      ],
      [
        "v1.10.0",
        (r) => bootloaderFor(r, { arch: "amd64", secureBoot: true, output: "iso", override: "grub" }),
        "sd-boot",
      ],
    ],
  ],
  [
    "From Talos 1.13 the installer writes META into every disk image, values or not (cmd/installer/pkg/install/install.go)",
    [
      ["v1.12.4", (r) => r.metaAlwaysWritten, false],
      ["v1.13.0", (r) => r.metaAlwaysWritten, true],
    ],
  ],
  [
    "From Talos 1.8, STATE and EPHEMERAL are created by Talos at first boot",
    [
      ["v1.7.0", (r) => r.skipDataPartitions, false],
      ["v1.8.0", (r) => r.skipDataPartitions, true],
    ],
  ],
  [
    "META gzip'd if longer than 256 bytes (Talos ≥ 1.6.3)",
    [
      ["v1.6.2", (r) => r.compressedMeta, false],
      ["v1.6.3", (r) => r.compressedMeta, true],
    ],
  ],
  [
    // talos quirks.go SupportsUKIProfiles (1.10.0; an unparseable tag is the newest Talos); pkg/splash is in
    // every UKI builder from 1.5 (internal/pkg/secureboot/uki, then internal/pkg/uki generateSplash).
    "UKI .profile sections from 1.10.0 (pre-releases too, unparseable tags too); .splash in every UKI from 1.5",
    [
      ["v1.4.8", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [false, false, false]],
      ["v1.5.0", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, false]],
      ["v1.9.6", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, false]],
      ["v1.10.0-alpha.0", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, true]],
      ["v1.10.0", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, true]],
      ["v1.13.2", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, true]],
      ["latest-dev", (r) => [r.uki, r.ukiSplash, r.ukiProfiles], [true, true, true]],
    ],
  ],
  [
    // talos internal/pkg/secureboot/uki/uki.go Build (1.5–1.9) against internal/pkg/uki/uki.go Build (1.10).
    "UKI payload order: .initrd third and .linux last before 1.10.0; .linux then .initrd last from 1.10.0",
    [
      ["v1.5.0", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .initrd .splash .uname .pcrpkey .linux"],
      ["v1.8.2", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .initrd .splash .uname .pcrpkey .linux"],
      ["v1.9.6", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .initrd .splash .uname .pcrpkey .linux"],
      ["v1.10.0-alpha.0", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .uname .splash .pcrpkey .linux .initrd"],
      ["v1.10.0", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .uname .splash .pcrpkey .linux .initrd"],
      ["v1.13.2", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .uname .splash .pcrpkey .linux .initrd"],
      ["latest-dev", (r) => r.ukiSectionOrder.join(" "), ".osrel .cmdline .uname .splash .pcrpkey .linux .initrd"],
    ],
  ],
  [
    "SELinux, sd-boot-only UEFI, /usr merge, UKI profiles, unified installer from 1.10.0",
    [
      [
        "v1.9.9",
        (r) => [r.sdBootForUefi, r.ukiProfiles, r.defaultKernelArgs.includes("selinux=1")],
        [false, false, false],
      ],
      [
        "v1.10.0",
        (r) => [r.sdBootForUefi, r.ukiProfiles, r.defaultKernelArgs.includes("selinux=1")],
        [true, true, true],
      ],
    ],
  ],
  [
    "talosctl downloads from 1.11.0-alpha.3 (quirks SupportsFactoryTalosctlDownload; the pre-release part is dropped, so all of 1.11.0's count)",
    [
      ["v1.10.7", (r) => r.talosctlDownload, false],
      ["v1.11.0-alpha.0", (r) => r.talosctlDownload, true],
      ["v1.11.0-beta.1", (r) => r.talosctlDownload, true],
      ["v1.11.0", (r) => r.talosctlDownload, true],
      ["latest-dev", (r) => r.talosctlDownload, true],
    ],
  ],
  [
    "IMA args up to 1.10.x",
    [
      ["v1.10.7", (r) => r.defaultKernelArgs.includes("ima_hash=sha512"), true],
      ["v1.11.0", (r) => r.defaultKernelArgs.includes("ima_template=ima-ng"), false],
    ],
  ],
  [
    // talos Dockerfile: install-artifacts-amd64 copies talos-amd64.spdx.json from v1.11.0 (absent in v1.10.x).
    "the imager image has usr/install/<arch>/talos.spdx.json from 1.11.0",
    [
      ["v1.10.9", (r) => r.imagerSbom, false],
      ["v1.11.0", (r) => r.imagerSbom, true],
      ["latest-dev", (r) => r.imagerSbom, true],
    ],
  ],
  [
    "BOOT 1000 MiB, 2 GB BOOT from 1.11.0",
    [
      ["v1.10.5", (r) => r.bootPartitionMiB, 1000],
      ["v1.11.0", (r) => r.bootPartitionMiB, 2000],
    ],
  ],
  [
    "module.sig_enforce from 1.12.0",
    [
      ["v1.11.3", (r) => r.defaultKernelArgs.includes("module.sig_enforce=1"), false],
      ["v1.12.0", (r) => r.defaultKernelArgs.includes("module.sig_enforce=1"), true],
    ],
  ],
  [
    "proc_mem override from 1.13.0",
    [
      ["v1.12.9", (r) => r.defaultKernelArgs.includes("proc_mem.force_override=never"), false],
      ["v1.13.0", (r) => r.defaultKernelArgs.includes("proc_mem.force_override=never"), true],
    ],
  ],
  [
    "init_on_alloc dropped and nvme timeout AWS-only from 1.14.0; lockdown=confidentiality for secure boot before 1.14",
    [
      ["v1.13.2", (r) => r.defaultKernelArgs.includes("init_on_alloc=1"), true],
      ["v1.14.0", (r) => r.defaultKernelArgs.includes("init_on_alloc=1"), false],
      ["v1.14.0", (r) => r.defaultKernelArgs.includes("nvme_core.io_timeout=4294967295"), false],
      ["v1.13.2", (r) => r.secureBootKernelArgs, ["lockdown=confidentiality"]],
      ["v1.14.0", (r) => r.secureBootKernelArgs, []],
    ],
  ],
  [
    "nvme_core.io_timeout moves from the default args to the AWS platform args at 1.14.0",
    [
      ["v1.13.9", (r) => r.nvmeIoTimeoutAwsOnly, false],
      ["v1.14.0", (r) => r.nvmeIoTimeoutAwsOnly, true],
    ],
  ],
  [
    "extension paths 1.5–1.8: /lib/modules, /lib/firmware, /usr/etc/udev/rules.d, … ",
    [
      ["v1.8.2", (r) => r.extensionAllowedPaths.includes("/lib/modules"), true],
      ["v1.8.2", (r) => r.extensionAllowedPaths.includes("/usr/etc/udev/rules.d"), true],
      ["v1.8.2", (r) => r.extensionAllowedPaths.includes("/lib64/ld-linux-x86-64.so.2"), true],
      ["v1.8.2", (r) => r.extensionAllowedPaths.includes("/sbin/ldconfig"), false],
    ],
  ],
  [
    "1.9 adds /sbin/ldconfig; udev moves to /usr/lib/udev/rules.d",
    [
      ["v1.9.0", (r) => r.extensionAllowedPaths.includes("/sbin/ldconfig"), true],
      ["v1.9.0", (r) => r.extensionAllowedPaths.includes("/usr/lib/udev/rules.d"), true],
      ["v1.9.0", (r) => r.extensionAllowedPaths.includes("/usr/etc/udev/rules.d"), false],
    ],
  ],
  [
    "1.10–1.11 extension paths are under /usr (modules, firmware, ld.so, ldconfig)",
    [
      [
        "v1.10.0",
        (r) => [...r.extensionAllowedPaths].sort(),
        [
          "/etc/cri/conf.d",
          "/etc/vulkan",
          "/usr/bin/ldconfig",
          "/usr/lib/firmware",
          "/usr/lib/ld-linux-x86-64.so.2",
          "/usr/lib/modules",
          "/usr/lib/udev/rules.d",
          "/usr/local",
          "/usr/share/egl",
          "/usr/share/glvnd",
        ],
      ],
    ],
  ],
  [
    "1.12 adds /usr/lib/ld-linux-aarch64.so.1",
    [
      ["v1.11.2", (r) => r.extensionAllowedPaths.includes("/usr/lib/ld-linux-aarch64.so.1"), false],
      ["v1.12.0", (r) => r.extensionAllowedPaths.includes("/usr/lib/ld-linux-aarch64.so.1"), true],
    ],
  ],
  [
    "pre-releases follow their major.minor.patch (upstream drops the pre-release part)",
    [
      ["v1.10.0-alpha.1", (r) => r.modulesPath, "usr/lib/modules"],
      ["v1.8.0-beta.0", (r) => r.initramfsCompression, "zstd"],
      ["v1.10.0-alpha.1", (r) => r.semver, "1.10.0"],
    ],
  ],
  [
    "a tag that isn't semver gets the newest rules",
    [
      [
        "latest",
        (r) => [r.modulesPath, r.initramfsCompression, r.bootPartitionMiB, r.semver],
        ["usr/lib/modules", "zstd", 2000, undefined],
      ],
      ["main-abc123", (r) => r.defaultKernelArgs.includes("init_on_alloc=1"), false],
    ],
  ],
];

describe("Talos version rules", () => {
  for (const [rule, checks] of rows)
    test(rule, () => {
      for (const [version, pick, expected] of checks) assert.deepEqual(pick(rulesFor(version)), expected, version);
    });

  test("Talos 1.7 default args, in order (the reference's example minus its platform part)", () => {
    assert.equal(
      rulesFor("v1.7.0").defaultKernelArgs.join(" "),
      "init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512",
    );
  });

  test("versions are read tolerantly, as semver.ParseTolerant", () => {
    assert.equal(parseTalosVersion("v1.10"), "1.10.0");
    assert.equal(parseTalosVersion("1.8.2"), "1.8.2");
    assert.equal(parseTalosVersion("v1.8.2+build.5"), "1.8.2");
    assert.equal(parseTalosVersion("v1.x"), undefined);
    assert.equal(parseTalosVersion(""), undefined);
  });

  test("rules are frozen", () => {
    const rules = rulesFor("v1.8.2");
    assert.throws(() => {
      (rules as { modulesPath: string }).modulesPath = "x";
    });
  });
});

describe("the version rules table", () => {
  test("every row names its upstream source (a siderolabs/talos or image-factory file, or a commit)", () => {
    // The rule's words end with the upstream file(s) it follows, in parentheses.
    const source = /(talos|image-factory)\b[^()]*(\/[\w.-]+\.(go|sh)\b|Dockerfile)|commit [0-9a-f]{7,}/;
    const unnamed = versionRuleTable.filter((row) => !source.test(row.rule)).map((row) => `${row.since} ${row.rule}`);
    assert.deepEqual(unnamed, []);
  });

  test("rows are oldest first", () => {
    const cores = versionRuleTable.map((row) => row.since.split(".").map(Number));
    for (let i = 1; i < cores.length; i++) {
      const [a, b] = [cores[i - 1] as number[], cores[i] as number[]];
      const order =
        (a[0] as number) - (b[0] as number) ||
        (a[1] as number) - (b[1] as number) ||
        (a[2] as number) - (b[2] as number);
      assert.ok(order <= 0, `${versionRuleTable[i]?.since} after ${versionRuleTable[i - 1]?.since}`);
    }
  });
});
