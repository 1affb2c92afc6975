// `.pcrsig` as Talos makes it (internal/pkg/measure, internal/pkg/secureboot OrderedPhases), checked twice:
// against systemd's own systemd-measure (Debian 12's, 252: it measures .linux .osrel .cmdline .initrd .splash
// .dtb .pcrpkey, and computes the policy with a trial session on a TPM — swtpm here), which must give the
// same PCR values and, RSASSA-PKCS1-v1_5 being deterministic, byte-identical signatures; and against a
// recomputation written here from the TPM 2.0 specification for the sections 252 does not know.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes, verify } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { SectionSource } from "../../src/formats/pe.ts";
import { localKeySigner } from "../../src/signing/digest-signer.ts";
import {
  measuredSectionOrder,
  pcrPublicKeyPem,
  pcrSignatureJson,
  predictUkiPcr,
  signPcrPolicy,
} from "../../src/talos/uki-measure.ts";
import { runToolText, type Tool } from "../../src/tools/run.ts";
import { type Swtpm, startSwtpm } from "../harness/swtpm.ts";

const systemdMeasure: Tool = { command: "/usr/lib/systemd/systemd-measure", debianPackage: "systemd" };

let dir: string;
let tpm: Swtpm;
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signer = localKeySigner(privateKey, "test PCR key");
const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const files: Record<string, Buffer> = {
  ".linux": randomBytes(150_001),
  ".osrel": Buffer.from('NAME="Talos"\nID=talos\nVERSION_ID=v1.10.3\n'),
  ".cmdline": Buffer.from("talos.platform=metal console=ttyS0"),
  ".initrd": randomBytes(1_000_003),
  ".splash": randomBytes(4_000),
};

function sections(names: string[]): Map<string, SectionSource> {
  const out = new Map<string, SectionSource>();
  for (const name of names) out.set(name, { path: join(dir, name.slice(1)) });
  out.set(".pcrpkey", { content: Buffer.from(pcrPublicKeyPem(signer.publicKey)) });
  return out;
}

function measureArgs(names: string[]): string[] {
  return [
    ...names.map((n) => `--${n.slice(1)}=${join(dir, n.slice(1))}`),
    `--pcrpkey=${join(dir, "pcrpkey.pem")}`,
    "--bank=sha256",
    "--bank=sha384",
    "--bank=sha512",
  ];
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "uki-measure-test-"));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name.slice(1)), content);
  await writeFile(join(dir, "pcrpkey.pem"), pcrPublicKeyPem(signer.publicKey));
  await writeFile(join(dir, "key.pem"), keyPem);
  tpm = await startSwtpm();
});
after(async () => {
  await tpm?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the PCR 11 prediction of a UKI, against systemd-measure", () => {
  const names = [".linux", ".osrel", ".cmdline", ".initrd", ".splash"];

  test("systemd-measure calculate gives the same PCR 11 after each of Talos's phases, in every bank", async () => {
    const output = await runToolText(systemdMeasure, [
      "calculate",
      ...measureArgs(names),
      "--phase=enter-initrd",
      "--phase=enter-initrd:leave-initrd",
      "--phase=enter-initrd:leave-initrd:enter-machined",
      "--json=short",
    ]);
    const theirs = JSON.parse(output) as Record<string, { phase: string; pcr: number; hash: string }[]>;
    const ours = await predictUkiPcr(sections(names));
    for (const bank of ["sha256", "sha384", "sha512"] as const) {
      const phases = ours.get(bank) ?? [];
      let joined = "";
      const expected = phases.map((p) => {
        joined = joined === "" ? p.phase : `${joined}:${p.phase}`;
        return { phase: joined, pcr: 11, hash: p.value.toString("hex") };
      });
      assert.deepEqual(theirs[bank], expected, bank);
    }
  });

  test("systemd-measure sign writes the same .pcrsig, signature for signature", async () => {
    const output = await runToolText(systemdMeasure, [
      "sign",
      `--tpm2-device=${tpm.device}`,
      ...measureArgs(names),
      "--phase=enter-initrd:leave-initrd:enter-machined",
      `--private-key=${join(dir, "key.pem")}`,
      `--public-key=${join(dir, "pcrpkey.pem")}`,
      "--json=short",
    ]);
    const ours = pcrSignatureJson(await signPcrPolicy(sections(names), signer));
    assert.equal(ours, output.trim());
  });
});

