// The test bed's system extensions: small, but each shaped like a kind of upstream extension, with a real
// `manifest.yaml` and only the paths the Talos version allows (read from the version rules table):
//   testbed-dummy    a real kernel module of this kernel that the base rootfs leaves out (`dummy.ko`, plus any
//                    dependency the rootfs lacks) under the version's module path — like upstream's driver
//                    extensions, versioned `<kernel>-v<talos>`;
//   testbed-ucode    firmware in microcode layout (`<firmware path>/intel-ucode/…`), which the imager moves
//                    into the early microcode cpio — like intel-ucode / amd-ucode; NOT real microcode;
//   testbed-hello    an extension service: `usr/local/etc/containers/testbed-hello.yaml` and its rootfs (a
//                    static busybox) under `usr/local/lib/containers/testbed-hello/`;
//   testbed-glibc    glibc-style: a tree under `usr/local/glibc/` and the dynamic loader (and ldconfig, where
//                    the version allows it) linked into the system paths, as upstream's glibc extension does;
//                    the files are stand-ins, not a real glibc;
//   testbed-legacy   compatible only with Talos < 1.0.0, so every release refuses it.
// Every file has a fixed mode; contents are fixed or come from the Debian packages, so images are
// reproducible.

import { AppError } from "../errors.ts";
import type { TarEntry } from "../oci/tar.ts";
import {
  isCompatible,
  isValidExtensionVersion,
  parseExtensionManifest,
  parseExtensionServiceSpec,
} from "../talos/extension.ts";
import type { VersionRules } from "../talos/version-rules.ts";
import type { TestbedArchPackages } from "./debian.ts";

export const extensionAuthor = "boot-assets test bed";

/** Extension names (repository `siderolabs/<name>`), for tests and demos. */
export const TestbedExtension = {
  module: "testbed-dummy",
  firmware: "testbed-ucode",
  service: "testbed-hello",
  glibc: "testbed-glibc",
  incompatible: "testbed-legacy",
} as const;

/** The kernel module the module extension carries; the base rootfs leaves it out on purpose. */
export const extensionModule = "dummy";

/** What every compatible test bed extension declares (the extension format is what Talos 1.5 introduced). */
export const compatibleConstraint = ">= v1.5.0";
/** Excludes every release the test bed makes (and, as a non-semver tag counts as newest, those too). */
export const incompatibleConstraint = "< v1.0.0";

export interface ExtensionImageSpec {
  /** Short name, e.g. "testbed-dummy"; the repository is `siderolabs/<name>`. */
  name: string;
  repository: string;
  /** The extension version, also the image tag. */
  version: string;
  description: string;
  constraint: string;
  /** Whether its constraint admits the Talos version it is built for. */
  compatible: boolean;
  /** The image's single layer: `manifest.yaml` and `rootfs/…`. */
  entries: TarEntry[];
}

export interface ExtensionInputs {
  talosVersion: string;
  rules: VersionRules;
  packages: TestbedArchPackages;
  kernelRelease: string;
  /** The module files (relative to the kernel's module tree) the module extension carries, with their sizes. */
  moduleFiles: { path: string; size: number }[];
  busyboxSize: number;
}

/**
 * The Talos part of an extension version: the tag itself when it is `vX.Y.Z[-pre]`; a tag that is not semver
 * becomes the pre-release of v0.0.0 (`latest-dev` → `v0.0.0-latest-dev`), which keeps the version in the
 * `<upstream>-v<talos semver>` form upstream's validator accepts and the tag unique per Talos tag.
 */
