// Credential lookup from the files docker and podman write, in temporary home directories; a real
// docker-credential helper program (a shell script on a temporary PATH); certs.d reading for TLS.

import assert from "node:assert/strict";
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentialsFromAuthFiles } from "../../src/oci/client/credentials.ts";
import { tlsSettingsFor } from "../../src/oci/client/tls.ts";
import { makeTestPki, type TestPki } from "../harness/tls.ts";

const basic = (u: string, p: string) => ({ auth: Buffer.from(`${u}:${p}`).toString("base64") });

async function writeJson(path: string, value: unknown) {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, JSON.stringify(value));
}

describe("credentials from auth files", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "client-creds-"));
  });
  after(() => rm(root, { recursive: true, force: true }));

  async function home(name: string) {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  it("reads ~/.docker/config.json auth (base64 user:pass) by host", async () => {
    const h = await home("docker");
    await writeJson(join(h, ".docker", "config.json"), { auths: { "reg.example:5000": basic("bob", "pa:ss") } });
    const lookup = credentialsFromAuthFiles({ env: { HOME: h } });
    assert.deepEqual(await lookup("reg.example:5000"), { kind: "basic", username: "bob", password: "pa:ss" });
    assert.equal(await lookup("other.example"), undefined);
  });

  it("finds Docker Hub credentials stored under https://index.docker.io/v1/", async () => {
    const h = await home("hub");
    await writeJson(join(h, ".docker", "config.json"), {
      auths: { "https://index.docker.io/v1/": basic("hub", "pw") },
    });
    const lookup = credentialsFromAuthFiles({ env: { HOME: h } });
    assert.deepEqual(await lookup("docker.io"), { kind: "basic", username: "hub", password: "pw" });
  });

  it("matches keys written as URLs and reads username/password fields and identity tokens", async () => {
    const h = await home("fields");
    await writeJson(join(h, ".docker", "config.json"), {
      auths: {
        "https://fields.example/v2/": { username: "u", password: "p" },
        "tok.example": { identitytoken: "refresh-me" },
      },
    });
    const lookup = credentialsFromAuthFiles({ env: { HOME: h } });
    assert.deepEqual(await lookup("fields.example"), { kind: "basic", username: "u", password: "p" });
    assert.deepEqual(await lookup("tok.example"), { kind: "identityToken", token: "refresh-me" });
  });

  it("honours $DOCKER_CONFIG", async () => {
    const h = await home("dockerconfig");
    const dockerConfig = join(h, "elsewhere");
    await writeJson(join(dockerConfig, "config.json"), { auths: { "dc.example": basic("dc", "1") } });
    const lookup = credentialsFromAuthFiles({ env: { HOME: h, DOCKER_CONFIG: dockerConfig } });
    assert.deepEqual(await lookup("dc.example"), { kind: "basic", username: "dc", password: "1" });
  });

  it("prefers REGISTRY_AUTH_FILE, then XDG_RUNTIME_DIR, then ~/.config/containers, then docker", async () => {
    const h = await home("order");
    const runtime = join(h, "run");
    const authFile = join(h, "explicit.json");
    await writeJson(authFile, { auths: { "one.example": basic("explicit", "1") } });
    await writeJson(join(runtime, "containers", "auth.json"), {
      auths: { "one.example": basic("runtime", "2"), "two.example": basic("runtime", "2") },
    });
    await writeJson(join(h, ".config", "containers", "auth.json"), {
      auths: { "two.example": basic("config", "3"), "three.example": basic("config", "3") },
    });
    await writeJson(join(h, ".docker", "config.json"), {
      auths: { "three.example": basic("docker", "4"), "four.example": basic("docker", "4") },
    });
    const lookup = credentialsFromAuthFiles({
      env: { HOME: h, XDG_RUNTIME_DIR: runtime, REGISTRY_AUTH_FILE: authFile },
    });
    const user = async (host: string) => ((await lookup(host)) as { username?: string } | undefined)?.username;
    assert.equal(await user("one.example"), "explicit");
    assert.equal(await user("two.example"), "runtime");
    assert.equal(await user("three.example"), "config");
    assert.equal(await user("four.example"), "docker");
  });

  it("uses a repository-scoped containers entry before the host entry", async () => {
    const h = await home("scoped");
    await writeJson(join(h, ".config", "containers", "auth.json"), {
      auths: { "ns.example": basic("host", "1"), "ns.example/team": basic("team", "2") },
    });
    const lookup = credentialsFromAuthFiles({ env: { HOME: h } });
    assert.equal(((await lookup("ns.example", "team/app")) as { username: string }).username, "team");
    assert.equal(((await lookup("ns.example", "other/app")) as { username: string }).username, "host");
  });

  it("skips an unreadable file and continues with the next", async () => {
    const h = await home("broken");
    await mkdir(join(h, ".config", "containers"), { recursive: true });
    await writeFile(join(h, ".config", "containers", "auth.json"), "{not json");
    await writeJson(join(h, ".docker", "config.json"), { auths: { "b.example": basic("ok", "1") } });
    const notes: string[] = [];
    const lookup = credentialsFromAuthFiles({ env: { HOME: h }, debug: (m) => notes.push(m) });
    assert.equal(((await lookup("b.example")) as { username: string }).username, "ok");
    assert.ok(notes.some((n) => n.includes("auth.json")));
  });

  it("runs docker-credential-<name> from credHelpers and credsStore", async () => {
    const h = await home("helpers");
    const bin = join(h, "bin");
    await mkdir(bin);
    // A real helper program speaking the docker-credential protocol: server URL on stdin, JSON out.
    const helper = join(bin, "docker-credential-testhelper");
    await writeFile(
      helper,
      [
        "#!/bin/sh",
        'read server; [ "$1" = get ] || exit 1',
        'case "$server" in',
        '  helped.example) printf \'{"ServerURL":"%s","Username":"helped","Secret":"s3cret"}\' "$server" ;;',
        '  token.example) printf \'{"ServerURL":"%s","Username":"<token>","Secret":"idtok"}\' "$server" ;;',
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;",
        "esac",
        "",
      ].join("\n"),
    );
    await chmod(helper, 0o755);
    await writeJson(join(h, ".docker", "config.json"), {
      credHelpers: { "helped.example": "testhelper", "missing.example": "nosuchhelper" },
      credsStore: "testhelper",
      auths: { "inline.example": basic("inline", "1") },
    });
    const notes: string[] = [];
    const lookup = credentialsFromAuthFiles({ env: { HOME: h, PATH: bin }, debug: (m) => notes.push(m) });
    assert.deepEqual(await lookup("helped.example"), { kind: "basic", username: "helped", password: "s3cret" });
    assert.deepEqual(await lookup("token.example"), { kind: "identityToken", token: "idtok" });
    assert.deepEqual(await lookup("inline.example"), { kind: "basic", username: "inline", password: "1" });
    assert.equal(await lookup("unknown.example"), undefined);
    assert.equal(await lookup("missing.example"), undefined);
    assert.ok(
      notes.some((n) => n.includes("docker-credential-nosuchhelper is not on PATH")),
      notes.join("\n"),
    );
  });
});

