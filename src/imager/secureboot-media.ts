// The Secure Boot parts of an ISO (siderolabs/talos pkg/imager/out.go outISO with SecureBootEnabled, iso/uefi.go):
// systemd-boot signed with the UKI signing key, the signing certificate in DER as EFI/keys/uki-signing-cert.der,
// and PK/KEK/db enrollment files for loader/keys/auto made from that certificate (src/talos/secureboot-database.ts,
// as out.go prepareEnrollmentDBs generates them), with loader.conf's secure-boot-enroll from the profile.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { notImplemented } from "../errors.ts";
import type { SecureBootEnroll } from "../formats/boot-config.ts";
import { enrollmentDatabase } from "../talos/secureboot-database.ts";
import { type BuildContext, once, secureBootSigners } from "./build-steps.ts";
import { imagerAsset } from "./inputs.ts";
import { signEfiBinary } from "./secureboot-uki.ts";

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
  if (media.includeWellKnownCertificates)
    throw notImplemented(
      `${context.profile.filename}: secureboot.includeWellKnownCertificates needs the well-known UEFI CA certificates, which this factory does not carry yet`,
    );
  const dir = join(context.workDir, "secureboot");
  await writeFile(join(context.workDir, "uki-signing-cert.der"), signers.uki.certificate);
  const files = await enrollmentDatabase(signers.uki, {
    time: new Date(context.mtime * 1000),
    ...(context.signal ? { signal: context.signal } : {}),
  });
  const paths: Record<string, string> = {};
  await mkdir(dir, { recursive: true });
  for (const file of files) {
    paths[file.name] = join(dir, file.name);
    await writeFile(paths[file.name] as string, file.contents);
  }
  return {
    secureBootEnroll: media.enrollKeys,
    enrollKeys: { pk: paths["PK.auth"] as string, kek: paths["KEK.auth"] as string, db: paths["db.auth"] as string },
    ukiSigningCertDer: join(context.workDir, "uki-signing-cert.der"),
  };
}
