// The auth challenge flow against the real distribution registry: bearer tokens from a token server
// written here (per the distribution token spec, signing ES256 JWTs with the test PKI's token key whose
// certificate is distribution's rootcertbundle), and HTTP Basic with distribution's htpasswd auth.

import assert from "node:assert/strict";
import { createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { AppError } from "../../src/errors.ts";
import { RegistryClient } from "../../src/oci/client/client.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { startDistribution } from "../harness/distribution.ts";
import { freePort } from "../harness/ports.ts";
import { startServerProcess, waitForHttp } from "../harness/process.ts";
import { makeTestPki, type TestPki } from "../harness/tls.ts";
import type { RunningRegistry } from "../harness/types.ts";
import { imageManifest, testBlob } from "./client-suite.ts";

const service = "test-registry";
const issuer = "test-token-issuer";
const users: Record<string, string> = { alice: "wonderland" };

interface TokenRequest {
  authorization: string | undefined;
  scopes: string[];
  service: string | null;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/**
 * A token server per the distribution token spec: checks Basic credentials, grants every scope asked for
 * to a known user and nothing to an anonymous one (as registries do for private repositories).
 */
async function startTokenServer(pki: TestPki) {
  const key = createPrivateKey(await readFile(pki.tokenSigningKeyFile));
  const certDer = new X509Certificate(await readFile(pki.tokenSigningCertFile)).raw;
  const requests: TokenRequest[] = [];
  const state = { tokenField: "token" as "token" | "access_token" };

  function issue(subject: string, scopes: string[]): string {
    const now = Math.floor(Date.now() / 1000);
    // distribution 2.8 finds the signing key through the x5c chain, verified against rootcertbundle.
    const header = { typ: "JWT", alg: "ES256", x5c: [certDer.toString("base64")] };
    const access = scopes.map((scope) => {
      const parts = scope.split(":");
      return { type: parts[0], name: parts.slice(1, -1).join(":"), actions: (parts.at(-1) ?? "").split(",") };
    });
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    return `${signingInput}.${b64url(signature)}`;
  }

  function userOf(req: IncomingMessage): string | undefined | false {
    const header = req.headers.authorization;
    if (!header) return undefined;
    const match = /^Basic (.+)$/.exec(header);
    if (!match) return false;
    const decoded = Buffer.from(match[1] as string, "base64").toString();
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    return users[user] !== undefined && users[user] === decoded.slice(colon + 1) ? user : false;
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ").filter(Boolean));
    requests.push({ authorization: req.headers.authorization, scopes, service: url.searchParams.get("service") });
    const user = userOf(req);
    if (user === false || url.searchParams.get("service") !== service) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
      return;
    }
    const token = issue(user ?? "", user ? scopes : []);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ [state.tokenField]: token, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    state,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function dockerConfigHome(registryHost: string, user: string, password: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), "client-auth-home-"));
  await mkdir(join(home, ".docker"));
  const auth = Buffer.from(`${user}:${password}`).toString("base64");
  await writeFile(join(home, ".docker", "config.json"), JSON.stringify({ auths: { [registryHost]: { auth } } }));
  return home;
}

function isUnauthorized(err: unknown): boolean {
  assert.ok(err instanceof AppError, String(err));
  assert.equal(err.kind, "Unauthorized", err.message);
  return true;
}

async function pushSmallImage(client: RegistryClient, host: string, repoName: string, tag: string) {
  const repo = client.repository(`${host}/${repoName}`);
  const config = testBlob(JSON.stringify({ os: "linux", architecture: "amd64", repoName }));
  const layer = testBlob(`layer of ${repoName}`);
  await repo.putBlob(config.data);
  await repo.putBlob(layer.data);
  const manifest = imageManifest(config, [layer]);
  await repo.putManifest(manifest.data, MediaType.ociManifest, tag);
  return { repo, layer, manifest };
}

