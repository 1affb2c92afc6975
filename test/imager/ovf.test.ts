// The OVA's OVF descriptor and manifest against upstream's template (siderolabs/talos pkg/imager/ova/ova.go
// ovfTpl and mfTpl at v1.7.0 … v1.14.0-rc.1; vmx-15 from commit 70fdca6a4 (1.8), disk.EnableUUID from commit
// 4fb4c8678 (1.12)). The expectations below were written from reading that template, not from our output.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildOva } from "../../src/imager/disk/outputs.ts";
import { ovaManifest, ovfDescriptor } from "../../src/imager/disk/ovf.ts";
import { rulesFor } from "../../src/talos/version-rules.ts";

interface Tag {
  kind: "open" | "close" | "empty" | "comment" | "decl";
  name: string;
  /** Attribute names and values in document order. */
  attrs: Array<[string, string]>;
}

/** A small scanner: the document's tags in order (enough for the flat, entity-free OVF upstream writes). */
function scan(xml: string): { tags: Tag[]; texts: Map<string, string[]> } {
  const tags: Tag[] = [];
  const texts = new Map<string, string[]>();
  const re = /<!--([\s\S]*?)-->|<\?([\s\S]*?)\?>|<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>([^<]*)/g;
  let last = 0;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    assert.equal(xml.slice(last, m.index).trim(), "", `nothing but white space between tags (at ${m.index})`);
    last = m.index + m[0].length;
    if (m[1] !== undefined) {
      tags.push({ kind: "comment", name: m[1], attrs: [] });
      continue;
    }
    if (m[2] !== undefined) {
      tags.push({ kind: "decl", name: m[2], attrs: [] });
      continue;
    }
    const attrs = [...(m[5] ?? "").matchAll(/([\w:.-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]] as [string, string]);
    const kind = m[3] === "/" ? "close" : m[6] === "/" ? "empty" : "open";
    const name = m[4] as string;
    tags.push({ kind, name, attrs });
    const text = (m[7] ?? "").trim();
    if (kind === "open" && text !== "") texts.set(name, [...(texts.get(name) ?? []), text]);
    if (kind !== "open") assert.equal(text, "", `no text after </${name}> or <${name}/>`);
  }
  assert.equal(xml.slice(last).trim(), "", "nothing after the last tag");
  return { tags, texts };
}

/** Elements open and close in a proper nesting, with one root. */
function assertWellNested(tags: Tag[]): void {
  const stack: string[] = [];
  let roots = 0;
  for (const t of tags) {
    if (t.kind === "open") {
      if (stack.length === 0) roots++;
      stack.push(t.name);
    } else if (t.kind === "close") assert.equal(stack.pop(), t.name, `</${t.name}> closes what is open`);
    else if (t.kind === "empty" && stack.length === 0) roots++;
  }
  assert.deepEqual(stack, [], "every element is closed");
  assert.equal(roots, 1, "one root element");
}

const configOf = (tags: Tag[], element: string) =>
  tags
    .filter((t) => t.name === element && t.kind === "empty")
    .map((t) => Object.fromEntries(t.attrs) as Record<string, string>)
    .map((a) => `${a["ovf:required"]} ${a["vmw:key"]}=${a["vmw:value"]}`);

// The elements of upstream's template in document order (start and empty tags), with the Items' rasd fields.
const item = (...fields: string[]) => ["Item", ...fields.map((f) => `rasd:${f}`)];
const expectedElements = (enableUuid: boolean) => [
  "Envelope",
  "References",
  "File",
  "DiskSection",
  "Info",
  "Disk",
  "NetworkSection",
  "Info",
  "Network",
  "Description",
  "VirtualSystem",
  "Info",
  "Name",
  "ProductSection",
  "Info",
  "Property",
  "Label",
  "Description",
  "OperatingSystemSection",
  "Info",
  "VirtualHardwareSection",
  "Info",
  "System",
  "vssd:ElementName",
  "vssd:InstanceID",
  "vssd:VirtualSystemIdentifier",
  "vssd:VirtualSystemType",
  ...item("AllocationUnits", "Description", "ElementName", "InstanceID", "ResourceType", "VirtualQuantity"),
  ...item("AllocationUnits", "Description", "ElementName", "InstanceID", "ResourceType", "VirtualQuantity"),
  ...item("Address", "Description", "ElementName", "InstanceID", "ResourceSubType", "ResourceType"),
  ...item("AddressOnParent", "ElementName", "HostResource", "InstanceID", "Parent", "ResourceType"),
  ...item(
    "AddressOnParent",
    "AutomaticAllocation",
    "Connection",
    "Description",
    "ElementName",
    "InstanceID",
    "ResourceSubType",
    "ResourceType",
  ),
  "vmw:Config",
  "vmw:Config",
  "vmw:Config",
  ...item("AutomaticAllocation", "ElementName", "InstanceID", "ResourceType"),
  ...item("AutomaticAllocation", "ElementName", "InstanceID", "ResourceSubType", "ResourceType"),
  ...Array(7).fill("vmw:Config"),
  "vmw:ExtraConfig",
  ...(enableUuid ? ["vmw:ExtraConfig"] : []),
];

