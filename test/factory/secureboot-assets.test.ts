// Secure Boot UKIs from the factory started with the seed's `-secureboot` flags: signed with the UKI signing key
// (sbverify accepts the seed's certificate, refuses another), carrying the PCR key as `.pcrpkey` and a `.pcrsig`
// whose policy signatures verify with that key, the secure-boot kernel arguments of the version, and cached
// per key. ISOs, disk images (their ESP read with mtools) and `installer-secureboot` (pulled with containerd's
// ctr, its cosign signature verified) carry systemd-boot and the UKI signed by that key; ISOs whose schematic
// asks for includeWellKnownCertificates enroll Microsoft's UEFI CA certificates (here from the operator's
// directory, -secureboot-well-known-certificates-dir). A factory without `-secureboot` answers upstream's 400
// (image-factory internal/profile/profile.go:
// secureboot.ErrDisabled is an InvalidErrorTag).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, verify, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAuthenticatedVariable, parseSignatureLists } from "../../src/formats/efi-variables.ts";
import { parsePe, readSection } from "../../src/formats/pe.ts";
import { wellKnownCertificatesFromDebian } from "../../src/imager/well-known-certificates.ts";
import { enrollmentOwnerGuid, type WellKnownCertificates } from "../../src/talos/secureboot-database.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import { isolatedEnv, runCli } from "../cli/run-cli.ts";
import { type RunningContainerd, startContainerd } from "../harness/containerd.ts";
import { makeKeyFiles } from "./config-fixtures.ts";
import { layerFileContents, startEmbeddedFactory } from "./registry-front-harness.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  type SeedBed,
  seedArgv,
  startFactoryUnderTest,
  startSeedBed,
  waitFor200,
} from "./service-harness.ts";

const version = "v1.10.3";
const extraArg = "secureboot.test=yes";

function sbverify(cert: string, file: string): boolean {
  return spawnSync("sbverify", ["--cert", cert, file], { encoding: "utf8" }).status === 0;
}

