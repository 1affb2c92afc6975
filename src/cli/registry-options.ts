// The options every command that talks to a registry shares (`--insecure`, `--ca-file`, `--certs-dir`,
// `--authfile`, `--timeout`), and their mapping onto the registry client. Later commands (build, sign,
// verify, mirror, factory) add them with `addRegistryClientOptions` and build their client with
// `registryClientFromOptions`, so the flags mean the same everywhere.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { AppError, badRequest } from "../errors.ts";
import { RegistryClient, type RegistryClientOptions } from "../oci/client/index.ts";
import { defaultCertsDirs } from "../oci/client/tls.ts";

export interface RegistryClientCliOptions {
  insecure?: boolean;
  caFile?: string;
  certsDir?: string[];
  authfile?: string;
  /** Seconds. */
  timeout?: number;
}

/** Bound on what is read of a --ca-file to check it (a bundle of every public root is ~250 KiB). */
const maxCaFileBytes = 4 * 1024 * 1024;
/** An hour: anything longer is a typo, not a slow registry. */
const maxTimeoutSeconds = 3600;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseTimeout(value: string): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(seconds > 0) || seconds > maxTimeoutSeconds)
    throw new InvalidArgumentError(`expected a number of seconds between 0 and ${maxTimeoutSeconds}`);
  return seconds;
}

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "a directory";
  return code ?? String(err);
}

/** Adds the shared registry-client options to a command. */
export function addRegistryClientOptions(command: Command): Command {
  return command
    .option(
      "--insecure",
      "allow plain HTTP and unverified TLS for the registries named on this command line (never for others)",
    )
    .option("--ca-file <file>", "PEM file of extra CA certificates trusted for registries")
    .addOption(
      new Option(
        "--certs-dir <dir>",
        `directory of <host[:port]>/ca.crt (and client.cert/.key) files, repeatable (default: ${defaultCertsDirs().join(", ")})`,
      ).argParser(collect),
    )
    .option("--authfile <file>", "auth file (docker config.json / containers auth.json) read before the usual ones")
    .addOption(
      new Option("--timeout <seconds>", "timeout for connecting and for a stalled response (default 60)").argParser(
        parseTimeout,
      ),
    );
}

/**
 * Refuses an unusable --ca-file up front with a one-line error, instead of a TLS failure on the first
 * request. Reads only a bounded prefix: enough to know it is a PEM file.
 */
function checkCaFile(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    throw badRequest(`--ca-file ${file}: cannot read it (${describeErrno(err)})`);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw badRequest(`--ca-file ${file}: not a regular file`);
    if (info.size > maxCaFileBytes) throw badRequest(`--ca-file ${file}: larger than ${maxCaFileBytes} bytes`);
    const head = Buffer.alloc(Math.min(info.size, 64 * 1024));
    const read = readSync(fd, head, 0, head.length, 0);
    if (!head.subarray(0, read).toString("latin1").includes("-----BEGIN CERTIFICATE-----"))
      throw badRequest(`--ca-file ${file}: holds no PEM certificate`);
  } finally {
    closeSync(fd);
  }
}

/** Like podman and skopeo, a named --authfile must exist: silently ignoring a typo would pull anonymously. */
function checkAuthFile(file: string): void {
  let isFile: boolean;
  try {
    const fd = openSync(file, "r");
    isFile = fstatSync(fd).isFile();
    closeSync(fd);
  } catch (err) {
    throw badRequest(`--authfile ${file}: cannot read it (${describeErrno(err)})`);
  }
  if (!isFile) throw badRequest(`--authfile ${file}: not a regular file`);
}

/** The hosts `--insecure` covers: the registries named on the command line (Docker Hub's API host with docker.io). */
function insecureHosts(registries: readonly string[]): Set<string> {
  const hosts = new Set(registries);
  if (hosts.has("docker.io")) hosts.add("registry-1.docker.io");
  return hosts;
}

/** Maps the parsed options to client options; `registries` are the hosts of the references on the command line. */
export function registryClientOptionsFrom(
  opts: RegistryClientCliOptions,
  registries: readonly string[] = [],
): RegistryClientOptions {
  if (opts.caFile !== undefined) checkCaFile(opts.caFile);
  if (opts.authfile !== undefined) checkAuthFile(opts.authfile);
  const options: RegistryClientOptions = {};
  if (opts.insecure) options.insecure = insecureHosts(registries);
  if (opts.caFile !== undefined) options.caFile = opts.caFile;
  if (opts.certsDir !== undefined && opts.certsDir.length > 0) options.certsDirs = opts.certsDir;
  if (opts.authfile !== undefined) options.authFile = opts.authfile;
  if (opts.timeout !== undefined) options.timeoutMs = Math.round(opts.timeout * 1000);
  return options;
}

/** A registry client configured from the shared options; `--insecure` covers only `registries`. */
export function registryClientFromOptions(
  opts: RegistryClientCliOptions,
  registries: readonly string[] = [],
): RegistryClient {
  return new RegistryClient(registryClientOptionsFrom(opts, registries));
}

const untrustedCertificateCodes = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Makes a registry failure's message one line (OpenSSL's carry newlines) and, for the TLS failures these
 * options cure, says which option to use. Returns the same error. The CLI's
 * top-level handler (main.ts) applies it to every command's failure.
 */
export function explainRegistryFailure(err: unknown): unknown {
  // Only failures of reaching a registry: a multi-line report of bad input keeps its lines.
  if (!(err instanceof AppError) || (err.kind !== "Upstream" && err.kind !== "Unauthorized")) return err;
  err.message = err.message
    .replace(/\s*\n\s*/g, " ")
    // OpenSSL's "40…:error:0A00010B:SSL routines:fn:reason:file:line:" → its reason.
    .replace(/[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):\S*/g, "TLS error: $1")
    // Node's advice for system CAs does not apply: this tool takes --ca-file / certs.d instead.
    .replace(/; if the root CA is installed locally, try running Node\.js with --use-system-ca/, "")
    .trim();
  if (err.code === "ERR_SSL_WRONG_VERSION_NUMBER")
    err.message += " (the registry may serve plain HTTP: allow that with --insecure)";
  else if (err.code !== undefined && untrustedCertificateCodes.has(err.code))
    err.message +=
      " (trust its CA with --ca-file or a certs.d directory (--certs-dir), or skip verification with --insecure)";
  return err;
}
