// Boots a test bed asset in QEMU (always TCG: KVM is not usable on these machines) and returns what the
// guest reported on its serial port. Used by the boot tests and by bench scripts.
//
//   boot({ kernel, initrd, cmdline, firmware: "bios" })     direct kernel boot (-kernel/-initrd/-append)
//   boot({ iso, firmware })                                 a CD-ROM
//   boot({ disk, firmware })                                a raw disk image on virtio (never modified;
//                                                           may also accompany a direct kernel boot)
//   boot({ disk, diskSectorSize: 4096, firmware })          the same with 4096-byte logical blocks (4Kn)
//   boot({ uki, firmware: "uefi" })                         a UKI as EFI/BOOT/BOOTX64.EFI on a FAT drive
//   boot({ …, firmware: "uefi-secureboot" })                OVMF with Secure Boot (SMM, secure flash), its
//                                                           variable store in setup mode unless `varsFrom`
//   boot({ arch: "arm64", ... })                            the same on qemu-system-aarch64's `virt` machine
//                                                           (AAVMF firmware for UEFI, the console on ttyAMA0,
//                                                           the ISO on virtio-scsi, the UKI as BOOTAA64.EFI);
//                                                           no Secure Boot there

import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findTestbedReport, reportPrefix, type TestbedReport } from "../../src/testbed/report.ts";

export type { TestbedReport };

export interface BootOptions {
  /** The guest's architecture; default amd64 (qemu-system-x86_64, q35). */
  arch?: "amd64" | "arm64";
  iso?: string;
  disk?: string;
  kernel?: string;
  initrd?: string;
  /** Kernel command line for a direct kernel boot; `console=ttyS0` (`console=ttyAMA0` on arm64) is added when missing. */
  cmdline?: string;
  /** An EFI application booted as the ESP's EFI/BOOT/BOOTX64.EFI (BOOTAA64.EFI on arm64): a UKI, or systemd-boot with `espFiles`. */
  uki?: string;
  /** More files for that ESP, by path inside it (e.g. "EFI/Linux/talos.efi", "loader/loader.conf"). */
  espFiles?: Record<string, string>;
  /** The disk's logical (and physical) block size on its virtio-blk device; default QEMU's 512. */
  diskSectorSize?: number;
  firmware: Firmware;
  /** The OVMF variable store to start from (copied; default Debian's empty OVMF_VARS_4M.fd: setup mode). */
  varsFrom?: string;
  /** Copy the variable store here when QEMU ends (e.g. with the keys systemd-boot enrolled). */
  varsTo?: string;
  /** Let the guest reset (systemd-boot resets after enrolling keys); default: a reset ends QEMU. */
  allowReset?: boolean;
  /** End the boot as soon as the serial console shows this (e.g. firmware refusing an image); a BootError follows. */
  stopOn?: RegExp;
  /** Give up after this long (default 120 s; a TCG boot takes 8–18 s). */
  timeoutMs?: number;
  memoryMiB?: number;
}

export interface BootResult {
  report: TestbedReport;
  serialLog: string;
  seconds: number;
}

/** A boot that did not produce a report; the whole serial log is in `serialLog` and in the file `logFile`. */
export class BootError extends Error {
  readonly serialLog: string;
  readonly logFile: string;
  constructor(message: string, serialLog: string, logFile: string) {
    super(`${message} (serial log: ${logFile})\n--- serial log (last 4000 chars) ---\n${serialLog.slice(-4000)}`);
    this.name = "BootError";
    this.serialLog = serialLog;
    this.logFile = logFile;
  }
}

export const ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/** OVMF built with Secure Boot (needs SMM and a secure flash); Debian's OVMF_VARS_4M.fd holds no keys. */
export const ovmfSecureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";

export type Firmware = "bios" | "uefi" | "uefi-secureboot";
/** Debian's qemu-efi-aarch64: the arm64 UEFI firmware and its variable store template (both 64 MiB pflash). */
export const aavmfCode = "/usr/share/AAVMF/AAVMF_CODE.fd";
export const aavmfVars = "/usr/share/AAVMF/AAVMF_VARS.fd";