export function talosVersionSuffix(talosVersion: string): string {
  if (/^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(talosVersion)) return talosVersion;
  const cleaned = talosVersion.replace(/[^0-9A-Za-z.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  return `v0.0.0-${cleaned === "" ? "unknown" : cleaned}`;
}

/** Debian version → upstream version: "1:1.35.0-4+deb12u1+b1" → "1.35.0". */
export function upstreamVersion(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
}

/** manifest.yaml in upstream's layout; JSON strings are valid YAML double-quoted scalars. */
export function extensionManifestYaml(meta: {
  name: string;
  version: string;
  description: string;
  constraint: string;
}): string {
  const description = meta.description
    .trimEnd()
    .split("\n")
    .map((line) => `    ${line}`.trimEnd())
    .join("\n");
  return [
    "version: v1alpha1",
    "metadata:",
    `  name: ${meta.name}`,
    `  version: ${JSON.stringify(meta.version)}`,
    `  author: ${extensionAuthor}`,
    "  description: |",
    description,
    "  compatibility:",
    "    talos:",
    `      version: ${JSON.stringify(meta.constraint)}`,
    "",
  ].join("\n");
}

/** Deterministic stand-in bytes for a file that must exist but is not meant to be run. */
function standIn(what: string, size = 0): Buffer {
  const text = Buffer.from(`boot-assets test bed: ${what}. Not a real one.\n`);
  if (size <= text.length) return text;
  const out = Buffer.alloc(size, 0x2e);
  text.copy(out);
  out[size - 1] = 0x0a;
  return out;
}

const file = (path: string, content: string | Buffer, mode = 0o644): TarEntry => ({
  type: "file",
  path,
  mode,
  content: typeof content === "string" ? Buffer.from(content) : content,
});

/** The allowed path of the version ending in `suffix` (e.g. the loader's), or undefined when it has none. */
function allowedPathEnding(rules: VersionRules, suffix: string): string | undefined {
  return rules.extensionAllowedPaths.find((path) => path.endsWith(suffix))?.replace(/^\//, "");
}

export function helloServiceSpec(name: string): string {
  return [
    `name: ${name}`,
    "container:",
    "  entrypoint: /bin/busybox",
    "  args:",
    "    - sh",
    "    - -c",
    `    - echo ${name} started; exec sleep 2147483647`,
    "depends:",
    "  - network:",
    "      - addresses",
    "restart: always",
    "",
  ].join("\n");
}

/** The five extension images for one Talos version. */
export function testbedExtensionImages(inputs: ExtensionInputs): ExtensionImageSpec[] {
  const { rules, talosVersion, packages } = inputs;
  const suffix = talosVersionSuffix(talosVersion);
  const specs: Omit<ExtensionImageSpec, "repository" | "entries" | "compatible">[] = [];
  const rootfsOf = new Map<string, TarEntry[]>();
  const add = (
    spec: Omit<ExtensionImageSpec, "repository" | "entries" | "compatible" | "constraint"> & { constraint?: string },
    rootfs: TarEntry[],
  ) => {
    specs.push({ ...spec, constraint: spec.constraint ?? compatibleConstraint });
    rootfsOf.set(spec.name, rootfs);
  };

  const moduleTree = `${rules.modulesPath}/${inputs.kernelRelease}`;
  add(
    {
      name: TestbedExtension.module,
      version: `${upstreamVersion(packages.kernel.version)}-${suffix}`,
      description: `The ${extensionModule} network driver of Debian's kernel ${inputs.kernelRelease}, which the test bed's base rootfs leaves out.\n`,
    },
    inputs.moduleFiles.map(
      (module): TarEntry => ({
        type: "file",
        path: `${moduleTree}/${module.path}`,
        mode: 0o644,
        sourcePath: `${packages.kernel.modulesDir}/${module.path}`,
        size: module.size,
      }),
    ),
  );

  add(
    {
      name: TestbedExtension.firmware,
      version: `20250101-${suffix}`,
      description: "Stand-in CPU microcode in the intel-ucode layout (not real microcode).\n",
    },
    [
      file(`${rules.firmwarePath}/intel-ucode/06-55-04`, standIn("Intel microcode for 06-55-04", 2048)),
      file(`${rules.firmwarePath}/testbed/README`, standIn("firmware directory of the test bed")),
    ],
  );

  const service = TestbedExtension.service;
  parseExtensionServiceSpec(helloServiceSpec(service), `${service}.yaml`); // refuse a malformed spec at build time
  add(
    {
      name: service,
      version: `${upstreamVersion(packages.busybox.version)}-${suffix}`,
      description: "An extension service running a static busybox that prints a line and sleeps.\n",
    },
    [
      file(`usr/local/etc/containers/${service}.yaml`, helloServiceSpec(service)),
      {
        type: "file",
        path: `usr/local/lib/containers/${service}/bin/busybox`,
        mode: 0o755,
        sourcePath: packages.busybox.binary,
        size: inputs.busyboxSize,
      },
      { type: "symlink", path: `usr/local/lib/containers/${service}/bin/sh`, target: "busybox" },
    ],
  );

  const glibcLib = "usr/local/glibc/usr/lib";
  const glibcRootfs: TarEntry[] = [
    file(`${glibcLib}/ld-linux-x86-64.so.2`, standIn("dynamic loader"), 0o755),
    file(`${glibcLib}/libc.so.6`, standIn("C library"), 0o755),
    file("usr/local/glibc/etc/ld.so.conf", `/${glibcLib}\n`),
    file("usr/local/glibc/usr/bin/ldconfig", standIn("ldconfig"), 0o755),
  ];
  const loader = allowedPathEnding(rules, "/ld-linux-x86-64.so.2");
  if (loader !== undefined)
    glibcRootfs.push({ type: "symlink", path: loader, target: `/${glibcLib}/ld-linux-x86-64.so.2` });
  const ldconfig = allowedPathEnding(rules, "/ldconfig");
  if (ldconfig !== undefined)
    glibcRootfs.push({ type: "symlink", path: ldconfig, target: "/usr/local/glibc/usr/bin/ldconfig" });
  add(
    {
      name: TestbedExtension.glibc,
      version: `2.36-${suffix}`,
      description:
        "glibc-style layout: a tree under /usr/local/glibc and the loader linked where Talos looks for it (stand-in files).\n",
    },
    glibcRootfs,
  );

  add(
    {
      name: TestbedExtension.incompatible,
      version: `1.0.0-${suffix}`,
      description: "Declares compatibility with Talos < 1.0.0 only: every test bed release must refuse it.\n",
      constraint: incompatibleConstraint,
    },
    [file(`usr/local/share/${TestbedExtension.incompatible}/README`, standIn("incompatible extension"))],
  );

  return specs.map((spec) => {
    if (!isValidExtensionVersion(spec.version))
      throw new AppError(
        "Internal",
        `test bed extension ${spec.name}: version "${spec.version}" is not one upstream accepts`,
      );
    const manifest = extensionManifestYaml(spec);
    const rootfs = rootfsOf.get(spec.name) ?? [];
    return {
      ...spec,
      repository: `siderolabs/${spec.name}`,
      compatible: isCompatible(parseExtensionManifest(manifest, spec.name), talosVersion),
      entries: [
        file("manifest.yaml", manifest),
        { type: "directory", path: "rootfs", mode: 0o755 },
        ...rootfs.map((entry) => ({ ...entry, path: `rootfs/${entry.path}` })),
      ],
    };
  });
}

export interface BenchExtensionInputs {
  talosVersion: string;
  /** The incompressible blob `testbed-bulky` carries; no bulky extension when undefined. */
  bulkyFile?: { path: string; size: number };
  /** How many small `testbed-filler-NN` extensions to add. */
  fillers: number;
}

/**
 * Bench-only extensions (publishTestbedRelease's `benchExtensions`), never in a default release:
 * `testbed-bulky` holds one large file of incompressible bytes under /usr/local/share (the worst case for
 * squashfs and the compressors, like a GPU driver), and `testbed-filler-NN` one small file each, to make up
 * the number of extensions a real schematic has.
 */
export function benchExtensionImages(inputs: BenchExtensionInputs): ExtensionImageSpec[] {
  const suffix = talosVersionSuffix(inputs.talosVersion);
  const specs: { name: string; description: string; rootfs: TarEntry[] }[] = [];
  if (inputs.bulkyFile !== undefined)
    specs.push({
      name: "testbed-bulky",
      description: `${inputs.bulkyFile.size} bytes of incompressible data (bench only).\n`,
      rootfs: [
        {
          type: "file",
          path: "usr/local/share/testbed-bulky/blob",
          mode: 0o644,
          sourcePath: inputs.bulkyFile.path,
          size: inputs.bulkyFile.size,
        },
      ],
    });
  for (let i = 1; i <= inputs.fillers; i++) {
    const name = `testbed-filler-${String(i).padStart(2, "0")}`;
    specs.push({
      name,
      description: "A small extension that only adds one file (bench only).\n",
      rootfs: [file(`usr/local/share/${name}/README`, standIn(`filler extension ${i}`))],
    });
  }
  return specs.map(({ name, description, rootfs }) => {
    const version = `1.0.0-${suffix}`;
    const manifest = extensionManifestYaml({ name, version, description, constraint: compatibleConstraint });
    return {
      name,
      repository: `siderolabs/${name}`,
      version,
      description,
      constraint: compatibleConstraint,
      compatible: isCompatible(parseExtensionManifest(manifest, name), inputs.talosVersion),
      entries: [
        file("manifest.yaml", manifest),
        { type: "directory", path: "rootfs", mode: 0o755 },
        ...rootfs.map((entry) => ({ ...entry, path: `rootfs/${entry.path}` })),
      ],
    };
  });
}
