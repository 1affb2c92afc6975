// The UKI profiles Talos adds after "main" (which every profile-carrying UKI has first), by what the UKI is
// for: siderolabs/talos pkg/imager/imager.go buildUKI — an ISO's UKI gets "reset" (wipe the system disk),
// a disk image's or installer's "reset-maintenance" (wipe STATE and EPHEMERAL, back to maintenance mode),
// each with the main command line plus `talos.experimental.wipe=…` (pkg/machinery/constants KernelParamWipe);
// a UKI download gets none. Whether profiles go in at all is the version rules' ukiProfiles.

import type { OutputKind } from "./cmdline.ts";

export const wipeKernelParam = "talos.experimental.wipe";

export interface TalosUkiProfile {
  id: string;
  title: string;
  cmdline: string;
}

export function talosUkiProfiles(outputKind: OutputKind, cmdline: string): TalosUkiProfile[] {
  switch (outputKind) {
    case "iso":
      return [{ id: "reset", title: "Reset system disk", cmdline: `${cmdline} ${wipeKernelParam}=system` }];
    case "disk":
    case "installer":
      return [
        {
          id: "reset-maintenance",
          title: "Reset to maintenance mode",
          cmdline: `${cmdline} ${wipeKernelParam}=system:EPHEMERAL,STATE`,
        },
      ];
    default:
      return [];
  }
}
