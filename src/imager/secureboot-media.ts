// The Secure Boot parts of an ISO (siderolabs/talos pkg/imager/out.go outISO with SecureBootEnabled, iso/uefi.go):
// systemd-boot signed with the UKI signing key, the signing certificate in DER as EFI/keys/uki-signing-cert.der,
// and PK/KEK/db enrollment files for loader/keys/auto made from that certificate (src/talos/secureboot-database.ts,
// as out.go prepareEnrollmentDBs generates them, with the well-known UEFI CA certificates when the schematic
// asks: src/imager/well-known-certificates.ts), with loader.conf's secure-boot-enroll from the profile.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { SecureBootEnroll } from "../formats/boot-config.ts";
import { type EnrollmentFile, enrollmentDatabase } from "../talos/secureboot-database.ts";
import { bootAssetsCacheDir } from "../tools/debian-packages.ts";
import { type BuildContext, once, secureBootSigners } from "./build-steps.ts";
import { imagerAsset } from "./inputs.ts";
import { signEfiBinary } from "./secureboot-uki.ts";
import { wellKnownCertificatesLoader } from "./well-known-certificates.ts";

/** The imager's systemd-boot signed with the UKI signing key, in the work directory. */
export function signedSystemdBoot(context: BuildContext): Promise<string> {
  return once(context, "systemd-boot-signed", async () => {
    const signers = secureBootSigners(context);
    const out = join(context.workDir, "systemd-boot.signed.efi");
    await signEfiBinary(
      await imagerAsset(context.inputs, context.profile.arch, "systemd-boot.efi"),
      out,
      signers,
      context.signal,
    );
    return out;
  });
}

export interface SecureBootIsoFiles {
  secureBootEnroll: SecureBootEnroll;
  enrollKeys: { pk: string; kek: string; db: string };
  ukiSigningCertDer: string;
}

/** The enrollment files and certificate an ISO carries, written to the work directory. */
export async function secureBootIsoFiles(context: BuildContext): Promise<SecureBootIsoFiles> {
  const signers = secureBootSigners(context);
  const media = context.profile.secureBootMedia ?? { enrollKeys: "if-safe", includeWellKnownCertificates: false };
  const wellKnown = media.includeWellKnownCertificates
    ? await (
        context.wellKnownCertificates ??
        wellKnownCertificatesLoader({ kind: "debian", cacheDir: bootAssetsCacheDir(), log: context.log })
      )(context.signal)
    : undefined;
  const ukiSigningCertDer = join(context.workDir, "uki-signing-cert.der");
  await writeFile(ukiSigningCertDer, signers.uki.certificate);
  const files = await enrollmentDatabase(signers.uki, {
    time: new Date(context.mtime * 1000),
    ...(wellKnown === undefined ? {} : { wellKnown }),
    ...(context.signal ? { signal: context.signal } : {}),
  });
  const dir = join(context.workDir, "secureboot");
  await mkdir(dir, { recursive: true });
  const enrollKeys = { pk: join(dir, "PK.auth"), kek: join(dir, "KEK.auth"), db: join(dir, "db.auth") };
  const pathOf: Record<EnrollmentFile["name"], string> = {
    "PK.auth": enrollKeys.pk,
    "KEK.auth": enrollKeys.kek,
    "db.auth": enrollKeys.db,
  };
  for (const file of files) await writeFile(pathOf[file.name], file.contents);
  return {
    secureBootEnroll: media.enrollKeys,
    enrollKeys,
    ukiSigningCertDer,
  };
}
