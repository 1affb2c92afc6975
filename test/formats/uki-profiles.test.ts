// A Talos ≥ 1.10 UKI on a stub that understands profiles (trixie's systemd-stub 257, as the test bed's ≥ 1.10
// imagers ship), read back with binutils' objdump -h, independently of our PE parser. What upstream builds
// (siderolabs/talos v1.10.0):
// - internal/pkg/uki/uki.go Build: sections generated in the order SBAT (measured only, the stub's .sbat
//   stays), .osrel, .cmdline, .uname, .splash, .linux, .initrd, then generateProfiles;
// - internal/pkg/uki/generate.go generateProfiles: "main" first, then the builder's profiles, each a
//   .profile section with Profile.String() ("ID=<id>", "\nTITLE=<title>" when it has one) followed by a
//   .cmdline section when the profile has a command line;
// - pkg/imager/imager.go buildUKI: installers and disk images add "reset-maintenance" / "Reset to
//   maintenance mode" with the main command line + " talos.experimental.wipe=system:EPHEMERAL,STATE", ISOs
//   "reset" / "Reset system disk" with " talos.experimental.wipe=system", UKI downloads nothing;
// - internal/pkg/uki/internal/pe/native.go AssembleNative: appended sections are IMAGE_SCN_CNT_INITIALIZED_DATA
//   | IMAGE_SCN_MEM_READ, the first at the stub's last section end rounded up to SectionAlignment, each next at
//   the previous one's end rounded up likewise, their raw size the content size rounded up to FileAlignment.

import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { readBmpInfo } from "../../src/formats/bmp.ts";
import { assembleUki, osReleaseFor, systemdEfiInfo, systemdStubInfo } from "../../src/formats/uki.ts";
import { bootSplash } from "../../src/imager/splash.ts";
import type { OutputKind } from "../../src/talos/cmdline.ts";
import { talosUkiProfiles } from "../../src/talos/uki-profiles.ts";
import { fetchTestbedPackages, type TestbedPackages } from "../../src/testbed/debian.ts";
import { type ObjdumpSection, objdumpSections, objdumpTool } from "../../src/tools/binutils.ts";
import { runToolText } from "../../src/tools/run.ts";

const cmdline = "talos.platform=metal console=ttyS0 selinux=1";
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

