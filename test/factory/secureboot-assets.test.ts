// Secure Boot UKIs from the factory started with the seed's `-secureboot` flags: signed with the UKI signing key
// (sbverify accepts the seed's certificate, refuses another), carrying the PCR key as `.pcrpkey` and a `.pcrsig`
// whose policy signatures verify with that key, the secure-boot kernel arguments of the version, and cached
// per key. A factory without `-secureboot` answers upstream's 400 (image-factory internal/profile/profile.go:
// secureboot.ErrDisabled is an InvalidErrorTag).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, verify, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAuthenticatedVariable, parseSignatureLists } from "../../src/formats/efi-variables.ts";
import { parsePe, readSection } from "../../src/formats/pe.ts";
import { makeKeyFiles } from "./config-fixtures.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  publishTestbed,
  seedArgv,
  startFactoryUnderTest,
  startSeedFactory,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const extraArg = "secureboot.test=yes";

function sbverify(cert: string, file: string): boolean {
  return spawnSync("sbverify", ["--cert", cert, file], { encoding: "utf8" }).status === 0;
}

describe("Secure Boot UKIs", () => {
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base: string;
  let id: string;
  let work: string;

  before(async () => {
    testbed = await publishTestbed();
    running = await startSeedFactory(testbed);
    base = running.factory.url.replace(/\/$/, "");
    await waitFor200(`${base}/readyz`);
    id = await createSchematic(base, `customization:\n  extraKernelArgs:\n    - ${extraArg}\n`);
    work = await mkdtemp(join(tmpdir(), "secureboot-assets-"));
  });
  after(async () => {
    await running?.stop();
    await testbed?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it("metal-amd64-secureboot-uki.efi is signed by the UKI signing key, with .pcrpkey and .pcrsig by the PCR key", async () => {
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot-uki.efi`);
    assert.equal(res.status, 200, await res.clone().text());
    const file = join(work, "uki.efi");
    const bytes = Buffer.from(await res.arrayBuffer());
    await writeFile(file, bytes);
    assert.ok(sbverify(running.keys.ukiCert, file), "sbverify --cert <the seed's UKI certificate>");
    const other = await makeKeyFiles();
    try {
      assert.equal(sbverify(other.ukiCert, file), false, "another certificate is refused");
    } finally {
      await other.cleanup();
    }
    const image = parsePe(bytes);
    const names = image.sections.map((s) => s.name);
    for (const name of [
      ".osrel",
      ".cmdline",
      ".uname",
      ".splash",
      ".pcrpkey",
      ".linux",
      ".initrd",
      ".profile",
      ".pcrsig",
    ])
      assert.ok(names.includes(name), `${name} in ${names.join(" ")}`);
    const pcrPublic = createPublicKey(createPrivateKey(await readFile(running.keys.pcrKey)));
    const pcrpkey = readSection(bytes, image, ".pcrpkey")?.toString();
    assert.equal(pcrpkey, pcrPublic.export({ type: "spki", format: "pem" }).toString());
    const cmdline = readSection(bytes, image, ".cmdline")?.toString() ?? "";
    assert.ok(cmdline.split(" ").includes(extraArg), cmdline);
    assert.ok(cmdline.split(" ").includes("lockdown=confidentiality"), `1.10's secure-boot args: ${cmdline}`);
    const signature = JSON.parse(readSection(bytes, image, ".pcrsig")?.toString() ?? "{}") as Record<
      string,
      { pcrs: number[]; pkfp: string; pol: string; sig: string }[]
    >;
    assert.deepEqual(Object.keys(signature), ["sha256", "sha384", "sha512"]);
    const pkfp = createHash("sha256")
      .update(pcrPublic.export({ type: "pkcs1", format: "der" }))
      .digest("hex");
    for (const [bank, entries] of Object.entries(signature)) {
      assert.equal(entries.length, 1, `${bank}: the enter-machined phase only`);
      const entry = entries[0] as { pcrs: number[]; pkfp: string; pol: string; sig: string };
      assert.deepEqual(entry.pcrs, [11]);
      assert.equal(entry.pkfp, pkfp);
      assert.ok(
        verify(bank, Buffer.from(entry.pol, "hex"), pcrPublic, Buffer.from(entry.sig, "base64")),
        `${bank} policy signed by the PCR key`,
      );
    }
  });

  it("GET /secureboot/signing-cert.pem is the UKI signing certificate (500 when Secure Boot is off, as upstream)", async () => {
    const res = await fetch(`${base}/secureboot/signing-cert.pem`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-pem-file");
    const served = new X509Certificate(await res.text());
    assert.equal(served.fingerprint256, new X509Certificate(await readFile(running.keys.ukiCert)).fingerprint256);
  });

  it("the Secure Boot PXE script boots the signed UKI with the secure-boot command line (upstream secureboot.ipxe)", async () => {
    const res = await fetch(`${base}/pxe/${id}/${version}/metal-amd64-secureboot`);
    assert.equal(res.status, 200, await res.clone().text());
    const lines = (await res.text()).split("\n");
    assert.equal(lines[0], "#!ipxe");
    const kernel = lines.find((l) => l.startsWith("kernel ")) ?? "";
    const [, url, ...args] = kernel.split(" ");
    assert.ok(url?.endsWith(`/image/${id}/${version}/metal-amd64-secureboot-uki.efi`), url);
    assert.ok(args.includes("lockdown=confidentiality") && args.includes(extraArg), args.join(" "));
    assert.ok(!lines.some((l) => l.startsWith("initrd ")), "no separate initrd: the UKI carries it");
  });

  it("asking again is a cache hit with the same bytes", async () => {
    const a = Buffer.from(
      await (await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot-uki.efi`)).arrayBuffer(),
    );
    const b = Buffer.from(
      await (await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot-uki.efi`)).arrayBuffer(),
    );
    assert.deepEqual(a, b);
  });

  it("metal-amd64-secureboot.iso: signed systemd-boot and UKI, the enrollment files and certificate, if-safe by default", async () => {
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot.iso`);
    assert.equal(res.status, 200, await res.clone().text());
    const iso = join(work, "sb.iso");
    await writeFile(iso, Buffer.from(await res.arrayBuffer()));
    const extract = (path: string) => {
      const out = join(work, path.replaceAll("/", "_"));
      const r = spawnSync("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", `/${path}`, out], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      return out;
    };
    assert.ok(sbverify(running.keys.ukiCert, extract("EFI/BOOT/BOOTX64.EFI")), "systemd-boot signed");
    assert.ok(sbverify(running.keys.ukiCert, extract(`EFI/Linux/Talos-${version}.efi`)), "UKI signed");
    assert.match(await readFile(extract("loader/loader.conf"), "utf8"), /^secure-boot-enroll if-safe$/m);
    const der = await readFile(extract("EFI/keys/uki-signing-cert.der"));
    const pem = await readFile(running.keys.ukiCert, "utf8");
    assert.deepEqual(der, Buffer.from(new X509Certificate(pem).raw));
    for (const name of ["PK", "KEK", "db"]) {
      const auth = parseAuthenticatedVariable(await readFile(extract(`loader/keys/auto/${name}.auth`)));
      const entries = parseSignatureLists(auth.data);
      assert.deepEqual(
        entries.map((e) => Buffer.from(e.data)),
        [der],
        `${name}: the UKI signing certificate`,
      );
    }
  });

  it("includeWellKnownCertificates is not served yet (501), enrollKeys reaches loader.conf", async () => {
    const wellKnown = await createSchematic(
      base,
      "customization:\n  secureboot:\n    includeWellKnownCertificates: true\n",
    );
    const refused = await fetch(`${base}/image/${wellKnown}/${version}/metal-amd64-secureboot.iso`);
    assert.equal(refused.status, 501, await refused.clone().text());
    const forced = await createSchematic(base, "customization:\n  secureboot:\n    enrollKeys: force\n");
    const res = await fetch(`${base}/image/${forced}/${version}/metal-amd64-secureboot.iso`);
    assert.equal(res.status, 200);
    const iso = join(work, "forced.iso");
    await writeFile(iso, Buffer.from(await res.arrayBuffer()));
    const out = join(work, "forced-loader.conf");
    spawnSync("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/loader/loader.conf", out]);
    assert.match(await readFile(out, "utf8"), /^secure-boot-enroll force$/m);
  });

  it("Secure Boot disk images and installers are not built yet (501)", async () => {
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot.raw.xz`);
    assert.equal(res.status, 501, await res.clone().text());
  });

  it("a factory without -secureboot refuses secure-boot assets with upstream's 400", async () => {
    const plain = await startFactoryUnderTest((keys, dataDir) => {
      const argv = seedArgv(testbed, keys, dataDir);
      const at = argv.indexOf("-secureboot");
      argv.splice(at, 7);
      return argv;
    });
    try {
      const url = plain.factory.url.replace(/\/$/, "");
      await waitFor200(`${url}/readyz`);
      const plainId = await createSchematic(url, `customization:\n  extraKernelArgs:\n    - ${extraArg}\n`);
      const res = await fetch(`${url}/image/${plainId}/${version}/metal-amd64-secureboot-uki.efi`);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /secure boot is disabled/);
      const cert = await fetch(`${url}/secureboot/signing-cert.pem`);
      assert.equal(cert.status, 500);
      assert.match(await cert.text(), /secure boot is disabled/);
    } finally {
      await plain.stop();
    }
  });
});
