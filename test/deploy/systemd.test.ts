// The systemd unit (deploy/systemd), checked by Debian's systemd itself: `systemd-analyze verify` loads it
// (and its drop-in) in a throwaway root holding the distribution's units and an executable at ExecStart's
// path, and must print nothing (it exits 0 even on unknown keys, so its warnings are the verdict);
// `systemd-analyze security --offline` rates the exposure and shows each hardening setting as systemd reads
// it. This machine's PID 1 is not systemd, so the service is not started here (docs/deploying.md).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const unit = "boot-assets-factory.service";
const source = new URL("../../deploy/systemd/", import.meta.url);

interface Check {
  set: boolean | null;
  name: string;
  exposure: string | null;
}

async function security(root: string, threshold: number): Promise<Check[]> {
  const { stdout } = await run("systemd-analyze", [
    "security",
    "--offline=yes",
    `--root=${root}`,
    `--threshold=${threshold}`,
    "--json=short",
    unit,
  ]);
  return JSON.parse(stdout) as Check[];
}

function isSet(checks: Check[], name: string): boolean | null {
  const check = checks.find((c) => c.name === name);
  assert.ok(check, `systemd rates ${name}`);
  return check.set;
}

describe("systemd unit", () => {
  let plain: string;
  let sandboxed: string;
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), "systemd-unit-"));
    plain = join(base, "plain");
    sandboxed = join(base, "sandboxed");
    for (const root of [plain, sandboxed]) {
      await mkdir(join(root, "etc/systemd/system"), { recursive: true });
      await mkdir(join(root, "lib/systemd"), { recursive: true });
      await cp("/lib/systemd/system", join(root, "lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
      // ExecStart's program must exist and be executable for verify; a stand-in (the unit is what is checked).
      await mkdir(join(root, "opt/boot-assets"), { recursive: true });
      await writeFile(join(root, "opt/boot-assets/node"), "#!/bin/sh\n");
      await chmod(join(root, "opt/boot-assets/node"), 0o755);
      await cp(new URL(unit, source), join(root, "etc/systemd/system", unit));
    }
    await cp(new URL(`${unit}.d/`, source), join(sandboxed, "etc/systemd/system", `${unit}.d`), { recursive: true });
  });
  after(() => rm(base, { recursive: true, force: true }));

  for (const variant of ["plain", "sandboxed"] as const)
    test(`systemd-analyze verify: no warning (${variant === "plain" ? "as shipped" : "with overlay-sandbox.conf"})`, async () => {
      const root = variant === "plain" ? plain : sandboxed;
      const { stdout, stderr } = await run("systemd-analyze", ["verify", `--root=${root}`, unit]);
      assert.equal(`${stdout}${stderr}`, "");
    });

  test("a misspelt key is caught (the check can fail)", async () => {
    const root = await mkdtemp(join(tmpdir(), "systemd-unit-bad-"));
    try {
      await cp(plain, root, { recursive: true, verbatimSymlinks: true });
      await mkdir(join(root, "etc/systemd/system", `${unit}.d`));
      await writeFile(join(root, "etc/systemd/system", `${unit}.d`, "typo.conf"), "[Service]\nProtectSytem=strict\n");
      const { stderr } = await run("systemd-analyze", ["verify", `--root=${root}`, unit]);
      assert.match(stderr, /Unknown key 'ProtectSytem'/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test("as shipped: unprivileged and confined (exposure at most 2.0 of 10)", async () => {
    const checks = await security(plain, 20);
    for (const name of [
      "User=/DynamicUser=",
      "NoNewPrivileges=",
      "ProtectSystem=",
      "ProtectHome=",
      "PrivateTmp=",
      "PrivateDevices=",
      "PrivateUsers=",
      "ProtectKernelModules=",
      "ProtectKernelTunables=",
      "ProtectControlGroups=",
      "RestrictNamespaces=~net",
      "RestrictNamespaces=~pid",
      "RestrictSUIDSGID=",
      "CapabilityBoundingSet=~CAP_SYS_ADMIN",
      "SystemCallFilter=~@privileged",
      "SystemCallFilter=~@mount",
    ])
      assert.equal(isSet(checks, name), true, name);
    // V8's JIT needs writable executable memory: left off on purpose.
    assert.equal(isSet(checks, "MemoryDenyWriteExecute="), false);
  });

  test("overlay-sandbox.conf: root with exactly what `unshare --net --pid --root` needs (exposure at most 4.0)", async () => {
    const checks = await security(sandboxed, 40);
    // src/tools/sandbox.ts: new net and PID namespaces (CAP_SYS_ADMIN), chroot, setuid/setgid to nobody
    assert.equal(isSet(checks, "RestrictNamespaces=~net"), false);
    assert.equal(isSet(checks, "RestrictNamespaces=~pid"), false);
    assert.equal(isSet(checks, "CapabilityBoundingSet=~CAP_SYS_ADMIN"), false);
    assert.equal(isSet(checks, "SystemCallFilter=~@mount"), false, "chroot is in @mount");
    // every other namespace stays forbidden, and the rest of the confinement is kept
    for (const name of [
      "RestrictNamespaces=~user",
      "RestrictNamespaces=~mnt",
      "RestrictNamespaces=~ipc",
      "RestrictNamespaces=~uts",
      "RestrictNamespaces=~cgroup",
      "NoNewPrivileges=",
      "ProtectSystem=",
      "PrivateTmp=",
      "PrivateDevices=",
      "ProtectKernelModules=",
      "CapabilityBoundingSet=~CAP_SYS_MODULE",
      "CapabilityBoundingSet=~CAP_NET_ADMIN",
      "CapabilityBoundingSet=~CAP_SYS_PTRACE",
    ])
      assert.equal(isSet(checks, name), true, name);
  });
});