describe("UKI profiles (Talos ≥ 1.10)", () => {
  test("reset profiles by output kind, as pkg/imager/imager.go buildUKI adds them", () => {
    const cases: [OutputKind, { id: string; title: string; cmdline: string }[]][] = [
      ["iso", [{ id: "reset", title: "Reset system disk", cmdline: `${cmdline} talos.experimental.wipe=system` }]],
      [
        "disk",
        [
          {
            id: "reset-maintenance",
            title: "Reset to maintenance mode",
            cmdline: `${cmdline} talos.experimental.wipe=system:EPHEMERAL,STATE`,
          },
        ],
      ],
      [
        "installer",
        [
          {
            id: "reset-maintenance",
            title: "Reset to maintenance mode",
            cmdline: `${cmdline} talos.experimental.wipe=system:EPHEMERAL,STATE`,
          },
        ],
      ],
      ["uki", []],
    ];
    for (const [kind, expected] of cases) assert.deepEqual(talosUkiProfiles(kind, cmdline), expected, kind);
  });

  test("the splash is a 24-bit uncompressed BMP (what `file` says too)", async () => {
    const splash = bootSplash();
    assert.deepEqual(readBmpInfo(splash), { width: 128, height: 128, bitsPerPixel: 24, compression: 0 });
    const work = await mkdtemp(join(tmpdir(), "splash-"));
    try {
      const path = join(work, "splash.bmp");
      await writeFile(path, splash);
      const described = await runToolText({ command: "file", debianPackage: "file" }, ["-b", path]);
      assert.match(described, /^PC bitmap, Windows 3\.x format, 128 x 128 x 24/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  describe("on trixie's systemd-stub", () => {
    let dir: string;
    let stubPath: string;
    let packages: TestbedPackages;
    let stubSections: ObjdumpSection[];
    let kernel: string;
    let initramfs: string;

    before(async () => {
      packages = await fetchTestbedPackages();
      stubPath = packages.systemdBootProfiles.stubEfi;
      stubSections = await objdumpSections(stubPath);
      // Real payloads: the test bed's kernel, and any file as initrd (the stub never looks inside).
      kernel = packages.kernel.vmlinuz;
      initramfs = packages.busybox.binary;
      dir = await mkdtemp(join(tmpdir(), "uki-profiles-"));
    });
    after(async () => {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    test("is systemd ≥ 257, as its systemd-boot; Debian 12's are 252 (read from .sdmagic)", async () => {
      const info = systemdStubInfo(await readFile(stubPath));
      assert.match(info.loaderInfo ?? "", /^systemd-stub 2\d\d/);
      assert.ok((info.systemdVersion ?? 0) >= 257, info.loaderInfo);
      assert.equal(info.supportsProfiles, true);
      const boot = systemdEfiInfo(await readFile(packages.systemdBootProfiles.bootEfi));
      assert.equal(boot.loaderInfo, `systemd-boot ${packages.systemdBootProfiles.version}`);
      assert.equal(boot.supportsProfiles, true);
      const old = systemdEfiInfo(await readFile(packages.systemdBoot.bootEfi));
      assert.equal(old.loaderInfo, `systemd-boot ${packages.systemdBoot.version}`);
      assert.equal(old.supportsProfiles, false, "the builder leaves profiles out of UKIs this systemd-boot boots");
    });

    test("an installer's UKI: upstream's sections, order, contents and alignment (objdump -h)", async () => {
      const path = join(dir, "vmlinuz.efi");
      const out = createWriteStream(path);
      const splash = bootSplash();
      const osRelease = osReleaseFor("Talos", "v1.10.3");
      const result = await assembleUki(
        await readFile(stubPath),
        {
          osRelease,
          cmdline,
          uname: "6.12.25-talos",
          splash: { content: splash },
          linux: { path: kernel },
          initrd: { path: initramfs },
          profiles: talosUkiProfiles("installer", cmdline),
        },
        { wantProfiles: true },
        out,
      );
      out.end();
      await finished(out);
      assert.equal(result.profiles, true);

      const file = await readFile(path);
      const sections = await objdumpSections(path);
      assert.deepEqual(
        sections.slice(0, stubSections.length).map((s) => [s.name, s.vma, s.size]),
        stubSections.map((s) => [s.name, s.vma, s.size]),
        "the stub's sections are kept",
      );
      const added = sections.slice(stubSections.length);
      const resetCmdline = `${cmdline} talos.experimental.wipe=system:EPHEMERAL,STATE`;
      const expected: [string, Buffer][] = [
        [".osrel", Buffer.from(osRelease)],
        [".cmdline", Buffer.from(cmdline)],
        [".uname", Buffer.from("6.12.25-talos")],
        [".splash", splash],
        [".linux", await readFile(kernel)],
        [".initrd", await readFile(initramfs)],
        [".profile", Buffer.from("ID=main")],
        [".profile", Buffer.from("ID=reset-maintenance\nTITLE=Reset to maintenance mode")],
        [".cmdline", Buffer.from(resetCmdline)],
      ];
      assert.deepEqual(
        added.map((s) => s.name),
        expected.map(([name]) => name),
      );

      const headers = parseHeaderFields(await runToolText(objdumpTool, ["-p", path]));
      const sectionAlignment = headers.SectionAlignment as number;
      const fileAlignment = headers.FileAlignment as number;
      const last = stubSections.at(-1) as ObjdumpSection;
      let vma = alignUp(Number(last.vma) + last.size, sectionAlignment);
      for (const [i, s] of added.entries()) {
        const [name, content] = expected[i] as [string, Buffer];
        assert.equal(s.size, content.length, `${name} #${i} size`);
        assert.equal(Number(s.vma), vma, `${name} #${i} VMA`);
        assert.equal(s.fileOffset % fileAlignment, 0, `${name} #${i} file offset`);
        assert.deepEqual(s.flags, ["CONTENTS", "ALLOC", "LOAD", "READONLY", "DATA"], `${name} #${i} flags`);
        assert.deepEqual(file.subarray(s.fileOffset, s.fileOffset + s.size), content, `${name} #${i} content`);
        vma = alignUp(vma + s.size, sectionAlignment);
      }
      // objdump's VMAs include ImageBase; SizeOfImage is relative to it.
      assert.equal(headers.SizeOfImage, vma - (headers.ImageBase as number), "SizeOfImage ends at the last section");
    });
  });
});

function parseHeaderFields(text: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(ImageBase|SizeOfImage|SectionAlignment|FileAlignment)\s+([0-9a-f]+)$/.exec(line.trim());
    if (m) fields[m[1] as string] = Number.parseInt(m[2] as string, 16);
  }
  return fields;
}
