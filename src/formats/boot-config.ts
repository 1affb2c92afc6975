// Boot loader configuration text, as upstream writes it:
// - the GRUB ISO's grub.cfg (pkg/imager/iso/grub.cfg),
// - the installed GRUB config on a disk's BOOT partition (bootloader/grub encode.go: entry "A"),
// - systemd-boot's loader.conf (the ISO's template, pkg/imager/iso/loader.conf.tmpl, and the disk's
//   bootloader/sdboot/loader.conf).

/** GRUB's quoting of a kernel command line (upstream's grub.Quote): these characters get a backslash. */
export function grubQuote(text: string): string {
  return text.replace(/[\\{}&$|;<>"]/g, (c) => `\\${c}`);
}

function checkCmdline(cmdline: string): void {
  if (/[\r\n]/.test(cmdline)) throw new RangeError("a kernel command line must be one line");
}

/** The ISO's grub.cfg: "Talos ISO", plus "Reset Talos installation" when the version has it. */
export function isoGrubConfig(options: { cmdline: string; resetEntry: boolean }): string {
  checkCmdline(options.cmdline);
  const entry = (title: string, extra: string) =>
    [
      `menuentry "${title}" {`,
      "\tset gfxmode=auto",
      "\tset gfxpayload=text",
      `\tlinux /boot/vmlinuz ${grubQuote(options.cmdline)}${extra}`,
      "\tinitrd /boot/initramfs.xz",
      "}",
      "",
    ].join("\n");
  const head = [
    "set default=0",
    "set timeout=3",
    "",
    "insmod all_video",
    "",
    "terminal_input console",
    "terminal_output console",
    "",
    "",
  ].join("\n");
  // Upstream's template leaves a blank line after the first entry whether or not the reset entry follows.
  const reset = options.resetEntry ? entry("Reset Talos installation", " talos.experimental.wipe=system") : "";
  return `${head}${entry("Talos ISO", "")}\n${reset}`;
}

/** The installed GRUB config on BOOT (`/grub/grub.cfg`), booting `/A/vmlinuz` + `/A/initramfs.xz`. */
export function diskGrubConfig(options: { cmdline: string; version: string; resetEntry: boolean }): string {
  checkCmdline(options.cmdline);
  const name = `A - Talos ${options.version}`;
  const quoted = grubQuote(options.cmdline);
  const entry = (title: string, cmdline: string) =>
    [
      `menuentry "${title}" {`,
      "  set gfxmode=auto",
      "  set gfxpayload=text",
      `  linux /A/vmlinuz ${cmdline}`,
      "  initrd /A/initramfs.xz",
      "}",
      "",
    ].join("\n");
  const lines = [
    `set default="${name}"`,
    "",
    "set timeout=3",
    "",
    "insmod all_video",
    "",
    "terminal_input console",
    "terminal_output console",
    "",
    "",
  ].join("\n");
  const reset = options.resetEntry
    ? entry(
        "Reset Talos installation and return to maintenance mode",
        `${quoted} talos.experimental.wipe=system:EPHEMERAL,STATE`,
      )
    : "";
  return `${lines}${entry(name, quoted)}${reset}`;
}

export type SecureBootEnroll = "off" | "manual" | "if-safe" | "force";

/**
 * systemd-boot's loader.conf. The ISO always names the enrolment mode ("off" unless secure boot keys are
 * shipped); the disk's file only names it when keys are enrolled.
 */
export function loaderConf(options: { secureBootEnroll?: SecureBootEnroll; medium: "iso" | "disk" }): string {
  const head = "# systemd-boot configuration\n\ntimeout 10\n";
  if (options.medium === "iso") return `${head}\nsecure-boot-enroll ${options.secureBootEnroll ?? "off"}\n`;
  return options.secureBootEnroll === undefined ? head : `${head}\nsecure-boot-enroll ${options.secureBootEnroll}\n`;
}

/** The ISO volume id for a label: upper case, `-._` → `_`, other characters dropped, ≤ 32 characters. */
export function isoVolumeId(label: string): string {
  let out = "";
  for (const c of label.toUpperCase()) {
    if (/[A-Z0-9]/.test(c)) out += c;
    else if (c === "_" || c === "-" || c === ".") out += "_";
  }
  return out.slice(0, 32);
}

/** The ISO's full label (volume set id): "Talos-<version>", "Talos-SB-<version>" for secure boot. */
export function isoLabel(version: string, secureBoot = false): string {
  return `Talos-${secureBoot ? "SB-" : ""}${version}`;
}