/** What differs per guest architecture. */
const machines = {
  amd64: {
    binary: "qemu-system-x86_64",
    debianPackage: "qemu-system-x86",
    machine: "q35,accel=tcg",
    cpu: "max",
    firmware: { code: ovmfCode, vars: ovmfVars, debianPackage: "ovmf" },
    console: "ttyS0",
    removableEfi: "BOOTX64.EFI",
  },
  arm64: {
    binary: "qemu-system-aarch64",
    debianPackage: "qemu-system-arm",
    machine: "virt,accel=tcg",
    // `max` emulates pointer authentication with its architected (QARMA) algorithm, which costs TCG dearly
    // (a direct boot took 40 s instead of 10); a Cortex-A57 (ARMv8.0) is all the guest needs.
    cpu: "cortex-a57",
    firmware: { code: aavmfCode, vars: aavmfVars, debianPackage: "qemu-efi-aarch64" },
    console: "ttyAMA0",
    removableEfi: "BOOTAA64.EFI",
  },
} as const;
/** The serial log is bounded: a guest stuck in a loop must not fill memory. */
const maxSerialBytes = 16 * 1024 * 1024;
/** After the report, the guest powers off by itself; this long at most. */
const poweroffGraceMs = 15_000;

/** Why the harness cannot run here, or undefined when QEMU (and OVMF/AAVMF for UEFI) are installed. */
export function bootUnavailable(firmware: Firmware = "bios", arch: "amd64" | "arm64" = "amd64"): string | undefined {
  const missing: string[] = [];
  const machine = machines[arch];
  if (arch === "arm64" && firmware === "uefi-secureboot") return "the harness boots arm64 without Secure Boot";
  if (!onPath(machine.binary)) missing.push(machine.debianPackage);
  if (firmware === "uefi" && !readable(machine.firmware.code)) missing.push(machine.firmware.debianPackage);
  if (firmware === "uefi-secureboot" && !readable(ovmfSecureBootCode)) missing.push("ovmf");
  return missing.length === 0 ? undefined : `missing Debian packages: apt-get install ${missing.join(" ")}`;
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The QEMU argument list (exported for tests and for printing in bench output). */
export function qemuArgs(options: BootOptions, scratch: string): string[] {
  // A disk may accompany a direct kernel boot (a machine booted from the network still has its disk).
  const media = [options.iso, options.kernel === undefined ? options.disk : undefined, options.kernel, options.uki];
  if (media.filter((m) => m !== undefined).length !== 1)
    throw new Error("boot: give exactly one of iso, disk, kernel (+initrd, optionally with a disk) or uki");
  if (options.uki !== undefined && options.firmware === "bios") throw new Error("boot: a UKI needs UEFI firmware");
  const secure = options.firmware === "uefi-secureboot";
  const arch = options.arch ?? "amd64";
  const machine = machines[arch];
  if (arch === "arm64" && secure) throw new Error("boot: the harness boots arm64 without Secure Boot");
  // An arm64 `virt` machine has no firmware but UEFI: its direct kernel boot has none at all.
  if (arch === "arm64" && options.firmware === "bios" && options.kernel === undefined)
    throw new Error("boot: an arm64 machine boots media only with firmware: 'uefi'");
  const args = [
    "-machine",
    secure ? `${machine.machine},smm=on` : machine.machine,
    "-cpu",
    machine.cpu,
    "-m",
    String(options.memoryMiB ?? 1024),
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    ...(options.allowReset ? [] : ["-no-reboot"]),
    // No network: the NIC's option ROM (iPXE) only slows firmware down.
    "-nic",
    "none",
  ];
  if (secure) args.push("-global", "driver=cfi.pflash01,property=secure,value=on");
  if (options.firmware !== "bios")
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${secure ? ovmfSecureBootCode : machine.firmware.code}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${join(scratch, "OVMF_VARS.fd")}`,
    );
  if (options.kernel !== undefined) {
    const cmdline = options.cmdline ?? "";
    args.push(
      "-kernel",
      options.kernel,
      "-append",
      new RegExp(`(^|\\s)console=${machine.console}`).test(cmdline)
        ? cmdline
        : `${cmdline} console=${machine.console}`.trim(),
    );
    if (options.initrd !== undefined) args.push("-initrd", options.initrd);
  } else if (options.iso !== undefined && arch === "arm64")
    // `virt` has no IDE: the CD-ROM sits on virtio-scsi (the guest loads virtio_scsi and sr_mod early).
    args.push(
      "-device",
      "virtio-scsi-pci,id=scsi0",
      "-drive",
      `file=${options.iso},format=raw,if=none,id=cd0,media=cdrom,readonly=on`,
      "-device",
      "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=0",
    );
  else if (options.iso !== undefined) args.push("-cdrom", options.iso, "-boot", "d");
  if (options.disk !== undefined && options.diskSectorSize !== undefined) {
    const size = options.diskSectorSize;
    args.push(
      "-drive",
      `file=${options.disk},format=raw,if=none,id=disk0,snapshot=on`,
      "-device",
      `virtio-blk-pci,drive=disk0,logical_block_size=${size},physical_block_size=${size}`,
    );
  } else if (options.disk !== undefined) args.push("-drive", `file=${options.disk},format=raw,if=virtio,snapshot=on`);
  if (options.uki !== undefined) args.push("-drive", `file=fat:rw:${join(scratch, "esp")},format=raw`);
  return args;
}

/** Boots the machine, waits for the guest's report, and returns it with the serial log. */
export async function boot(options: BootOptions): Promise<BootResult> {
  const unavailable = bootUnavailable(options.firmware, options.arch);
  if (unavailable !== undefined) throw new Error(`cannot boot: ${unavailable}`);
  const scratch = await mkdtemp(join(tmpdir(), "boot-harness-"));
  try {
    const machine = machines[options.arch ?? "amd64"];
    // Each VM writes its own copy of the variable store (AAVMF's on arm64, in the same file name).
    if (options.firmware !== "bios")
      await copyFile(options.varsFrom ?? machine.firmware.vars, join(scratch, "OVMF_VARS.fd"));
    if (options.uki !== undefined) {
      await mkdir(join(scratch, "esp", "EFI", "BOOT"), { recursive: true });
      await copyFile(options.uki, join(scratch, "esp", "EFI", "BOOT", machine.removableEfi));
      for (const [path, source] of Object.entries(options.espFiles ?? {})) {
        await mkdir(dirname(join(scratch, "esp", path)), { recursive: true });
        await copyFile(source, join(scratch, "esp", path));
      }
    }
    try {
      return await run(machine.binary, qemuArgs(options, scratch), options.timeoutMs ?? 120_000, options.stopOn);
    } finally {
      if (options.varsTo !== undefined) await copyFile(join(scratch, "OVMF_VARS.fd"), options.varsTo);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function run(qemuBinary: string, args: string[], timeoutMs: number, stopOn?: RegExp): Promise<BootResult> {
  const started = performance.now();
  const child = spawn(qemuBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let serial = "";
  let stderr = "";
  let sawReport = false;
  let stopped = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const kill = () => child.kill("SIGKILL");
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    if (serial.length < maxSerialBytes) serial += chunk;
    if (stopOn?.test(serial) && !sawReport) {
      stopped = true;
      kill();
    }
    if (!sawReport && serial.includes(reportPrefix) && /TESTBED-REPORT [^\n]*\n/.test(serial)) {
      sawReport = true;
      graceTimer = setTimeout(kill, poweroffGraceMs);
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-16 * 1024);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  const status = await new Promise<string>((resolve) => {
    child.once("error", (err) => resolve(`could not start ${qemuBinary}: ${err.message}`));
    child.once("close", (code, signal) => resolve(signal === null ? `exit code ${code}` : `signal ${signal}`));
  });
  clearTimeout(timer);
  clearTimeout(graceTimer);
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  const fail = async (why: string): Promise<never> => {
    const dir = join(tmpdir(), "boot-harness-logs");
    await mkdir(dir, { recursive: true });
    const logFile = join(dir, `serial-${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}.log`);
    const text = `${qemuBinary} ${args.join(" ")}\n--- qemu stderr ---\n${stderr}\n--- serial ---\n${serial}`;
    await writeFile(logFile, text);
    throw new BootError(why, serial, logFile);
  };
  let report: TestbedReport | undefined;
  try {
    report = findTestbedReport(serial);
  } catch (err) {
    return await fail((err as Error).message);
  }
  if (report === undefined)
    return await fail(
      stopped
        ? `the serial console showed ${String(stopOn)}`
        : timedOut
          ? `no report after ${timeoutMs} ms`
          : `QEMU ended (${status}) without a report; stderr: ${stderr.trim().slice(-1000)}`,
    );
  return { report, serialLog: serial, seconds };
}
