import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { type AssetPath, parseAssetPath, parseAssetRequest, parseVersionTag } from "../../src/talos/asset-path.ts";

const id = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

type Expect = Partial<AssetPath> & Pick<AssetPath, "kind" | "arch" | "platform" | "secureBoot">;

// Every example of upstream image-factory docs/api.md, and the grammar's other forms.
const valid: [string, Expect, string][] = [
  ["kernel-amd64", { kind: "kernel", arch: "amd64", platform: "metal", secureBoot: false }, "application/octet-stream"],
  [
    "kernel-x86_64",
    { kind: "kernel", arch: "amd64", platform: "metal", secureBoot: false },
    "application/octet-stream",
  ],
  ["kernel-i386", { kind: "kernel", arch: "amd64", platform: "metal", secureBoot: false }, "application/octet-stream"],
  ["kernel-arm64", { kind: "kernel", arch: "arm64", platform: "metal", secureBoot: false }, "application/octet-stream"],
  [
    "cmdline-metal-amd64",
    { kind: "cmdline", arch: "amd64", platform: "metal", secureBoot: false },
    "application/octet-stream",
  ],
  [
    "cmdline-digital-ocean-arm64-secureboot",
    { kind: "cmdline", arch: "arm64", platform: "digital-ocean", secureBoot: true },
    "application/octet-stream",
  ],
  [
    "initramfs-amd64.xz",
    { kind: "initramfs", arch: "amd64", platform: "metal", secureBoot: false },
    "application/x-xz",
  ],
  [
    "initramfs-x86_64.xz",
    { kind: "initramfs", arch: "amd64", platform: "metal", secureBoot: false },
    "application/x-xz",
  ],
  [
    "metal-amd64.iso",
    { kind: "iso", arch: "amd64", platform: "metal", secureBoot: false },
    "application/x-iso9660-image",
  ],
  [
    "metal-amd64-secureboot.iso",
    { kind: "iso", arch: "amd64", platform: "metal", secureBoot: true },
    "application/x-iso9660-image",
  ],
  ["metal-amd64-uki.efi", { kind: "uki", arch: "amd64", platform: "metal", secureBoot: false }, "application/efi"],
  [
    "metal-x86_64-secureboot-uki.efi",
    { kind: "uki", arch: "amd64", platform: "metal", secureBoot: true },
    "application/efi",
  ],
  [
    "installer-amd64.tar",
    { kind: "installer", arch: "amd64", platform: "metal", secureBoot: false },
    "application/octet-stream",
  ],
  [
    "installer-arm64-secureboot.tar",
    { kind: "installer", arch: "arm64", platform: "metal", secureBoot: true },
    "application/octet-stream",
  ],
  [
    "aws-installer-amd64.tar",
    { kind: "installer", arch: "amd64", platform: "aws", secureBoot: false },
    "application/octet-stream",
  ],
  [
    "digital-ocean-installer-amd64-secureboot.tar",
    { kind: "installer", arch: "amd64", platform: "digital-ocean", secureBoot: true },
    "application/octet-stream",
  ],
  [
    "metal-amd64.raw.xz",
    { kind: "disk", arch: "amd64", platform: "metal", secureBoot: false, disk: { format: "raw", compression: "xz" } },
    "application/x-xz",
  ],
  [
    "metal-amd64.raw.zst",
    { kind: "disk", arch: "amd64", platform: "metal", secureBoot: false, disk: { format: "raw", compression: "zst" } },
    "application/octet-stream",
  ],
  [
    "aws-amd64.raw.xz",
    { kind: "disk", arch: "amd64", platform: "aws", secureBoot: false, disk: { format: "raw", compression: "xz" } },
    "application/x-xz",
  ],
  [
    "gcp-amd64.raw.tar.gz",
    { kind: "disk", arch: "amd64", platform: "gcp", secureBoot: false, disk: { format: "raw", compression: "tar.gz" } },
    "application/gzip",
  ],
  [
    "azure-amd64.vhd.xz",
    { kind: "disk", arch: "amd64", platform: "azure", secureBoot: false, disk: { format: "vhd", compression: "xz" } },
    "application/x-xz",
  ],
  [
    "vmware-amd64.ova",
    {
      kind: "disk",
      arch: "amd64",
      platform: "vmware",
      secureBoot: false,
      disk: { format: "ova", compression: "none" },
    },
    "application/octet-stream",
  ],
  [
    "nocloud-arm64-secureboot.qcow2",
    {
      kind: "disk",
      arch: "arm64",
      platform: "nocloud",
      secureBoot: true,
      disk: { format: "qcow2", compression: "none" },
    },
    "application/x-qemu-disk",
  ],
  [
    "metal-amd64.raw.gz",
    { kind: "disk", arch: "amd64", platform: "metal", secureBoot: false, disk: { format: "raw", compression: "gz" } },
    "application/gzip",
  ],
  [
    "metal-amd64.raw",
    { kind: "disk", arch: "amd64", platform: "metal", secureBoot: false, disk: { format: "raw", compression: "none" } },
    "application/octet-stream",
  ],
  // Any compression with any format, as upstream's ParseFromPath (internal/profile/profile_test.go has
  // `aws-amd64-secureboot.qcow2.tar.gz`; `vmware-amd64.ova.xz` parses too)
  [
    "aws-amd64-secureboot.qcow2.tar.gz",
    {
      kind: "disk",
      arch: "amd64",
      platform: "aws",
      secureBoot: true,
      disk: { format: "qcow2", compression: "tar.gz" },
    },
    "application/gzip",
  ],
  [
    "vmware-amd64.ova.xz",
    { kind: "disk", arch: "amd64", platform: "vmware", secureBoot: false, disk: { format: "ova", compression: "xz" } },
    "application/x-xz",
  ],
  [
    "metal-amd64.vhd.zst",
    { kind: "disk", arch: "amd64", platform: "metal", secureBoot: false, disk: { format: "vhd", compression: "zst" } },
    "application/octet-stream",
  ],
];