describe("the PCR 11 prediction, recomputed from the TPM 2.0 specification", () => {
  // Every section Talos measures that systemd 252 does not know: .uname, .sbat, .profile (and a profile's
  // .cmdline replacing the base one, as talos generate.go builds each profile's section map).
  const extra: Record<string, Buffer> = {
    ".uname": Buffer.from("6.12.30-talos"),
    ".sbat": Buffer.from("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"),
    ".profile": Buffer.from("ID=reset\nTITLE=Reset"),
    ".cmdline": Buffer.from("talos.experimental.wipe=system"),
  };

  test("extend: PCR = H(PCR ‖ H(name NUL)), PCR = H(PCR ‖ H(content)) per section in systemd's order, then the phases", async () => {
    const map = sections([".linux", ".osrel", ".initrd", ".splash"]);
    for (const [name, content] of Object.entries(extra)) map.set(name, { content });
    const contents: Record<string, Buffer> = { ...files, ...extra };
    contents[".pcrpkey"] = Buffer.from(pcrPublicKeyPem(signer.publicKey));
    const ours = await predictUkiPcr(map, ["sha256", "sha384"]);
    for (const bank of ["sha256", "sha384"] as const) {
      const h = (...parts: Buffer[]) => createHash(bank).update(Buffer.concat(parts)).digest();
      let pcr = Buffer.alloc(bank === "sha256" ? 32 : 48);
      // systemd's order (src/fundamental/uki.h unified_sections): .linux .osrel .cmdline .initrd .ucode .splash
      // .dtb .uname .sbat .pcrsig (never measured) .pcrpkey .profile
      for (const name of [
        ".linux",
        ".osrel",
        ".cmdline",
        ".initrd",
        ".splash",
        ".uname",
        ".sbat",
        ".pcrpkey",
        ".profile",
      ]) {
        pcr = h(pcr, h(Buffer.from(`${name}\0`)));
        pcr = h(pcr, h(contents[name] as Buffer));
      }
      for (const [i, phase] of ["enter-initrd", "leave-initrd", "enter-machined"].entries()) {
        pcr = h(pcr, h(Buffer.from(phase)));
        assert.deepEqual(ours.get(bank)?.[i]?.value, pcr, `${bank} after ${phase}`);
      }
    }
  });

  test("policy: SHA-256(0³² ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION{1, bank, 3, 00 08 00} ‖ SHA-256(PCR)), signed over H_bank(policy)", async () => {
    const map = sections(names());
    const data = await signPcrPolicy(map, signer);
    const predicted = await predictUkiPcr(map);
    for (const [bank, algId] of [
      ["sha256", "000b"],
      ["sha384", "000c"],
      ["sha512", "000d"],
    ] as const) {
      const pcr = predicted.get(bank)?.[2]?.value as Buffer;
      const policy = createHash("sha256")
        .update(Buffer.alloc(32))
        .update(Buffer.from(`0000017f00000001${algId}03000800`, "hex"))
        .update(createHash("sha256").update(pcr).digest())
        .digest();
      const entry = data[bank]?.[0];
      assert.equal(data[bank]?.length, 1, "one signature per bank: enter-machined only");
      assert.equal(entry?.pol, policy.toString("hex"));
      assert.deepEqual(entry?.pcrs, [11]);
      const pkcs1 = signer.publicKey.export({ type: "pkcs1", format: "der" });
      assert.equal(entry?.pkfp, createHash("sha256").update(pkcs1).digest("hex"));
      assert.ok(
        verify(bank, policy, signer.publicKey, Buffer.from(entry?.sig ?? "", "base64")),
        `${bank} signature over H(policy)`,
      );
    }
  });

  test("a section systemd-stub does not measure is refused rather than mispredicted", async () => {
    const map = sections([".linux"]);
    map.set(".pcrsig", { content: Buffer.from("{}") });
    await assert.rejects(predictUkiPcr(map), /not a measured section/);
    assert.ok(!measuredSectionOrder.includes(".pcrsig"));
  });
});

function names(): string[] {
  return [".linux", ".osrel", ".cmdline", ".initrd"];
}
