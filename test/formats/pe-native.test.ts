// UKIs with their PE headers written anew, as Talos's imager assembles them from 1.10 (siderolabs/talos
// internal/pkg/uki/internal/pe/native.go AssembleNative, called from internal/pkg/uki/assemble.go). The rules
// below are that file's, stated in words; binutils (objdump -h/-p, objcopy) reads the result back.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { assembleNative, planNativeAssembly } from "../../src/formats/pe-native.ts";
import { assembleUki, osReleaseFor } from "../../src/formats/uki.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { type ObjdumpSection, objcopy, objdumpSections, objdumpTool } from "../../src/tools/binutils.ts";
import { runToolText } from "../../src/tools/run.ts";

const systemStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/** image-factory's SOURCE_DATE_EPOCH (cmd/image-factory/cmd/service.go). */
const factoryEpoch = 1559424892;

let dir: string;
let stubPath: string;
let stub: Buffer;
let stubSections: ObjdumpSection[];
let linuxPath: string;
let linux: Buffer;
let built: string;
let builtSections: ObjdumpSection[];
let fields: Record<string, string>;

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const hex = (field: string) => Number.parseInt(fields[field] as string, 16);

/** `objdump -p` lines "Name  value" (values as printed). */
async function headerFields(file: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await runToolText(objdumpTool, ["-p", file])).split("\n")) {
    const m = /^([A-Za-z/]+)\s+(.+)$/.exec(line.trim());
    if (m && out[m[1] as string] === undefined) out[m[1] as string] = (m[2] as string).trim();
  }
  return out;
}

async function dump(file: string, section: string): Promise<Buffer> {
  const out = join(dir, `dump-${section.slice(1)}-${Math.random().toString(36).slice(2)}`);
  await objcopy(["-O", "binary", `--only-section=${section}`, file, out]);
  return readFile(out);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pe-native-test-"));
  stubPath = existsSync(systemStub) ? systemStub : (await fetchTestbedPackages()).systemdBoot.stubEfi;
  stub = await readFile(stubPath);
  stubSections = await objdumpSections(stubPath);
  linux = randomBytes(70_001);
  linuxPath = join(dir, "vmlinuz");
  await writeFile(linuxPath, linux);
  built = join(dir, "uki.efi");
  const out = createWriteStream(built);
  await assembleNative(
    stub,
    [
      { name: ".osrel", source: { content: Buffer.from(osReleaseFor("Talos", "v1.10.3")) } },
      { name: ".cmdline", source: { content: Buffer.from("talos.platform=metal") } },
      { name: ".linux", source: { path: linuxPath } },
    ],
    factoryEpoch,
    out,
  );
  out.end();
  await finished(out);
  builtSections = await objdumpSections(built);
  fields = await headerFields(built);
});
after(() => rm(dir, { recursive: true, force: true }));

