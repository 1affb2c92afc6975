// Registry credentials from the files docker, podman and skopeo already use, so a user who ran
// `docker login` or `podman login` needs nothing else. Order, as containers-auth.json(5) documents it:
//   1. $REGISTRY_AUTH_FILE
//   2. $XDG_RUNTIME_DIR/containers/auth.json
//   3. ~/.config/containers/auth.json
//   4. $DOCKER_CONFIG/config.json, else ~/.docker/config.json
// In each file a credential helper named for the host (`credHelpers`) wins, then the file-wide helper
// (`credsStore`), then the inline `auths` entry. The first file that knows the host wins.

import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

/** What a registry accepts: a user name and password, or an OAuth2 refresh ("identity") token. */
export type Credential =
  | { kind: "basic"; username: string; password: string }
  | { kind: "identityToken"; token: string; username?: string };

/** Looks up credentials for a registry host (as written in image references) and optional repository. */
export type CredentialLookup = (registry: string, repository?: string) => Promise<Credential | undefined>;

export interface CredentialSourceOptions {
  /** Environment to read REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, DOCKER_CONFIG, HOME and PATH from. */
  env?: NodeJS.ProcessEnv;
  /** An auth file to read before all the usual places (the `--authfile` of podman/skopeo). */
  authFile?: string;
  /** Receives notes about skipped sources (unreadable files, missing helpers). */
  debug?: (message: string) => void;
  /** Upper bound on a credential helper's run time. */
  helperTimeoutMs?: number;
}

/** Bound on an auth file; real ones are a few KiB. */
const maxAuthFileBytes = 1024 * 1024;

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The auth files to consult, most specific first. */
export function authFilePaths(options: CredentialSourceOptions = {}): string[] {
  const env = options.env ?? process.env;
  const home = env.HOME || homedir();
  const paths: string[] = [];
  if (options.authFile) paths.push(options.authFile);
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  paths.push(join(home, ".config", "containers", "auth.json"));
  paths.push(join(env.DOCKER_CONFIG || join(home, ".docker"), "config.json"));
  return [...new Set(paths)];
}

/**
 * The keys an auth file may use for a registry, most specific first: containers auth.json allows
 * `host/namespace/repo` entries; docker writes `https://host` forms; Docker Hub is stored under its
 * historical v1 index URL.
 */
export function authKeysFor(registry: string, repository?: string): string[] {
  const keys: string[] = [];
  if (repository) {
    const parts = repository.split("/");
    for (let n = parts.length; n > 0; n--) keys.push(`${registry}/${parts.slice(0, n).join("/")}`);
  }
  const hosts = isDockerHub(registry)
    ? ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
    : [registry];
  for (const host of hosts) keys.push(host, `https://${host}`, `http://${host}`, `https://${host}/v2/`);
  return keys;
}

function isDockerHub(registry: string): boolean {
  return registry === "docker.io" || registry === "index.docker.io" || registry === "registry-1.docker.io";
}

/** Normalises an `auths` key to what it names ("https://host/v1/" → "host") for loose matching. */
function hostOfKey(key: string): string {
  return key
    .replace(/^https?:\/\//, "")
    .replace(/\/+$/, "")
    .replace(/\/v[12]$/, "");
}

function findEntry<T>(table: Record<string, T> | undefined, keys: string[]): T | undefined {
  if (!table) return undefined;
  for (const key of keys) if (Object.hasOwn(table, key)) return table[key];
  // Keys written with other URL decorations ("https://host/v1/") still name the host.
  const wanted = new Set(keys.map(hostOfKey));
  for (const [key, value] of Object.entries(table)) if (wanted.has(hostOfKey(key))) return value;
  return undefined;
}

function credentialFromEntry(entry: AuthEntry): Credential | undefined {
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  if (entry.identitytoken)
    return username
      ? { kind: "identityToken", token: entry.identitytoken, username }
      : { kind: "identityToken", token: entry.identitytoken };
  if (username !== undefined && password !== undefined && username !== "") return { kind: "basic", username, password };
  return undefined;
}

async function readAuthFile(path: string, debug: (m: string) => void): Promise<AuthFile | undefined> {
  let text: string;
  try {
    const data = await readFile(path);
    if (data.length > maxAuthFileBytes) {
      debug(`skipping ${path}: larger than ${maxAuthFileBytes} bytes`);
      return undefined;
    }
    text = data.toString("utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") debug(`skipping ${path}: ${(err as Error).message}`);
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      debug(`skipping ${path}: not a JSON object`);
      return undefined;
    }
    return parsed as AuthFile;
  } catch (err) {
    debug(`skipping ${path}: ${(err as Error).message}`);
    return undefined;
  }
}