describe("TLS settings from certs.d", () => {
  let root: string;
  let pki: TestPki;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "client-certsd-"));
    pki = await makeTestPki(join(root, "pki"));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("adds every *.crt of the host's directory to the default roots and loads a *.cert/*.key pair", async () => {
    const dir = join(root, "certs.d", "reg.example:5000");
    await mkdir(dir, { recursive: true });
    await copyFile(pki.caCertFile, join(dir, "ca.crt"));
    await copyFile(pki.certFile, join(dir, "client.cert"));
    await copyFile(pki.keyFile, join(dir, "client.key"));
    const settings = await tlsSettingsFor("reg.example:5000", { certsDirs: [join(root, "certs.d")] });
    assert.equal(settings.rejectUnauthorized, true);
    assert.ok(settings.ca && settings.ca.length > 1, "the extra CA comes on top of the default roots");
    assert.ok(settings.ca.some((pem) => pem.includes("BEGIN CERTIFICATE") && pem.trim().endsWith("-----")));
    assert.match(String(settings.cert), /BEGIN CERTIFICATE/);
    assert.match(String(settings.key), /BEGIN PRIVATE KEY/);
  });

  it("leaves other hosts with the default roots, and refuses a key without its certificate", async () => {
    assert.equal((await tlsSettingsFor("plain.example", { certsDirs: [join(root, "certs.d")] })).ca, undefined);
    const dir = join(root, "certs.d", "half.example");
    await mkdir(dir, { recursive: true });
    await copyFile(pki.keyFile, join(dir, "client.key"));
    await assert.rejects(tlsSettingsFor("half.example", { certsDirs: [join(root, "certs.d")] }), /has no client.cert/);
  });

  it("marks only insecure hosts as unverified", async () => {
    const insecure = (host: string) => host.endsWith(":5000");
    assert.equal((await tlsSettingsFor("a.example:5000", { certsDirs: [], insecure })).rejectUnauthorized, false);
    assert.equal((await tlsSettingsFor("a.example:443", { certsDirs: [], insecure })).rejectUnauthorized, true);
  });
});