describe("PE headers written anew (Talos ≥ 1.10, pe/native.go)", () => {
  test("the version rules use it from 1.10 only", () => {
    assert.equal(rulesFor("v1.9.5").ukiPeHeadersRewritten, false);
    assert.equal(rulesFor("v1.10.0").ukiPeHeadersRewritten, true);
    assert.equal(rulesFor("v1.14.0-rc.1").ukiPeHeadersRewritten, true);
  });

  test("DOS header: the stub's 64 bytes with e_lfanew 0x80, 64 zero bytes, then the PE signature", async () => {
    const file = await readFile(built);
    assert.deepEqual(file.subarray(0, 0x3c), stub.subarray(0, 0x3c));
    assert.equal(file.readUInt32LE(0x3c), 0x80);
    assert.ok(file.subarray(0x40, 0x80).every((b) => b === 0));
    assert.equal(file.toString("latin1", 0x80, 0x84), "PE\0\0");
  });

  test("COFF time stamp is SOURCE_DATE_EPOCH, linker version 0.0, check sum 0", () => {
    // objdump prints the stamp as a date: 1559424892 is Sat Jun  1 21:34:52 2019 UTC.
    assert.match(fields["Time/Date"] as string, /Jun +1 .*2019/);
    assert.equal(fields.MajorLinkerVersion, "0");
    assert.equal(fields.MinorLinkerVersion, "0");
    assert.equal(hex("CheckSum"), 0);
  });

  test("the stub's sections keep their addresses and bytes; the new ones follow the last at SectionAlignment", async () => {
    const sectionAlignment = hex("SectionAlignment");
    const fileAlignment = hex("FileAlignment");
    assert.deepEqual(
      builtSections.slice(0, stubSections.length).map((s) => [s.name, s.vma, s.size]),
      stubSections.map((s) => [s.name, s.vma, s.size]),
    );
    for (const s of stubSections) {
      assert.deepEqual(await dump(built, s.name), await dump(stubPath, s.name), s.name);
    }
    const last = stubSections[stubSections.length - 1] as ObjdumpSection;
    let vma = BigInt(alignUp(Number(last.vma) + last.size, sectionAlignment));
    for (const s of builtSections.slice(stubSections.length)) {
      assert.equal(s.vma, vma, `${s.name} address`);
      vma = BigInt(alignUp(Number(s.vma) + s.size, sectionAlignment));
      assert.equal(s.fileOffset % fileAlignment, 0);
    }
    assert.deepEqual(
      builtSections.slice(stubSections.length).map((s) => s.name),
      [".osrel", ".cmdline", ".linux"],
    );
    assert.deepEqual(await dump(built, ".linux"), linux);
    assert.equal((await dump(built, ".cmdline")).toString(), "talos.platform=metal");
    assert.equal(hex("SizeOfImage"), Number(vma));
  });

  test("raw data is packed from SizeOfHeaders = 0x80 + 20 + 240 + 40 × sections, rounded to FileAlignment", async () => {
    const fileAlignment = hex("FileAlignment");
    const n = builtSections.length;
    assert.equal(hex("SizeOfHeaders"), alignUp(0x80 + 20 + 240 + 40 * n, fileAlignment));
    const file = await readFile(built);
    // Section headers start right after the 240-byte optional header; their raw pointers follow each other.
    let pointer = hex("SizeOfHeaders");
    for (let i = 0; i < n; i++) {
      const h = 0x84 + 20 + 240 + 40 * i;
      assert.equal(file.readUInt32LE(h + 20), pointer, `section ${i} raw data pointer`);
      assert.equal(file.readUInt32LE(h + 24), 0, "no relocations pointer");
      assert.equal(file.readUInt32LE(h + 28), 0, "no line numbers pointer");
      pointer += file.readUInt32LE(h + 16);
    }
    assert.equal(file.length, pointer, "the file ends with the last section's raw data");
  });

  test("SizeOfCode and SizeOfInitializedData are the raw sizes of code and initialized-data sections", async () => {
    const file = await readFile(built);
    let code = 0;
    let data = 0;
    for (let i = 0; i < builtSections.length; i++) {
      const h = 0x84 + 20 + 240 + 40 * i;
      const raw = file.readUInt32LE(h + 16);
      if (file.readUInt32LE(h + 36) & 0x40) data += raw;
      else code += raw;
    }
    assert.equal(hex("SizeOfCode"), code);
    assert.equal(hex("SizeOfInitializedData"), data);
  });

  test("a signed stub, a PE32 image and a time stamp past 32 bits are refused", () => {
    const signed = Buffer.from(stub);
    const lfanew = signed.readUInt32LE(0x3c);
    signed.writeUInt32LE(0x100, lfanew + 24 + 112 + 4 * 8 + 4);
    const pe32 = Buffer.from(stub);
    pe32.writeUInt16LE(0x10b, lfanew + 24);
    for (const [input, stamp] of [
      [signed, 0],
      [pe32, 0],
      [stub, 2 ** 32],
    ] as const) {
      assert.throws(
        () => planNativeAssembly(input, [{ name: ".linux", size: 10 }], stamp),
        (e) => isAppError(e) && e.kind === "BadRequest",
      );
    }
  });

  test("assembleUki writes Talos's layout when asked, and the same bytes twice", async () => {
    const once = async (name: string) => {
      const path = join(dir, name);
      const out = createWriteStream(path);
      await assembleUki(
        stub,
        {
          osRelease: "NAME=Talos\n",
          cmdline: "a=b",
          linux: { path: linuxPath },
          initrd: { content: Buffer.from("x") },
        },
        { wantProfiles: false, rewriteHeaders: { timestamp: factoryEpoch } },
        out,
      );
      out.end();
      await finished(out);
      return readFile(path);
    };
    const a = await once("a.efi");
    assert.equal(a.readUInt32LE(0x3c), 0x80);
    assert.equal(a.readUInt32LE(0x84 + 4), factoryEpoch);
    assert.deepEqual(await once("b.efi"), a);
  });
});