/** Finds `docker-credential-<name>` on PATH, or undefined. */
async function findHelper(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return undefined;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, `docker-credential-${name}`);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Runs a docker credential helper's `get` (protocol: server URL on stdin, JSON {Username, Secret} on
 * stdout; a Username of "<token>" means the secret is an identity token).
 */
async function runHelper(
  name: string,
  serverUrl: string,
  options: CredentialSourceOptions,
  debug: (m: string) => void,
): Promise<Credential | undefined> {
  const env = options.env ?? process.env;
  const program = await findHelper(name, env);
  if (!program) {
    debug(`credential helper docker-credential-${name} is not on PATH; skipped`);
    return undefined;
  }
  const output = await new Promise<string | undefined>((resolve) => {
    const child = execFile(
      program,
      ["get"],
      { env, timeout: options.helperTimeoutMs ?? 10_000, maxBuffer: 64 * 1024 },
      (err, stdout) => {
        if (err) {
          // Helpers exit non-zero with "credentials not found in native keychain" for unknown hosts.
          debug(`docker-credential-${name} get ${serverUrl} failed: ${err.message.trim()}`);
          resolve(undefined);
        } else resolve(stdout);
      },
    );
    child.stdin?.end(serverUrl);
  });
  if (output === undefined) return undefined;
  try {
    const parsed = JSON.parse(output) as { Username?: unknown; Secret?: unknown };
    if (typeof parsed.Secret !== "string" || parsed.Secret === "") return undefined;
    const username = typeof parsed.Username === "string" ? parsed.Username : "";
    if (username === "<token>") return { kind: "identityToken", token: parsed.Secret };
    return { kind: "basic", username, password: parsed.Secret };
  } catch {
    debug(`docker-credential-${name} printed something that is not JSON; ignored`);
    return undefined;
  }
}

async function credentialFromFile(
  file: AuthFile,
  registry: string,
  repository: string | undefined,
  options: CredentialSourceOptions,
  debug: (m: string) => void,
): Promise<Credential | undefined> {
  const keys = authKeysFor(registry, repository);
  // Helpers are asked with the server URL docker itself would use.
  const serverUrl = isDockerHub(registry) ? "https://index.docker.io/v1/" : registry;
  const helper = findEntry(file.credHelpers, keys);
  if (helper) return runHelper(helper, serverUrl, options, debug);
  const entry = findEntry(file.auths, keys);
  const inline = entry ? credentialFromEntry(entry) : undefined;
  if (inline) return inline;
  if (file.credsStore) return runHelper(file.credsStore, serverUrl, options, debug);
  return undefined;
}

/** Builds a lookup over the standard auth files (re-read on each call, so a fresh `docker login` counts). */
export function credentialsFromAuthFiles(options: CredentialSourceOptions = {}): CredentialLookup {
  const debug = options.debug ?? (() => {});
  return async (registry, repository) => {
    for (const path of authFilePaths(options)) {
      const file = await readAuthFile(path, debug);
      if (!file) continue;
      const credential = await credentialFromFile(file, registry, repository, options, debug);
      if (credential) return credential;
    }
    return undefined;
  };
}

/** A fixed table of credentials by registry host, for callers that have their own (and for tests). */
export function staticCredentials(table: Record<string, Credential>): CredentialLookup {
  return async (registry) => table[registry];
}