const cases = [
  { version: "v1.7.0", hardware: "vmx-13", enableUuid: false },
  { version: "v1.7.6", hardware: "vmx-13", enableUuid: false },
  { version: "v1.8.0", hardware: "vmx-15", enableUuid: false },
  { version: "v1.10.0", hardware: "vmx-15", enableUuid: false },
  { version: "v1.11.0", hardware: "vmx-15", enableUuid: false },
  { version: "v1.11.5", hardware: "vmx-15", enableUuid: false },
  { version: "v1.12.0-alpha.2", hardware: "vmx-15", enableUuid: true },
  { version: "v1.12.0", hardware: "vmx-15", enableUuid: true },
  { version: "v1.13.0", hardware: "vmx-15", enableUuid: true },
  { version: "v1.14.0-rc.1", hardware: "vmx-15", enableUuid: true },
  { version: "not-a-version", hardware: "vmx-15", enableUuid: true },
] as const;

describe("OVA descriptor per Talos version (upstream pkg/imager/ova/ova.go ovfTpl)", () => {
  for (const c of cases) {
    test(`${c.version}: ${c.hardware}, disk.EnableUUID ${c.enableUuid ? "set" : "absent"}`, () => {
      const rules = rulesFor(c.version);
      assert.equal(rules.ovaHardwareVersion, c.hardware);
      assert.equal(rules.ovaDiskEnableUuid, c.enableUuid);
      const xml = ovfDescriptor({ vmdkName: "disk.vmdk", vmdkBytes: 123456789, capacityMiB: 8192, rules });
      const lines = xml.split("\n");
      assert.equal(lines[0], '<?xml version="1.0" encoding="UTF-8"?>');
      assert.equal(
        lines[1],
        "<!--Generated by VMware ovftool 4.3.0 (build-7948156), UTC time: 2019-10-31T01:41:10.540841Z-->",
      );
      assert.equal(lines[2], "<!-- Edited by Talos -->");
      assert.ok(xml.endsWith("</Envelope>\n"), "one newline after the root, as the template");
      assert.ok(!xml.includes("\t") && !xml.includes("\r"), "spaces and LF only");

      const { tags, texts } = scan(xml);
      assertWellNested(tags);
      const elements = tags.filter((t) => t.kind === "open" || t.kind === "empty").map((t) => t.name);
      assert.deepEqual(elements, expectedElements(c.enableUuid));

      const attrs = (name: string, nth = 0) =>
        tags.filter((t) => t.name === name && t.kind !== "close")[nth]?.attrs.map(([k, v]) => `${k}=${v}`);
      assert.deepEqual(attrs("Envelope"), [
        "vmw:buildId=build-7948156",
        "xmlns=http://schemas.dmtf.org/ovf/envelope/1",
        "xmlns:cim=http://schemas.dmtf.org/wbem/wscim/1/common",
        "xmlns:ovf=http://schemas.dmtf.org/ovf/envelope/1",
        "xmlns:rasd=http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
        "xmlns:vmw=http://www.vmware.com/schema/ovf",
        "xmlns:vssd=http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
        "xmlns:xsi=http://www.w3.org/2001/XMLSchema-instance",
      ]);
      assert.deepEqual(attrs("File"), ["ovf:href=disk.vmdk", "ovf:id=file1", "ovf:size=123456789"]);
      assert.deepEqual(attrs("Disk"), [
        "ovf:capacity=8192",
        "ovf:capacityAllocationUnits=byte * 2^20",
        "ovf:diskId=vmdisk1",
        "ovf:fileRef=file1",
        "ovf:format=http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
      ]);
      assert.deepEqual(attrs("Network"), ["ovf:name=VM Network"]);
      assert.deepEqual(attrs("VirtualSystem"), ["ovf:id=vm"]);
      assert.deepEqual(attrs("ProductSection"), ["ovf:required=false"]);
      assert.deepEqual(attrs("Property"), [
        "ovf:userConfigurable=true",
        "ovf:type=string",
        "ovf:key=talos.config",
        "ovf:value=",
      ]);
      // The template wraps the Property start tag onto a second line aligned under its first attribute.
      assert.ok(xml.includes('ovf:type="string"\n                ovf:key="talos.config"'));
      assert.deepEqual(attrs("OperatingSystemSection"), ["ovf:id=101", "vmw:osType=other3xLinux64Guest"]);
      assert.deepEqual(attrs("VirtualHardwareSection"), ["ovf:transport=com.vmware.guestInfo"]);
      for (let i = 0; i < 5; i++) assert.deepEqual(attrs("Item", i), [], `Item ${i + 1} is required`);
      for (const i of [5, 6]) assert.deepEqual(attrs("Item", i), ["ovf:required=false"], `Item ${i + 1} is optional`);

      assert.deepEqual(texts.get("vssd:VirtualSystemType"), [c.hardware]);
      assert.deepEqual(texts.get("Name"), ["talos"]);
      assert.deepEqual(texts.get("vssd:VirtualSystemIdentifier"), ["talos"]);
      assert.deepEqual(texts.get("rasd:ElementName"), [
        "2 virtual CPU(s)",
        "2048MB of memory",
        "scsiController0",
        "disk0",
        "ethernet0",
        "video",
        "vmci",
      ]);
      assert.deepEqual(texts.get("rasd:InstanceID"), ["1", "2", "3", "4", "5", "6", "7"]);
      assert.deepEqual(texts.get("rasd:ResourceType"), ["3", "4", "6", "17", "10", "24", "1"]);
      assert.deepEqual(texts.get("rasd:ResourceSubType"), ["VirtualSCSI", "VmxNet3", "vmware.vmci"]);
      assert.deepEqual(texts.get("rasd:Description"), [
        "Number of Virtual CPUs",
        "Memory Size",
        "SCSI Controller",
        "VmxNet3 ethernet adapter on &quot;VM Network&quot;",
      ]);
      assert.deepEqual(configOf(tags, "vmw:Config"), [
        "false slotInfo.pciSlotNumber=32",
        "false wakeOnLanEnabled=false",
        "false connectable.allowGuestControl=false",
        "false tools.syncTimeWithHost=false",
        "false tools.afterPowerOn=true",
        "false tools.afterResume=true",
        "false tools.beforeGuestShutdown=true",
        "false tools.beforeGuestStandby=true",
        "false tools.toolsUpgradePolicy=manual",
        "false powerOpInfo.suspendType=soft",
      ]);
      assert.deepEqual(configOf(tags, "vmw:ExtraConfig"), [
        "false nvram=talos.nvram",
        ...(c.enableUuid ? ["false disk.EnableUUID=true"] : []),
      ]);
    });
  }

  test("1.11 and 1.12 differ by the one disk.EnableUUID line after nvram; 1.7 and 1.8 by the hardware version", () => {
    const render = (v: string) =>
      ovfDescriptor({ vmdkName: "disk.vmdk", vmdkBytes: 1, capacityMiB: 2, rules: rulesFor(v) }).split("\n");
    const [v111, v112] = [render("v1.11.0"), render("v1.12.0")];
    const at = v111.indexOf('      <vmw:ExtraConfig ovf:required="false" vmw:key="nvram" vmw:value="talos.nvram"/>');
    assert.ok(at > 0);
    assert.deepEqual(v112, [
      ...v111.slice(0, at + 1),
      '      <vmw:ExtraConfig ovf:required="false" vmw:key="disk.EnableUUID" vmw:value="true"/>',
      ...v111.slice(at + 1),
    ]);
    const [v17, v18] = [render("v1.7.0"), render("v1.8.0")];
    const changed = v17.flatMap((line, i) => (line === v18[i] ? [] : [[line, v18[i]]]));
    assert.deepEqual(changed, [
      [
        "        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>",
        "        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>",
      ],
    ]);
  });

  test("disk.mf: OpenSSL-style SHA256 lines, VMDK first, each ending in a newline (upstream mfTpl)", () => {
    assert.equal(
      ovaManifest({ vmdkName: "disk.vmdk", vmdkSha256: "ab", ovfName: "disk.ovf", ovfSha256: "cd" }),
      "SHA256(disk.vmdk)= ab\nSHA256(disk.ovf)= cd\n",
    );
  });
});