// Malformed paths and what the error must name.
const invalid: [string, RegExp][] = [
  ["kernel-amd64-secureboot", /architecture "amd64-secureboot"/],
  ["kernel-riscv64", /architecture "riscv64"/],
  ["initramfs-amd64", /initramfs-<arch>\.xz/],
  ["initramfs-arm.xz", /architecture "arm"/],
  ["cmdline-metal", /<platform>-<arch>/],
  ["cmdline-nowhere-amd64", /unknown platform "nowhere"/],
  ["digital-amd64.iso", /unknown platform "digital"/],
  ["metal-ppc64-uki.efi", /architecture "ppc64"/],
  ["installer-amd64", /not a kernel, initramfs/],
  ["installer-foo.tar", /architecture "foo"/],
  ["mars-installer-amd64.tar", /unknown platform "mars"/],
  ["metal-amd64.vmdk", /not a kernel, initramfs/],
  ["metal-amd64.xz", /not a kernel/],
  ["", /invalid asset path/],
  ["../etc/passwd", /invalid asset path/],
  ["metal-amd64.iso?x", /invalid asset path/],
  [`${"a".repeat(300)}.iso`, /invalid asset path/],
];

describe("asset path grammar", () => {
  for (const [path, expected, mime] of valid)
    test(`parses ${path}`, () => {
      const parsed = parseAssetPath(path);
      assert.deepEqual(
        { ...parsed, disk: parsed.disk },
        { disk: undefined, ...expected, filename: path, mimeType: mime },
      );
    });

  for (const [path, message] of invalid)
    test(`refuses ${JSON.stringify(path.slice(0, 40))}`, () => {
      assert.throws(
        () => parseAssetPath(path),
        (err) => isAppError(err, "BadRequest") && message.test(err.message),
      );
    });
});

describe("asset request", () => {
  test("version with or without v, normalized to the tag", () => {
    assert.equal(parseAssetRequest(id, "1.8.2", "kernel-amd64").talosVersion, "v1.8.2");
    assert.equal(parseAssetRequest(id, "v1.10.0-alpha.1", "kernel-amd64").talosVersion, "v1.10.0-alpha.1");
    assert.equal(parseAssetRequest(id, "v1.8.2", "metal-amd64.iso").schematicId, id);
  });

  for (const bad of ["1.8", "v1.8.x", "vv1.8.2", "latest", "01.8.2", "v1.8.2 ", "1.8.2+build"])
    test(`malformed version ${JSON.stringify(bad)} is a BadRequest naming it`, () => {
      assert.throws(
        () => parseVersionTag(bad),
        (err) => isAppError(err, "BadRequest") && err.message.includes(JSON.stringify(bad)),
      );
    });

  for (const bad of [id.toUpperCase(), id.slice(1), `${id}0`, "x".repeat(64)])
    test(`schematic id ${bad.slice(0, 8)}… (${bad.length} chars) is refused`, () => {
      assert.throws(
        () => parseAssetRequest(bad, "v1.8.2", "kernel-amd64"),
        (err) => isAppError(err, "BadRequest") && /schematic ID/.test(err.message),
      );
    });
});
