import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { appendSections, parsePe, planAppendSections, type SectionInput } from "../../src/formats/pe.ts";
import { assembleUki, osReleaseFor, systemdStubInfo, type UkiContents } from "../../src/formats/uki.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { type ObjdumpSection, objcopy, objdumpSections, objdumpTool } from "../../src/tools/binutils.ts";
import { runToolText } from "../../src/tools/run.ts";

const systemStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

let dir: string;
let stubPath: string;
let stub: Buffer;
let stubSections: ObjdumpSection[];
let linuxPath: string;
let initrdPath: string;
let linux: Buffer;
let initrd: Buffer;

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** `objdump -p` header fields, by name (hex values). */
async function peHeaderFields(file: string): Promise<Record<string, number>> {
  const text = await runToolText(objdumpTool, ["-p", file]);
  const fields: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m =
      /^(SizeOfImage|SizeOfHeaders|CheckSum|SectionAlignment|FileAlignment|SizeOfInitializedData)\s+([0-9a-f]+)$/.exec(
        line.trim(),
      );
    if (m) fields[m[1] as string] = Number.parseInt(m[2] as string, 16);
  }
  return fields;
}

async function extract(file: string, section: string): Promise<Buffer> {
  const out = join(dir, `extract-${section.slice(1)}-${Math.random().toString(36).slice(2)}`);
  await objcopy(["-O", "binary", `--only-section=${section}`, file, out]);
  return readFile(out);
}

async function build(name: string, sections: SectionInput[], input: Buffer = stub): Promise<string> {
  const path = join(dir, name);
  const out = createWriteStream(path);
  await appendSections(input, sections, out);
  out.end();
  await finished(out);
  return path;
}

function assertNoOverlap(sections: ObjdumpSection[]): void {
  const byVma = [...sections].sort((a, b) => Number(a.vma - b.vma));
  for (let i = 1; i < byVma.length; i++) {
    const prev = byVma[i - 1] as ObjdumpSection;
    const cur = byVma[i] as ObjdumpSection;
    assert.ok(prev.vma + BigInt(prev.size) <= cur.vma, `${prev.name} overlaps ${cur.name} in memory`);
  }
  const byOffset = [...sections].sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1] as ObjdumpSection;
    const cur = byOffset[i] as ObjdumpSection;
    assert.ok(prev.fileOffset + prev.size <= cur.fileOffset, `${prev.name} overlaps ${cur.name} in the file`);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pe-test-"));
  stubPath = existsSync(systemStub) ? systemStub : (await fetchTestbedPackages()).systemdBoot.stubEfi;
  stub = await readFile(stubPath);
  stubSections = await objdumpSections(stubPath);
  linux = randomBytes(70_001);
  initrd = randomBytes(1_500_003);
  linuxPath = join(dir, "vmlinuz");
  initrdPath = join(dir, "initrd");
  await writeFile(linuxPath, linux);
  await writeFile(initrdPath, initrd);
});
after(() => rm(dir, { recursive: true, force: true }));

const ukiContents = (): UkiContents => ({
  osRelease: osReleaseFor("Talos", "v1.10.3"),
  cmdline: "talos.platform=metal console=tty0",
  uname: "6.12.30-talos",
  linux: { path: linuxPath },
  initrd: { path: initrdPath },
});

describe("PE parsing", () => {
  test("the systemd stub's section table matches objdump -h", () => {
    const image = parsePe(stub);
    assert.equal(image.optional.magic, 0x20b);
    assert.deepEqual(
      image.sections.map((s) => [s.name, s.virtualSize, BigInt(s.virtualAddress), s.pointerToRawData]),
      stubSections.map((s) => [s.name, s.size, s.vma, s.fileOffset]),
    );
  });

  test("garbage and truncated files are BadRequest", () => {
    assert.throws(() => parsePe(Buffer.alloc(256, 0x41)), /MZ/);
    assert.throws(
      () => parsePe(stub.subarray(0, 200)),
      (err) => isAppError(err, "BadRequest"),
    );
  });
});

