// The package store (docs/caches.md): Debian packages fetched WITHOUT installing them — `apt-get download`
// into `<cacheDir>/debs`, then `dpkg-deb -x` into a directory named by the .deb's sha256, so a second run only
// hashes files. The test bed builds from such packages, and the imager takes a newer mksquashfs from one;
// packages of Debian's next release come through an apt configuration of the project's own.

import { randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AppError, isAppError, upstream } from "../errors.ts";
import { sha256HexOfFile } from "../util/file-digest.ts";
import { type AptConfig, type AptSource, aptDownload, aptShow, aptUpdate, privateAptConfig } from "./apt.ts";
import { dpkgDebExtract } from "./dpkg.ts";

/** `${XDG_CACHE_HOME:-~/.cache}/boot-assets`: root of the source, package and test bed stores (docs/caches.md). */
export function bootAssetsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== "" ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "boot-assets");
}

export interface DebianPackage {
  /** Binary package name, e.g. "linux-image-6.1.0-56-amd64". */
  name: string;
  /** Debian version, e.g. "6.1.192-2". */
  version: string;
  debPath: string;
  /** sha256 of the .deb, hex. */
  sha256: string;
  /** Where the .deb's files are extracted (read only: shared between runs). */
  root: string;
}

/** Debian's next release, for packages newer than the machine's (Debian 12) has. */
export const trixieSource: AptSource = {
  uri: "http://deb.debian.org/debian",
  suite: "trixie",
  components: ["main"],
  signedBy: "/usr/share/keyrings/debian-archive-keyring.gpg",
};

/**
 * Debian's development suite, for the few files no release carries yet (the 2023 Microsoft UEFI CA
 * certificates of python3-virt-firmware); fetched only, never installed.
 */
export const sidSource: AptSource = { ...trixieSource, suite: "sid" };

/** The machine's own release (Debian 12), listing another architecture's packages (e.g. arm64 GRUB modules). */
export function bookwormSourceFor(architecture: string): AptSource {
  return { ...trixieSource, suite: "bookworm", architecture };
}

/**
 * The sources of `suite` for another architecture: trixie's main, or Debian 12's main with its updates and
 * security suites, as the machine's own sources list them (so its kernel is as new as the machine's).
 */
export function foreignSources(architecture: string, suite: "bookworm" | "trixie" = "bookworm"): AptSource[] {
  if (suite === "trixie") return [{ ...trixieSource, architecture }];
  const bookworm = bookwormSourceFor(architecture);
  return [
    bookworm,
    { ...bookworm, suite: "bookworm-updates" },
    { ...bookworm, uri: "http://deb.debian.org/debian-security", suite: "bookworm-security" },
  ];
}