describe("bearer token auth against distribution", () => {
  const dirs: string[] = [];
  let pki: TestPki;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;
  let registry: RunningRegistry;

  const clientWithHome = (home: string) =>
    new RegistryClient({ insecure: true, certsDirs: [], env: { HOME: home }, retryDelayMs: 10 });

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "client-auth-"));
    dirs.push(dir);
    pki = await makeTestPki(dir);
    tokens = await startTokenServer(pki);
    registry = await startDistribution({
      tokenAuth: { realm: tokens.realm, service, issuer, rootCertBundle: pki.tokenSigningCertFile },
    });
  });
  after(async () => {
    await registry?.stop();
    await tokens?.stop();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("pushes and pulls with credentials from ~/.docker/config.json, caching tokens per scope", async () => {
    const home = await dockerConfigHome(registry.host, "alice", "wonderland");
    dirs.push(home);
    const client = clientWithHome(home);
    try {
      assert.deepEqual(await client.ping(registry.host), { scheme: "http", auth: "bearer" });
      const before = tokens.requests.length;
      const { repo, layer, manifest } = await pushSmallImage(client, registry.host, "auth/app", "v1");
      assert.equal((await repo.getManifest("v1")).digest, manifest.digest);
      assert.equal((await repo.getManifest(manifest.digest)).digest, manifest.digest);
      const reader = await repo.getBlob(layer.digest);
      for await (const _ of reader.stream) {
        // drain
      }
      const used = tokens.requests.slice(before);
      const expectedBasic = `Basic ${Buffer.from("alice:wonderland").toString("base64")}`;
      assert.ok(used.length > 0);
      assert.ok(used.every((r) => r.authorization === expectedBasic && r.service === service));
      const scopeSets = used.map((r) => r.scopes.join(" "));
      assert.ok(scopeSets.includes("repository:auth/app:pull,push"), scopeSets.join(" | "));
      assert.ok(scopeSets.includes("repository:auth/app:pull"), scopeSets.join(" | "));
      // Each scope set was fetched once, not once per request.
      assert.equal(new Set(scopeSets).size, scopeSets.length, scopeSets.join(" | "));
    } finally {
      await client.close();
    }
  });

  it("denies an anonymous pull when the token server grants nothing", async () => {
    const home = await mkdtemp(join(tmpdir(), "client-auth-empty-"));
    dirs.push(home);
    const client = clientWithHome(home);
    try {
      const before = tokens.requests.length;
      await assert.rejects(client.repository(`${registry.host}/auth/app`).getManifest("v1"), isUnauthorized);
      const used = tokens.requests.slice(before);
      assert.ok(used.length >= 1 && used.every((r) => r.authorization === undefined));
    } finally {
      await client.close();
    }
  });

  it("reports refused credentials as Unauthorized", async () => {
    const home = await dockerConfigHome(registry.host, "alice", "wrong password");
    dirs.push(home);
    const client = clientWithHome(home);
    try {
      await assert.rejects(client.repository(`${registry.host}/auth/app`).getManifest("v1"), (err: unknown) => {
        isUnauthorized(err);
        assert.match((err as Error).message, /refused/);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  it("asks for pull on the source repository when mounting across repositories", async () => {
    const home = await dockerConfigHome(registry.host, "alice", "wonderland");
    dirs.push(home);
    const client = clientWithHome(home);
    try {
      const { layer } = await pushSmallImage(client, registry.host, "auth/source", "v1");
      const target = client.repository(`${registry.host}/auth/target`);
      const before = tokens.requests.length;
      await target.putBlob(layer.data, { mountFrom: "auth/source" });
      assert.deepEqual(await target.statBlob(layer.digest), { digest: layer.digest, size: layer.size });
      const scopeSets = tokens.requests.slice(before).map((r) => [...r.scopes].sort().join(" "));
      assert.ok(
        scopeSets.includes("repository:auth/source:pull repository:auth/target:pull,push"),
        scopeSets.join(" | "),
      );
    } finally {
      await client.close();
    }
  });

  it("accepts tokens answered as access_token", async () => {
    const home = await dockerConfigHome(registry.host, "alice", "wonderland");
    dirs.push(home);
    const client = clientWithHome(home);
    tokens.state.tokenField = "access_token";
    try {
      const { repo, manifest } = await pushSmallImage(client, registry.host, "auth/oauth", "v1");
      assert.equal((await repo.resolve("v1")).digest, manifest.digest);
    } finally {
      tokens.state.tokenField = "token";
      await client.close();
    }
  });
});

describe("HTTP basic auth against distribution (htpasswd)", () => {
  let dir: string;
  let host: string;
  let stopRegistry: () => Promise<void>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "client-basic-"));
    const htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, `alice:${bcrypt.hashSync("wonderland", 10)}\n`);
    host = `127.0.0.1:${await freePort()}`;
    const config = {
      version: "0.1",
      log: { level: "warn", accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: join(dir, "data") } },
      http: { addr: host, secret: "basic-auth-test" },
      auth: { htpasswd: { realm: "basic-realm", path: htpasswd } },
    };
    await writeFile(join(dir, "config.yml"), JSON.stringify(config));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
    const server = startServerProcess("docker-registry", ["serve", join(dir, "config.yml")], env);
    stopRegistry = () => server.kill();
    await waitForHttp(server, `http://${host}/v2/`, [401], "docker-registry (htpasswd)");
  });
  after(async () => {
    await stopRegistry?.();
    await rm(dir, { recursive: true, force: true });
  });

  it("pushes and pulls with Basic credentials, and is refused without or with wrong ones", async () => {
    const home = await dockerConfigHome(host, "alice", "wonderland");
    const client = new RegistryClient({ insecure: true, certsDirs: [], env: { HOME: home } });
    const anonymous = new RegistryClient({ insecure: true, certsDirs: [], credentials: async () => undefined });
    const wrong = new RegistryClient({
      insecure: true,
      certsDirs: [],
      credentials: async () => ({ kind: "basic", username: "alice", password: "nope" }),
    });
    try {
      assert.deepEqual(await client.ping(host), { scheme: "http", auth: "basic" });
      const { manifest } = await pushSmallImage(client, host, "basic/app", "v1");
      assert.equal((await client.repository(`${host}/basic/app`).getManifest("v1")).digest, manifest.digest);
      await assert.rejects(anonymous.repository(`${host}/basic/app`).getManifest("v1"), isUnauthorized);
      await assert.rejects(wrong.repository(`${host}/basic/app`).getManifest("v1"), isUnauthorized);
    } finally {
      await Promise.all([client.close(), anonymous.close(), wrong.close()]);
      await rm(home, { recursive: true, force: true });
    }
  });
});
