import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { buildCmdline, type CmdlineRequest, KernelCmdline } from "../../src/talos/cmdline.ts";
import { decodeMetaValues } from "../../src/talos/meta.ts";
import { platforms } from "../../src/talos/platforms.ts";

const base: CmdlineRequest = {
  talosVersion: "v1.7.0",
  platform: "metal",
  arch: "amd64",
  secureBoot: false,
  outputKind: "cmdline",
};
const cmdline = (overrides: Partial<CmdlineRequest>) => buildCmdline({ ...base, ...overrides });

// Default args per the reference, written out by hand for each version band.
const defaults17 =
  "init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512";
const defaults110 =
  "init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1";
const defaults112 =
  "init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1";
const defaults113 =
  "init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never";
const defaults114 =
  "slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never";

// Platform args as the reference lists them (amd64).
const referencePlatformArgs: Record<string, string> = {
  aws: "console=tty1 console=ttyS0 net.ifnames=0",
  gcp: "console=ttyS0 net.ifnames=0 talos.dashboard.disabled=1 sysctl.kernel.kexec_load_disabled=1",
  nocloud: "console=tty1 console=ttyS0 net.ifnames=0",
  openstack: "console=tty1 console=ttyS0 net.ifnames=0",
  hcloud: "console=tty1 console=ttyS0 net.ifnames=0",
  exoscale: "console=tty1 console=ttyS0 net.ifnames=0",
  cloudstack: "console=tty1 console=ttyS0 net.ifnames=0",
  opennebula: "console=tty1 console=ttyS0 net.ifnames=0",
  azure:
    "console=ttyS0,115200n8 earlyprintk=ttyS0,115200 rootdelay=300 net.ifnames=0 talos.dashboard.disabled=1 sysctl.kernel.kexec_load_disabled=1",
  vmware: "talos.config=guestinfo console=tty0 console=ttyS0 earlyprintk=ttyS0,115200 net.ifnames=0",
};

/** How a repeated key prints: go-procfs groups values by key in first-appearance order. */
function grouped(args: string): string {
  const order: string[] = [];
  const values = new Map<string, string[]>();
  for (const arg of args.split(" ")) {
    const key = arg.split("=")[0] as string;
    if (!values.has(key)) {
      order.push(key);
      values.set(key, []);
    }
    values.get(key)?.push(arg);
  }
  return order.flatMap((k) => values.get(k) ?? []).join(" ");
}