/** The apt configuration of the project's own for another architecture's packages: `<cacheDir>/apt/<suite>-<arch>`. */
export async function foreignAptConfig(
  cacheDir: string,
  architecture: string,
  suite: "bookworm" | "trixie" = "bookworm",
): Promise<AptConfig> {
  return await privateAptConfig(join(cacheDir, "apt", `${suite}-${architecture}`), foreignSources(architecture, suite));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * One package into the package store under `cacheDir`: `apt-get download` (checked against the lists' SHA256)
 * unless cached, then `dpkg-deb -x` into `debs-extracted/<sha256>`. `config`: an apt configuration of the
 * project's own (privateAptConfig) instead of the machine's.
 */
export async function fetchPackage(
  name: string,
  cacheDir: string,
  log: (line: string) => void,
  signal?: AbortSignal,
  config?: AptConfig,
): Promise<DebianPackage> {
  const apt = { signal, ...(config === undefined ? {} : { config }) };
  const info = await aptShow(name, apt).catch(async (err: unknown) => {
    if (!isAppError(err, "NotFound")) throw err;
    log(`apt-get update (${name} is not in the package lists${config === undefined ? "" : " of its configuration"})`);
    await aptUpdate(apt);
    return await aptShow(name, apt);
  });
  if (!/^[0-9a-f]{64}$/.test(info.sha256)) throw upstream(`apt lists no SHA256 for ${name}`);
  const debDir = join(cacheDir, "debs");
  await mkdir(debDir, { recursive: true });
  const debPath = join(debDir, `${info.package}_${info.version.replace(/:/g, "%3a")}_${info.architecture}.deb`);
  if (!(await exists(debPath)) || (await sha256HexOfFile(debPath)) !== info.sha256) {
    log(`apt-get download ${name}`);
    await download(name, debPath, info.sha256, apt);
  }
  const extractedDir = join(cacheDir, "debs-extracted");
  const root = join(extractedDir, info.sha256);
  if (!(await exists(root))) {
    log(`dpkg-deb -x ${basename(debPath)}`);
    await mkdir(extractedDir, { recursive: true });
    const temp = `${root}.${randomUUID()}.part`;
    try {
      await dpkgDebExtract(debPath, temp, { signal });
      await rename(temp, root);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      if (!(await exists(root))) throw err; // else a concurrent run extracted it first
    }
  }
  return { name, version: info.version, debPath, sha256: info.sha256, root };
}

/** `apt-get download` into a private directory, checked against the lists' SHA256, then moved into the cache. */
async function download(
  name: string,
  debPath: string,
  sha256: string,
  apt: { signal: AbortSignal | undefined; config?: AptConfig },
): Promise<void> {
  const temp = join(dirname(debPath), `.download-${randomUUID()}`);
  await mkdir(temp);
  try {
    const run = () => aptDownload([name], temp, { ...apt, timeoutMs: 10 * 60 * 1000 });
    const files = await run().catch(async () => {
      // Stale lists point at files the mirror already dropped.
      await aptUpdate(apt);
      return await run();
    });
    const file = files.get(name);
    if (file === undefined) throw upstream(`apt-get download ${name} produced no .deb`);
    const actual = await sha256HexOfFile(file);
    if (actual !== sha256)
      throw new AppError(
        "Integrity",
        `${basename(file)}: sha256 ${actual} does not match the package lists' ${sha256}`,
      );
    await rename(file, debPath);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * One package from trixie (trixieSource) into the package store under `cacheDir`, through the project's own
 * apt configuration (`<cacheDir>/apt/trixie`); the machine's /etc/apt is never read or written.
 */
export async function fetchTrixiePackage(
  name: string,
  options: { cacheDir: string; log?: (line: string) => void; signal?: AbortSignal },
): Promise<DebianPackage> {
  return await fetchSuitePackage(name, trixieSource, options);
}

/**
 * One package from one suite of the machine's architecture (trixieSource, sidSource) into the package store
 * under `cacheDir`, through the project's own apt configuration (`<cacheDir>/apt/<suite>`).
 */
export async function fetchSuitePackage(
  name: string,
  source: AptSource,
  options: { cacheDir: string; log?: (line: string) => void; signal?: AbortSignal },
): Promise<DebianPackage> {
  const config = await privateAptConfig(join(options.cacheDir, "apt", source.suite), source);
  return await fetchPackage(name, options.cacheDir, options.log ?? (() => {}), options.signal, config);
}

/**
 * One package of another architecture (e.g. grub-efi-arm64-bin on an amd64 machine) from the machine's
 * release (or `suite`) into the package store under `cacheDir`, through an apt configuration of the project's
 * own that lists only that architecture (`<cacheDir>/apt/<suite>-<arch>`). Only its files are used, never
 * installed.
 */
export async function fetchForeignPackage(
  name: string,
  architecture: string,
  options: {
    cacheDir: string;
    suite?: "bookworm" | "trixie";
    log?: (line: string) => void;
    signal?: AbortSignal;
  },
): Promise<DebianPackage> {
  const config = await foreignAptConfig(options.cacheDir, architecture, options.suite);
  return await fetchPackage(name, options.cacheDir, options.log ?? (() => {}), options.signal, config);
}
