// `boot-assets secureboot gen-keys DIR`: a Secure Boot key set for the factory's -secureboot flags, as
// `talosctl gen secureboot uki` and `pcr` make one (src/signing/secureboot-keys.ts).

import type { Command } from "commander";
import { defaultUkiCommonName, generateSecureBootKeys } from "../signing/secureboot-keys.ts";

export function registerSecureBootCommands(program: Command): void {
  const secureboot = program.command("secureboot").description("Secure Boot keys");
  secureboot
    .command("gen-keys")
    .description(
      "Write a UKI signing key and certificate and a PCR signing key into DIR (uki-signing-key.pem, uki-signing-cert.pem/.der, pcr-signing-key.pem), as talosctl gen secureboot uki/pcr",
    )
    .argument("<dir>", "directory to write into (made if missing)")
    .option("--common-name <name>", "the certificate's name", defaultUkiCommonName)
    .option("--force", "overwrite existing files")
    .action(async (dir: string, opts: { commonName: string; force?: boolean }) => {
      const written = await generateSecureBootKeys(dir, { commonName: opts.commonName, force: opts.force === true });
      for (const file of written) process.stdout.write(`wrote ${file.path}: ${file.what}\n`);
    });
}
