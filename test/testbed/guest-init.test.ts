// The guest init's parsers (JSON strings, extensions.yaml, META from a partition block and from the
// INSTALLER_META_BASE64 cmdline variable), run on the host by the same static busybox the guest uses:
// init.sh is sourced with TESTBED_INIT_LIBRARY=1, which stops it before it touches the machine.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { fetchTestbedPackages } from "../../src/testbed/debian.ts";
import { metaPartitionContent } from "../boot/test-disk.ts";

const run = promisify(execFile);
const initScript = join(import.meta.dirname, "../../src/testbed/guest/init.sh");

describe("guest init parsers (host busybox)", () => {
  let busybox: string;
  let scratch: string;
  before(async () => {
    busybox = (await fetchTestbedPackages()).busybox.binary;
    scratch = await mkdtemp(join(tmpdir(), "guest-init-"));
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  /** Runs `command` in busybox sh after sourcing init.sh's function library; "$1"… are `args`. */
  async function sh(command: string, ...args: string[]): Promise<string> {
    const { stdout } = await run(busybox, ["sh", "-c", `. "${initScript}"; ${command}`, "sh", ...args], {
      env: { TESTBED_INIT_LIBRARY: "1", PATH: "/usr/bin:/bin", TMPDIR: scratch },
    });
    return stdout;
  }

  test("jstr and jarr produce JSON that parses back to the input", async () => {
    const nasty = 'quote " backslash \\ tab \t newline\nend $HOME `x` ünï';
    assert.equal(JSON.parse(await sh('jstr "$1"', nasty)), nasty);
    assert.equal(JSON.parse(await sh('jstr "$1"', "")), "");
    assert.deepEqual(JSON.parse(await sh('jarr "$1"', 'a\n\nb "c"\n')), ["a", 'b "c"']);
    assert.deepEqual(JSON.parse(await sh('jarr "$1"', "")), []);
  });

  test("extensions.yaml in upstream's layout gives image, name, version per layer, in order", async () => {
    const yaml = [
      "layers:",
      "    - image: 000.sqsh",
      "      metadata:",
      "        name: gvisor",
      '        version: "20240212.0-v1.8.2"',
      "        author: Sidero Labs",
      "        description: |",
      "            name: looks-like-a-key",
      "        compatibility:",
      "            talos:",
      "                version: '>= v1.8.0'",
      "    - metadata:",
      "        name: 'it''s'",
      "        version: 1.0",
      "      image: 001.sqsh",
      "",
    ].join("\n");
    const file = join(scratch, "extensions.yaml");
    await writeFile(file, yaml);
    assert.equal(await sh('parse_extensions "$1"', file), "000.sqsh\tgvisor\t20240212.0-v1.8.2\n001.sqsh\tit's\t1.0\n");
  });

  test("META from INSTALLER_META_BASE64, plain and gzip'd (as Talos does for long values)", async () => {
    const pairs = '0xa={"externalIPs":["1.2.3.4"]};0xc=hello world;0x11=sd-boot';
    const expected = { "0xa": '{"externalIPs":["1.2.3.4"]}', "0xc": "hello world", "0x11": "sd-boot" };
    assert.deepEqual(JSON.parse(await sh('meta_from_base64 "$1"', Buffer.from(pairs).toString("base64"))), expected);
    assert.deepEqual(
      JSON.parse(await sh('meta_from_base64 "$1"', gzipSync(pairs, { level: 9 }).toString("base64"))),
      expected,
    );
  });

  test("META from a partition: records read until tag 0, written per siderolabs/go-adv adv/talos", async () => {
    const content = metaPartitionContent(
      [
        [0x0a, '{"addresses":[]}'],
        [0x0f, "9c1b5e1e-2f5c-4e0e-8a2e-0123456789ab"],
        [0x11, "grub"],
      ],
      (block) => createHash("sha256").update(block).digest(),
    );
    const file = join(scratch, "meta.img");
    await writeFile(file, content);
    assert.deepEqual(JSON.parse(await sh('meta_from_partition "$1"', file)), {
      "0xa": '{"addresses":[]}',
      "0xf": "9c1b5e1e-2f5c-4e0e-8a2e-0123456789ab",
      "0x11": "grub",
    });
    // A block without the magic holds no tags.
    await writeFile(file, Buffer.alloc(512 * 1024));
    assert.deepEqual(JSON.parse(await sh('meta_from_partition "$1"', file)), {});
  });
});