describe("Secure Boot assets", () => {
  let bed: SeedBed | undefined;
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base: string;
  let id: string;
  let work: string;
  let microsoft: WellKnownCertificates;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "secureboot-assets-"));
    // The operator's directory of the well-known certificates, filled from Debian's package (the package store
    // of the test machine; test/imager/well-known-certificates.test.ts checks that source itself).
    const wellKnown = await wellKnownCertificatesFromDebian(bootAssetsCacheDir());
    microsoft = wellKnown;
    await mkdir(join(work, "well-known"));
    for (const [i, der] of [...wellKnown.kek, ...wellKnown.db].entries())
      await writeFile(join(work, "well-known", `${i}.der`), der);
    bed = await startSeedBed({
      extra: ["-secureboot-well-known-certificates-dir", join(work, "well-known")],
      schematic: `customization:\n  extraKernelArgs:\n    - ${extraArg}\n`,
    });
    ({ testbed, running, base, id } = bed);
  });
  after(async () => {
    await bed?.stop();
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

  it("includeWellKnownCertificates: KEK and db add Microsoft's UEFI CA certificates under Microsoft's GUID (talos database.go)", async () => {
    const wellKnown = await createSchematic(
      base,
      "customization:\n  secureboot:\n    includeWellKnownCertificates: true\n",
    );
    const res = await fetch(`${base}/image/${wellKnown}/${version}/metal-amd64-secureboot.iso`);
    assert.equal(res.status, 200, await res.clone().text());
    const iso = join(work, "well-known.iso");
    await writeFile(iso, Buffer.from(await res.arrayBuffer()));
    const der = Buffer.from(new X509Certificate(await readFile(running.keys.ukiCert, "utf8")).raw);
    const fingerprint = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
    const expected = {
      PK: [],
      // siderolabs/talos internal/pkg/secureboot/database/certs/kek/*.der, in file-name order
      KEK: [
        "a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503",
        "3cd3f0309edae228767a976dd40d9f4affc4fbd5218f2e8cc3c9dd97e8ac6f9d",
      ],
      // …/certs/db/*.der
      db: [
        "48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507",
        "e5be3e64c6e66a281457ecdece0d6d0787577aad2a3a0144262c10c14ba8d8f1",
        "f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901",
      ],
    };
    for (const [name, fingerprints] of Object.entries(expected)) {
      const out = join(work, `well-known-${name}.auth`);
      const r = spawnSync("xorriso", [
        "-osirrox",
        "on",
        "-indev",
        iso,
        "-extract",
        `/loader/keys/auto/${name}.auth`,
        out,
      ]);
      assert.equal(r.status, 0, r.stderr?.toString());
      const entries = parseSignatureLists(parseAuthenticatedVariable(await readFile(out)).data);
      assert.deepEqual(
        entries.map((e) => [e.owner, fingerprint(e.data)]),
        [
          [enrollmentOwnerGuid(der), fingerprint(der)],
          ...fingerprints.map((f) => ["77fa9abd-0359-4d32-bd60-28f4e78f784b", f]),
        ],
        name,
      );
    }
    assert.deepEqual(
      [...microsoft.kek, ...microsoft.db].map(fingerprint),
      [...expected.KEK, ...expected.db],
      "the directory the factory was given",
    );
  });

  it("enrollKeys reaches loader.conf", async () => {
    const forced = await createSchematic(base, "customization:\n  secureboot:\n    enrollKeys: force\n");
    const res = await fetch(`${base}/image/${forced}/${version}/metal-amd64-secureboot.iso`);
    assert.equal(res.status, 200);
    const iso = join(work, "forced.iso");
    await writeFile(iso, Buffer.from(await res.arrayBuffer()));
    const out = join(work, "forced-loader.conf");
    spawnSync("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/loader/loader.conf", out]);
    assert.match(await readFile(out, "utf8"), /^secure-boot-enroll force$/m);
  });

  it("metal-amd64-secureboot.raw.zst: an sd-boot disk, systemd-boot and the UKI signed, no keys on it", async () => {
    // talos pkg/imager/out.go buildImage (install.Options ImageSecureboot), pkg/imager/profile/output.go
    // selectBootloader (secure boot → sd-boot), bootloader/sdboot/sdboot.go install: loader/loader.conf,
    // EFI/Linux/Talos-<version>.efi and systemd-boot as EFI/boot/BOOTX64.efi; image-factory
    // internal/profile/profile.go parsePlatformArch (`-secureboot` suffix).
    const res = await fetch(`${base}/image/${id}/${version}/metal-amd64-secureboot.raw.zst`);
    assert.equal(res.status, 200, await res.clone().text());
    const compressed = join(work, "sb.raw.zst");
    const disk = join(work, "sb.raw");
    await writeFile(compressed, Buffer.from(await res.arrayBuffer()));
    const unpack = spawnSync("zstd", ["-q", "-d", compressed, "-o", disk], { encoding: "utf8" });
    assert.equal(unpack.status, 0, unpack.stderr);
    await rm(compressed);
    const table = spawnSync("sfdisk", ["--json", disk], { encoding: "utf8" });
    assert.equal(table.status, 0, table.stderr);
    const { partitiontable } = JSON.parse(table.stdout) as {
      partitiontable: { sectorsize?: number; partitions: { name: string; start: number }[] };
    };
    assert.deepEqual(
      partitiontable.partitions.map((p) => p.name),
      ["EFI", "META"],
      "sd-boot only: no BIOS or BOOT partition",
    );
    const efi = partitiontable.partitions[0] as { start: number };
    const image = `${disk}@@${efi.start * (partitiontable.sectorsize ?? 512)}`;
    const listing = spawnSync("mdir", ["-i", image, "-/", "-b", "::/"], { encoding: "utf8" });
    assert.equal(listing.status, 0, listing.stderr);
    const files = listing.stdout
      .split("\n")
      .filter((l) => l !== "" && !l.endsWith("/"))
      .sort();
    assert.deepEqual(files, ["::/EFI/Linux/Talos-v1.10.3.efi", "::/EFI/boot/BOOTX64.efi", "::/loader/loader.conf"]);
    const copy = (path: string) => {
      const out = join(work, `esp-${path.replaceAll("/", "_")}`);
      const r = spawnSync("mcopy", ["-n", "-i", image, `::/${path}`, out], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return out;
    };
    const bootEfi = copy("EFI/boot/BOOTX64.efi");
    const ukiEfi = copy(`EFI/Linux/Talos-${version}.efi`);
    assert.ok(sbverify(running.keys.ukiCert, bootEfi), "systemd-boot signed by the UKI signing key");
    assert.ok(sbverify(running.keys.ukiCert, ukiEfi), "the UKI signed by the UKI signing key");
    const other = await makeKeyFiles();
    try {
      assert.equal(sbverify(other.ukiCert, ukiEfi), false, "another certificate is refused");
    } finally {
      await other.cleanup();
    }
    assert.doesNotMatch(await readFile(copy("loader/loader.conf"), "utf8"), /secure-boot-enroll/);
    const uki = await readFile(ukiEfi);
    const cmdline = readSection(uki, parsePe(uki), ".cmdline")?.toString() ?? "";
    assert.ok(cmdline.split(" ").includes(extraArg), cmdline);
    assert.ok(cmdline.split(" ").includes("lockdown=confidentiality"), cmdline);
    await rm(disk);
  });

  it("installer-secureboot through the registry front: ctr pulls it, the factory's cosign key signed it, its artifacts are signed", async () => {
    // talos pkg/imager/out.go outInstaller (SecureBootEnabled: usr/install/<arch>/systemd-boot.efi and
    // vmlinuz.efi, both signed); image-factory internal/frontend/http/registry.go (installer-secureboot),
    // internal/integration/registry_test.go testInstallerImage / assertImageSignature.
    const front = await startEmbeddedFactory(testbed, { secureBoot: true });
    let containerd: RunningContainerd | undefined;
    try {
      const frontBase = front.factory.url.replace(/\/$/, "");
      const host = new URL(frontBase).host;
      await waitFor200(`${frontBase}/readyz`);
      const frontId = await createSchematic(frontBase, `customization:\n  extraKernelArgs:\n    - ${extraArg}\n`);
      const ref = `${host}/installer-secureboot/${frontId}:${version}`;
      containerd = await startContainerd();
      await containerd.ctr(["image", "pull", "--plain-http", "--platform", "linux/amd64", ref], 900_000);
      const head = await fetch(`${frontBase}/v2/installer-secureboot/${frontId}/manifests/${version}`, {
        method: "HEAD",
      });
      assert.equal(head.status, 200);
      const indexDigest = head.headers.get("docker-content-digest") as string;
      const listed = (await containerd.ctr(["image", "ls"])).stdout;
      assert.ok(
        listed.split("\n").some((l) => l.startsWith(`${ref} `) && l.includes(indexDigest)),
        listed,
      );

      const keyFile = join(work, "front-signing-key.pub");
      await writeFile(keyFile, await (await fetch(`${frontBase}/oci/cosign/signing-key.pub`)).text());
      const home = await mkdtemp(join(work, "home-"));
      const verified = await runCli(
        ["verify", "--insecure", "--key", keyFile, `${host}/installer-secureboot/${frontId}@${indexDigest}`],
        isolatedEnv(home),
        120_000,
      );
      assert.equal(verified.code, 0, verified.stderr);

      // The artifacts layer (the last: no overlay) as containerd stored it.
      const content = (digest: string): Buffer => {
        const r = spawnSync("ctr", ["-a", containerd?.socket as string, "content", "get", digest], {
          maxBuffer: 1024 * 1024 * 1024,
        });
        assert.equal(r.status, 0, r.stderr?.toString());
        return r.stdout;
      };
      const index = JSON.parse(content(indexDigest).toString("utf8")) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(content(index.manifests[0]?.digest as string).toString("utf8")) as {
        layers: { digest: string }[];
      };
      const artifacts = await layerFileContents(content(manifest.layers.at(-1)?.digest as string));
      assert.deepEqual([...artifacts.keys()].sort(), [
        "usr/install/amd64/systemd-boot.efi",
        "usr/install/amd64/vmlinuz.efi",
      ]);
      for (const [name, bytes] of artifacts) {
        const file = join(work, name.replaceAll("/", "_"));
        await writeFile(file, bytes);
        assert.ok(sbverify(front.keys.ukiCert, file), `${name} signed by the factory's UKI signing key`);
        assert.equal(sbverify(running.keys.ukiCert, file), false, `${name}: another certificate is refused`);
      }
    } finally {
      await containerd?.stop();
      await front.stop();
    }
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