describe("OVAs per Talos version", () => {
  let dir: string;
  let raw: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ovf-test-"));
    raw = join(dir, "disk.raw");
    await writeFile(raw, Buffer.alloc(4 * 1024 * 1024, 0x5a));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const [version, hardware, enableUuid] of [
    ["v1.7.0", "vmx-13", false],
    ["v1.12.0", "vmx-15", true],
  ] as const) {
    test(`${version}: the OVA's disk.ovf carries the version's rules and disk.mf its digests`, async () => {
      const out = join(dir, `${version}.ova`);
      await buildOva(raw, out, {
        diskSizeBytes: 64 * 1024 * 1024,
        scratchDir: dir,
        mtime: 0,
        rules: rulesFor(version),
      });
      const x = join(dir, `${version}-x`);
      await mkdir(x);
      execFileSync("tar", ["-xf", out, "-C", x]);
      const ovf = await readFile(join(x, "disk.ovf"), "utf8");
      assert.ok(ovf.includes(`<vssd:VirtualSystemType>${hardware}</vssd:VirtualSystemType>`));
      assert.equal(ovf.includes('vmw:key="disk.EnableUUID"'), enableUuid);
      assert.ok(ovf.includes('ovf:capacity="64"'));
      const sha = async (name: string) =>
        createHash("sha256")
          .update(await readFile(join(x, name)))
          .digest("hex");
      assert.equal(
        await readFile(join(x, "disk.mf"), "utf8"),
        `SHA256(disk.vmdk)= ${await sha("disk.vmdk")}\nSHA256(disk.ovf)= ${await sha("disk.ovf")}\n`,
      );
    });
  }
});
