// The well-known UEFI CA certificates a Secure Boot ISO enrolls besides its own when the schematic asks
// (`secureboot.includeWellKnownCertificates`; talos internal/pkg/secureboot/database/database.go). This project
// carries only their SHA-256 fingerprints (src/talos/secureboot-database.ts wellKnownCertificatePins); the
// certificates come on first need from Debian's python3-virt-firmware — sid's, the first to carry the
// "Microsoft Option ROM UEFI CA 2023" — fetched through the project's own apt configuration, or from a
// directory the operator names (air-gapped factories). Either way each one is picked by its fingerprint, never
// by its file name, and a missing one is an error naming it. The result is kept for the life of the process.

import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type AppError, isAppError, upstream } from "../errors.ts";
import {
  type PinnedCertificate,
  type WellKnownCertificates,
  wellKnownCertificatePins,
} from "../talos/secureboot-database.ts";
import { fetchSuitePackage, sidSource } from "../tools/debian-packages.ts";
import { SingleFlight, waitFor } from "../util/concurrency.ts";

/** The Debian package the certificates come from, and where in it. */
export const wellKnownCertificatesPackage = "python3-virt-firmware";
const packageCertificatesDir = "usr/lib/python3/dist-packages/virt/firmware/certs";

/** Bounds on what is read while looking for the certificates. */
const maxFileBytes = 1024 * 1024;
const maxFiles = 1000;
const maxDepth = 4;

export type WellKnownCertificateSource =
  /** A directory of the operator's: DER or PEM files, any names, not searched recursively. */
  | { kind: "directory"; directory: string }
  /** Debian sid's python3-virt-firmware, into the package store under `cacheDir` (docs/caches.md). */
  | { kind: "debian"; cacheDir: string; log?: (line: string) => void };

/** The candidate DER certificates in a file: its PEM CERTIFICATE blocks, or else the file itself (DER). */
export function certificatesInFile(contents: Buffer): Buffer[] {
  const blocks = [
    ...contents
      .toString("latin1")
      .matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g),
  ];
  if (blocks.length === 0) return [contents];
  return blocks.map((block) => Buffer.from(block[1] ?? "", "base64"));
}

const sha256Hex = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");
const describe = (pin: PinnedCertificate): string => `"${pin.name}" (DER SHA-256 ${pin.sha256})`;

/** The error for certificates not found: a source the factory depends on lacks them (503). */
function missingCertificates(origin: string, missing: readonly PinnedCertificate[]): AppError {
  return upstream(
    `${origin} lacks the well-known UEFI certificate${missing.length === 1 ? "" : "s"} ${missing.map(describe).join(", ")} (secureboot.includeWellKnownCertificates)`,
    undefined,
    "UNAVAILABLE",
  );
}

/**
 * The pinned certificates picked out of `candidates` by fingerprint, in the pins' order; an error naming every
 * pinned certificate `origin` lacks.
 */
export function selectWellKnownCertificates(candidates: Iterable<Uint8Array>, origin: string): WellKnownCertificates {
  const byFingerprint = new Map<string, Buffer>();
  for (const candidate of candidates) byFingerprint.set(sha256Hex(candidate), Buffer.from(candidate));
  const missing: PinnedCertificate[] = [];
  const pick = (pins: readonly PinnedCertificate[]): Buffer[] =>
    pins.flatMap((pin) => {
      const found = byFingerprint.get(pin.sha256);
      if (found === undefined) missing.push(pin);
      return found === undefined ? [] : [found];
    });
  const selected = { kek: pick(wellKnownCertificatePins.kek), db: pick(wellKnownCertificatePins.db) };
  if (missing.length > 0) throw missingCertificates(origin, missing);
  return selected;
}

/** Every candidate certificate in the regular files of `dir` (and below it, `depth` levels), within the bounds. */
async function certificateCandidates(dir: string, depth = 0): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let files = 0;
  const walk = async (at: string, level: number): Promise<void> => {
    for (const entry of (await readdir(at, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(at, entry.name);
      const info = await stat(path).catch(() => undefined);
      if (info?.isDirectory()) {
        if (level < depth) await walk(path, level + 1);
        continue;
      }
      if (info === undefined || !info.isFile() || info.size > maxFileBytes) continue;
      if (++files > maxFiles) throw upstream(`${dir}: more than ${maxFiles} files to search for certificates`);
      out.push(...certificatesInFile(await readFile(path)));
    }
  };
  await walk(dir, 0);
  return out;
}

/**
 * Reads an operator's directory of certificates; an error naming it (as `origin`, e.g. the setting and its
 * value) when it cannot be read or lacks one.
 */
export async function wellKnownCertificatesFromDirectory(
  directory: string,
  origin = `well-known UEFI certificates directory ${directory}`,
): Promise<WellKnownCertificates> {
  const candidates = await certificateCandidates(directory).catch((err: unknown) => {
    if (isAppError(err)) throw err;
    throw upstream(`${origin}: ${(err as Error).message}`, err, "UNAVAILABLE");
  });
  return selectWellKnownCertificates(candidates, origin);
}

/** Fetches Debian sid's python3-virt-firmware (cached in the package store) and picks the certificates out. */
export async function wellKnownCertificatesFromDebian(
  cacheDir: string,
  options: { log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<WellKnownCertificates> {
  const what = `Debian ${sidSource.suite} package ${wellKnownCertificatesPackage}`;
  const pkg = await fetchSuitePackage(wellKnownCertificatesPackage, sidSource, { cacheDir, ...options }).catch(
    (err: unknown) => {
      if (options.signal?.aborted) throw err;
      throw upstream(
        `fetching ${what} for the well-known UEFI certificates: ${(err as Error).message}`,
        err,
        "UNAVAILABLE",
      );
    },
  );
  const origin = `${what} ${pkg.version}`;
  const candidates = await certificateCandidates(join(pkg.root, packageCertificatesDir), maxDepth).catch(
    (err: unknown) => {
      throw upstream(`${origin}: no ${packageCertificatesDir} (${(err as Error).message})`, err, "UNAVAILABLE");
    },
  );
  return selectWellKnownCertificates(candidates, origin);
}

const loaded = new Map<string, WellKnownCertificates>();
const loading = new SingleFlight<string, WellKnownCertificates>();

/**
 * The certificates of `source`, found once per process (a failure is not remembered: the next asset asks
 * again). The caller's signal stops its wait, not the shared fetch.
 */
export function wellKnownCertificatesLoader(
  source: WellKnownCertificateSource,
): (signal?: AbortSignal) => Promise<WellKnownCertificates> {
  const key = source.kind === "directory" ? `directory:${source.directory}` : `debian:${source.cacheDir}`;
  return async (signal) => {
    const hit = loaded.get(key);
    if (hit !== undefined) return hit;
    const work = loading.run(key, async () => {
      const certificates =
        source.kind === "directory"
          ? await wellKnownCertificatesFromDirectory(source.directory)
          : await wellKnownCertificatesFromDebian(source.cacheDir, source.log === undefined ? {} : { log: source.log });
      loaded.set(key, certificates);
      return certificates;
    });
    return await waitFor(work, signal);
  };
}
