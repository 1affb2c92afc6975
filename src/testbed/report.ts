// The guest's one-line report ("TESTBED-REPORT {json}", printed by guest/init.sh on /dev/ttyS0, or /dev/ttyAMA0 on aarch64) and how to
// find it in a serial log.

import { integrity } from "../errors.ts";

export const reportPrefix = "TESTBED-REPORT ";

export interface TestbedReport {
  /** /proc/cmdline as the kernel got it. */
  cmdline: string;
  /** `uname -r`. */
  kernelRelease: string;
  /** `uname -m`: "x86_64" or "aarch64" (absent from reports of guests built before it was added). */
  machine?: string;
  firmware: "bios" | "uefi";
  /** The SecureBoot EFI variable; null when there is none (BIOS, or firmware without it). */
  secureBoot: boolean | null;
  /**
   * What systemd-stub left in its loader variables (a UKI boot): StubInfo, e.g. "systemd-stub 257.13-1~deb13u1",
   * and StubProfile, the number of the UKI profile it booted (stubs from systemd 257; null before). Null
   * when no stub ran.
   */
  stub: { info: string; profile: number | null } | null;
  /** The layers of /extensions.yaml, in file order (name and version from their metadata). */
  extensions: { image: string; name: string; version: string }[];
  /** Module names in /proc/modules, sorted. */
  modules: string[];
  /** META tags keyed "0x<hex>", from the disk's META partition or the INSTALLER_META_BASE64 cmdline variable. */
  meta: { source: "partition" | "cmdline" | "none"; tags: Record<string, string> };
  /** The file name under /usr/local/share/schematic/, or null. */
  schematicId: string | null;
  /**
   * Named (GPT) partitions the guest saw, or null when there were none; with `overlayBoard`, the text of
   * testbed/board.txt in the EFI partition (what the test bed's board overlay installs), null without one
   * (absent from reports of guests built before it was added).
   */
  disk: { partitions: { device: string; name: string }[]; overlayBoard?: string | null } | null;
  /** What failed in the guest (empty when everything worked). */
  errors: string[];
}

/** The last report line in a serial log, parsed; undefined when the log has none. */
export function findTestbedReport(serialLog: string): TestbedReport | undefined {
  const lines = serialLog.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] as string).replace(/\r/g, "");
    const at = line.indexOf(reportPrefix);
    if (at === -1) continue;
    const json = line.slice(at + reportPrefix.length);
    try {
      return JSON.parse(json) as TestbedReport;
    } catch (err) {
      throw integrity(`the guest's report is not valid JSON: ${(err as Error).message}: ${json.slice(0, 500)}`);
    }
  }
  return undefined;
}