describe("UKI assembly on the Debian systemd stub", () => {
  test("the Debian stub predates multi-profile UKIs (detected from .sdmagic)", () => {
    const info = systemdStubInfo(stub);
    assert.match(info.loaderInfo ?? "", /^systemd-stub \d+/);
    assert.equal(info.supportsProfiles, (info.systemdVersion ?? 0) >= 257);
  });

  test("objdump -h sees the stub's sections then ours: names, sizes, aligned VMAs, no overlap", async () => {
    const path = join(dir, "uki.efi");
    const out = createWriteStream(path);
    const result = await assembleUki(stub, ukiContents(), { wantProfiles: true }, out);
    out.end();
    await finished(out);
    assert.equal(result.profiles, false, "no .profile sections on a stub < 257");

    const header = await peHeaderFields(stubPath);
    const sections = await objdumpSections(path);
    assert.deepEqual(
      sections.map((s) => s.name),
      [...stubSections.map((s) => s.name), ".osrel", ".cmdline", ".uname", ".linux", ".initrd"],
    );
    const added = sections.slice(stubSections.length);
    assert.deepEqual(
      added.map((s) => s.size),
      [
        ukiContents().osRelease.length,
        ukiContents().cmdline.length,
        "6.12.30-talos".length,
        linux.length,
        initrd.length,
      ],
    );
    // Expected addresses, computed from the stub's own objdump output: each section starts at the next
    // SectionAlignment boundary after the previous one; file offsets are FileAlignment multiples.
    const last = stubSections.reduce((a, b) => (a.vma + BigInt(a.size) > b.vma + BigInt(b.size) ? a : b));
    let vma = alignUp(Number(last.vma) + last.size, header.SectionAlignment as number);
    for (const s of added) {
      assert.equal(Number(s.vma), vma, `${s.name} VMA`);
      assert.equal(s.fileOffset % (header.FileAlignment as number), 0, `${s.name} file offset aligned`);
      assert.deepEqual(s.flags, ["CONTENTS", "ALLOC", "LOAD", "READONLY", "DATA"]);
      vma = alignUp(vma + s.size, header.SectionAlignment as number);
    }
    assertNoOverlap(sections);

    const fields = await peHeaderFields(path);
    assert.equal(fields.SizeOfImage, vma, "SizeOfImage ends at the last section, aligned");
    assert.equal(fields.CheckSum, 0);
    assert.equal(fields.SizeOfHeaders, header.SizeOfHeaders, "the stub had room: headers unchanged");

    assert.deepEqual(await extract(path, ".linux"), linux);
    assert.deepEqual(await extract(path, ".initrd"), initrd);
    assert.equal((await extract(path, ".cmdline")).toString(), "talos.platform=metal console=tty0");
    assert.deepEqual(await extract(path, ".sbat"), await extract(stubPath, ".sbat"), "the stub's .sbat is kept");
  });

  test("more sections than the header slack holds: headers grow, stub data moves, everything still reads", async () => {
    const contents: UkiContents = {
      ...ukiContents(),
      splash: { content: randomBytes(3000) },
      pcrPublicKey: { content: Buffer.from("-----BEGIN PUBLIC KEY-----\n...\n") },
      pcrSignatures: [{ content: Buffer.from('{"sha256":[]}') }],
    };
    const path = join(dir, "uki-sb.efi");
    const out = createWriteStream(path);
    await assembleUki(stub, contents, { wantProfiles: false }, out);
    out.end();
    await finished(out);
    const sections = await objdumpSections(path);
    assert.deepEqual(
      sections.slice(stubSections.length).map((s) => s.name),
      [".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".linux", ".initrd", ".pcrsig"],
    );
    assertNoOverlap(sections);
    // The stub's sections keep their addresses; their data is still there.
    assert.deepEqual(
      sections.slice(0, stubSections.length).map((s) => [s.name, s.vma, s.size]),
      stubSections.map((s) => [s.name, s.vma, s.size]),
    );
    for (const name of [".text", ".data", ".sbat", ".sdmagic"])
      assert.deepEqual(await extract(path, name), await extract(stubPath, name), name);
    const fields = await peHeaderFields(path);
    const tableEnd = parsePe(await readFile(path)).sectionTableOffset + sections.length * 40;
    assert.ok((fields.SizeOfHeaders as number) >= tableEnd);
    assert.equal((fields.SizeOfHeaders as number) % (fields.FileAlignment as number), 0);
    assert.deepEqual(await extract(path, ".pcrsig"), Buffer.from('{"sha256":[]}'));
  });

  test("the Debian 12 stub gets no .profile sections even when profiles are wanted", async () => {
    const out = createWriteStream(join(dir, "uki-252.efi"));
    const contents = { ...ukiContents(), profiles: [{ id: "reset", title: "Reset system disk", cmdline: "x" }] };
    const result = await assembleUki(stub, contents, { wantProfiles: true }, out);
    out.end();
    await finished(out);
    assert.equal(result.profiles, false);
  });
  test("same inputs, same bytes", async () => {
    const sections: SectionInput[] = [
      { name: ".osrel", source: { content: Buffer.from("ID=talos\n") } },
      { name: ".linux", source: { path: linuxPath } },
    ];
    const a = await readFile(await build("a.efi", sections));
    const b = await readFile(await build("b.efi", sections));
    assert.deepEqual(a, b);
  });

  test("the section layout matches what objcopy --add-section --change-section-vma produces", async () => {
    const osrel = join(dir, "osrel");
    await writeFile(osrel, "ID=talos\n");
    const ours = await objdumpSections(
      await build("ours.efi", [
        { name: ".osrel", source: { path: osrel } },
        { name: ".linux", source: { path: linuxPath } },
        { name: ".initrd", source: { path: initrdPath } },
      ]),
    );
    const header = await peHeaderFields(stubPath);
    const last = stubSections.reduce((a, b) => (a.vma + BigInt(a.size) > b.vma + BigInt(b.size) ? a : b));
    let vma = alignUp(Number(last.vma) + last.size, header.SectionAlignment as number);
    const args: string[] = [];
    for (const [name, file, size] of [
      [".osrel", osrel, 9],
      [".linux", linuxPath, linux.length],
      [".initrd", initrdPath, initrd.length],
    ] as const) {
      args.push("--add-section", `${name}=${file}`, "--change-section-vma", `${name}=0x${vma.toString(16)}`);
      vma = alignUp(vma + size, header.SectionAlignment as number);
    }
    const theirsPath = join(dir, "objcopy.efi");
    await objcopy([...args, stubPath, theirsPath]);
    const theirs = await objdumpSections(theirsPath);
    const shape = (s: ObjdumpSection[]) => s.map((x) => [x.name, x.size, x.vma]);
    assert.deepEqual(shape(ours), shape(theirs));
  });

  // siderolabs/talos v1.9.0 internal/pkg/secureboot/uki: uki.go Build generates .osrel, .cmdline, .initrd,
  // .splash, .uname, (.sbat: the stub's), .pcrpkey, .linux; assemble.go runs objcopy --add-section for each
  // with --change-section-vma at ImageBase + the stub's last section's VirtualAddress + VirtualSize rounded up
  // to 512 bytes, each next one at the previous end rounded up likewise. Here objcopy does exactly that.
  test("a Talos 1.9 UKI: the sections objcopy gives when run as upstream's pre-1.10 assemble.go runs it", async () => {
    const rules = rulesFor("v1.9.6");
    const payload: Record<string, Buffer> = {
      ".osrel": Buffer.from(osReleaseFor("Talos", "v1.9.6")),
      ".cmdline": Buffer.from("talos.platform=metal console=tty0"),
      ".initrd": initrd,
      ".splash": Buffer.from("BM-not-really-a-bitmap"),
      ".uname": Buffer.from("6.12.6-talos"),
      ".pcrpkey": Buffer.from("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"),
      ".linux": linux,
    };
    const path = join(dir, "uki-1.9.efi");
    const out = createWriteStream(path);
    await assembleUki(
      stub,
      {
        osRelease: (payload[".osrel"] as Buffer).toString(),
        cmdline: (payload[".cmdline"] as Buffer).toString(),
        uname: (payload[".uname"] as Buffer).toString(),
        splash: { content: payload[".splash"] as Buffer },
        pcrPublicKey: { content: payload[".pcrpkey"] as Buffer },
        linux: { path: linuxPath },
        initrd: { path: initrdPath },
      },
      { wantProfiles: rules.ukiProfiles, sectionOrder: rules.ukiSectionOrder },
      out,
    );
    out.end();
    await finished(out);

    const upstreamOrder = [".osrel", ".cmdline", ".initrd", ".splash", ".uname", ".pcrpkey", ".linux"];
    const last = stubSections.at(-1) as ObjdumpSection;
    let vma = alignUp(Number(last.vma) + last.size, 0x200);
    const args: string[] = [];
    for (const name of upstreamOrder) {
      const file = join(dir, `upstream-${name.slice(1)}`);
      const content = payload[name] as Buffer;
      await writeFile(file, content);
      args.push("--add-section", `${name}=${file}`, "--change-section-vma", `${name}=0x${vma.toString(16)}`);
      vma = alignUp(vma + content.length, 0x200);
    }
    const theirsPath = join(dir, "objcopy-1.9.efi");
    await objcopy([...args, stubPath, theirsPath]);
    const shape = (s: ObjdumpSection[]) => s.map((x) => [x.name, x.size, x.vma]);
    const ours = await objdumpSections(path);
    assert.deepEqual(shape(ours), shape(await objdumpSections(theirsPath)));
    assert.deepEqual(
      ours.slice(stubSections.length).map((x) => x.name),
      upstreamOrder,
    );
    for (const name of upstreamOrder) assert.deepEqual(await extract(path, name), payload[name], name);
  });

  test("refusals: no room for the headers, a signed stub, an empty or misnamed section", () => {
    const many = Array.from({ length: 600 }, () => ({ name: ".x", size: 1 }));
    assert.throws(
      () => planAppendSections(stub, many),
      (err) => isAppError(err, "BadRequest") && err.code === "PE_NO_ROOM",
    );
    const signed = Buffer.from(stub);
    const image = parsePe(signed);
    signed.writeUInt32LE(16, image.optional.offset + 112 + 4 * 8 + 4); // certificate table size
    assert.throws(() => planAppendSections(signed, [{ name: ".a", size: 1 }]), /already signed/);
    assert.throws(() => planAppendSections(stub, [{ name: ".a", size: 0 }]), /must have content/);
    assert.throws(() => planAppendSections(stub, [{ name: ".toolongname", size: 1 }]), /section name/);
  });
});