describe("kernel command line", () => {
  test("the reference's fixed point: Talos 1.7 metal amd64, empty schematic", () => {
    assert.equal(
      cmdline({}),
      "talos.platform=metal console=ttyS0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512",
    );
  });

  test("from 1.8 console=ttyS0 is no longer a metal default; arm64 metal uses ttyAMA0", () => {
    assert.equal(cmdline({ talosVersion: "v1.8.0" }), `talos.platform=metal console=tty0 ${defaults17}`);
    assert.equal(
      cmdline({ talosVersion: "v1.8.0", arch: "arm64" }),
      `talos.platform=metal console=ttyAMA0 console=tty0 ${defaults17}`,
    );
  });

  // versions × platforms: platform args (grouped by key), then the defaults of the version band.
  const versions: [string, string][] = [
    ["v1.7.4", defaults17],
    ["v1.9.2", defaults17],
    ["v1.10.3", defaults110],
    ["v1.12.1", defaults112],
    ["v1.13.0", defaults113],
  ];
  for (const [version, defaults] of versions)
    for (const [platform, args] of Object.entries(referencePlatformArgs))
      test(`${platform} ${version}: platform args then the version's default args`, () => {
        assert.equal(
          cmdline({ talosVersion: version, platform }),
          `talos.platform=${platform} ${grouped(args)} ${defaults}`,
        );
      });

  // arm64 rows: the default args do not depend on the arch (talos pkg/machinery/kernel/kernel.go DefaultArgs);
  // the platform args do only where a platform's KernelArgs switches on it — metal (ttyAMA0 before tty0, at
  // every version: platform/metal/metal.go), vmware (tty0 then ttyAMA0, no earlyprintk:
  // platform/vmware/vmware.go), equinixMetal (platform/equinixmetal/equinix.go, above); the others ignore it.
  const arm64PlatformArgs: Record<string, string> = {
    ...referencePlatformArgs,
    metal: "console=ttyAMA0 console=tty0",
    vmware: "talos.config=guestinfo console=tty0 console=ttyAMA0 net.ifnames=0",
  };
  for (const [version, defaults] of versions)
    for (const [platform, args] of Object.entries(arm64PlatformArgs))
      test(`${platform} ${version} arm64: the arch's platform args then the version's default args`, () => {
        assert.equal(
          cmdline({ talosVersion: version, platform, arch: "arm64" }),
          `talos.platform=${platform} ${grouped(args)} ${defaults}`,
        );
      });

  test("1.14: init_on_alloc and lockdown are gone; the nvme timeout is an AWS platform arg", () => {
    assert.equal(cmdline({ talosVersion: "v1.14.0", platform: "gcp" }).includes("nvme_core"), false);
    assert.equal(
      cmdline({ talosVersion: "v1.14.0", platform: "aws" }),
      `talos.platform=aws console=tty1 console=ttyS0 net.ifnames=0 nvme_core.io_timeout=4294967295 ${defaults114}`,
    );
    assert.equal(
      cmdline({ talosVersion: "v1.14.0", secureBoot: true }),
      `talos.platform=metal console=tty0 ${defaults114}`,
    );
  });

  test("every platform in the table starts with its own talos.platform and has a console or ifnames arg", () => {
    for (const p of platforms)
      for (const arch of ["amd64", "arm64"] as const) {
        const line = cmdline({ talosVersion: "v1.10.0", platform: p.name, arch });
        assert.ok(line.startsWith(`talos.platform=${p.name} `), line);
        // the container platform adds no args of its own (talos platform/container/container.go KernelArgs)
        if (p.name !== "container") assert.match(line, / (console=|net\.ifnames=0)/);
        assert.ok(line.endsWith(defaults110), line);
      }
  });

  test("digital-ocean (a platform with a dash) and the upstream-only platforms are known", () => {
    assert.equal(
      cmdline({ talosVersion: "v1.10.0", platform: "digital-ocean" }),
      `talos.platform=digital-ocean console=ttyS0 console=tty0 console=tty1 net.ifnames=0 ${defaults110}`,
    );
    assert.equal(
      cmdline({ talosVersion: "v1.10.0", platform: "equinixMetal" }),
      `talos.platform=equinixMetal console=ttyS1,115200n8 ${defaults110}`,
    );
    // Talos keeps "packet" as Equinix Metal's old name and knows "container"
    // (internal/app/machined/pkg/runtime/v1alpha1/platform/platform.go newPlatform)
    assert.equal(
      cmdline({ talosVersion: "v1.10.0", platform: "packet", arch: "arm64" }),
      `talos.platform=packet console=ttyAMA0,115200 ${defaults110}`,
    );
    assert.equal(
      cmdline({ talosVersion: "v1.10.0", platform: "container" }),
      `talos.platform=container ${defaults110}`,
    );
  });

  test("unknown platform is a BadRequest naming it", () => {
    assert.throws(
      () => cmdline({ platform: "nope" }),
      (err) => isAppError(err, "BadRequest") && /"nope"/.test(err.message),
    );
  });

  test("talos.halt_if_installed=1 for ISOs from 1.8, after the platform args", () => {
    assert.equal(
      cmdline({ talosVersion: "v1.8.1", outputKind: "iso" }),
      `talos.platform=metal console=tty0 talos.halt_if_installed=1 ${defaults17}`,
    );
    assert.equal(cmdline({ talosVersion: "v1.7.6", outputKind: "iso" }).includes("halt_if_installed"), false);
    assert.equal(cmdline({ talosVersion: "v1.8.1", outputKind: "uki" }).includes("halt_if_installed"), false);
  });

  test("secure boot adds lockdown=confidentiality after the defaults (before 1.14)", () => {
    assert.equal(
      cmdline({ talosVersion: "v1.10.0", secureBoot: true }),
      `talos.platform=metal console=tty0 ${defaults110} lockdown=confidentiality`,
    );
  });

  test("META goes into talos.environment (not for disk images), before the extra args", () => {
    const meta = [{ key: 0xa, value: "hello" }];
    const line = cmdline({ talosVersion: "v1.8.0", schematic: { meta, extraKernelArgs: ["foo=bar"] } });
    const expectedB64 = Buffer.from("0xa=hello").toString("base64");
    assert.equal(
      line,
      `talos.platform=metal console=tty0 ${defaults17} talos.environment=INSTALLER_META_BASE64=${expectedB64} foo=bar`,
    );
    assert.equal(
      cmdline({ talosVersion: "v1.8.0", outputKind: "disk", schematic: { meta } }).includes("talos.environment"),
      false,
    );
  });

  test("long META is gzip'd from 1.6.3, plain before", () => {
    const meta = [{ key: 0xc, value: "x".repeat(300) }];
    const envOf = (line: string) => /INSTALLER_META_BASE64=(\S+)/.exec(line)?.[1] as string;
    const gz = Buffer.from(envOf(cmdline({ talosVersion: "v1.6.3", schematic: { meta } })), "base64");
    assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b]);
    const plain = Buffer.from(envOf(cmdline({ talosVersion: "v1.6.2", schematic: { meta } })), "base64");
    assert.equal(plain.toString(), `0xc=${"x".repeat(300)}`);
    assert.deepEqual(decodeMetaValues(envOf(cmdline({ talosVersion: "v1.6.3", schematic: { meta } }))), meta);
  });

  const extra = (extraKernelArgs: string[], version = "v1.10.0") =>
    cmdline({ talosVersion: version, schematic: { extraKernelArgs } });

  test("-key removes every value of key", () => {
    assert.equal(extra(["-consoleblank"]).includes("consoleblank"), false);
    assert.equal(extra(["-console"]), `talos.platform=metal ${defaults110}`);
  });

  test("-key=v removes only that value", () => {
    assert.equal(extra(["-console=ttyS0"], "v1.7.0"), `talos.platform=metal console=tty0 ${defaults17}`);
    assert.equal(extra(["-pti=off"]), `talos.platform=metal console=tty0 ${defaults110}`);
  });

  test("console and talos.platform replace; other keys append in the key's place", () => {
    assert.equal(
      extra(["console=ttyS1,115200", "talos.platform=nocloud", "pti=off", "new=1", "bare"]),
      `talos.platform=nocloud console=ttyS1,115200 ${defaults110.replace("pti=on", "pti=on pti=off")} new=1 bare`,
    );
  });

  test("values are grouped by key in first-appearance order, an empty value prints as a bare key", () => {
    assert.equal(extra(["a=1 b", "a=2", "c="]), `talos.platform=metal console=tty0 ${defaults110} a=1 a=2 b c`);
  });

  test("removing then re-adding: -key=v keeps the key's slot, -key drops it", () => {
    assert.equal(
      extra(["-consoleblank=0", "consoleblank=5"]),
      `talos.platform=metal console=tty0 ${defaults110.replace("consoleblank=0", "consoleblank=5")}`,
    );
    assert.equal(
      extra(["-consoleblank", "consoleblank=5"]),
      `talos.platform=metal console=tty0 ${defaults110.replace(" consoleblank=0", "")} consoleblank=5`,
    );
  });

  test("a lone - is an ordinary kernel arg", () => {
    assert.ok(extra(["-"]).endsWith(" -"));
  });
});

describe("KernelCmdline (go-procfs semantics)", () => {
  test("parse groups values by key, first appearance first", () => {
    assert.deepEqual(KernelCmdline.parse(["x=1 y", "x=2 z=a=b"]), [
      { key: "x", values: ["1", "2"] },
      { key: "y", values: [""] },
      { key: "z", values: ["a=b"] },
    ]);
  });

  test("setAll replaces in place, appends unknown keys", () => {
    const c = new KernelCmdline();
    c.appendAll(["a=1 b=2 a=3"]);
    c.setAll(["a=9", "c=4"]);
    assert.equal(c.toString(), "a=9 b=2 c=4");
  });
});
