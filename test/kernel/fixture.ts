// Real kernel inputs for the kernel-config tests, from Debian 12 through the project's own apt configuration
// (src/tools/debian-packages.ts, never /etc/apt): the `linux-source-6.1` package (≈130 MB of tar.xz, of which
// only the Kconfig files, scripts/ and the Makefiles olddefconfig needs are extracted, ≈22 MB) and the
// matching `linux-image-6.1.*-amd64` package's /boot/config. Both are cached by the .deb's sha256 under
// <cache>/kernel-kconfig, so only the first run downloads and extracts (~30 s).

import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveKernelPackage } from "../../src/testbed/debian.ts";
import { bootAssetsCacheDir, fetchPackage, foreignAptConfig } from "../../src/tools/debian-packages.ts";
import { runTool, type Tool } from "../../src/tools/run.ts";

const tar: Tool = { command: "tar", debianPackage: "tar" };
export const makeTool: Tool = { command: "make", debianPackage: "make" };
const bash: Tool = { command: "bash", debianPackage: "bash" };

export interface KernelFixture {
  /** scripts/kconfig/conf built from the tree (the real Kconfig implementation), and its build directory. */
  conf: string;
  buildDir: string;
  /** The extracted source tree: Kconfig files, scripts/, Makefiles. */
  tree: string;
  sourceVersion: string;
  /** Debian's config of the same kernel version. */
  config: string;
  imageName: string;
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(
    () => true,
    () => false,
  );
}

let cached: Promise<KernelFixture> | undefined;

export function kernelFixture(log: (line: string) => void = () => {}): Promise<KernelFixture> {
  cached ??= build(log);
  return cached;
}

async function build(log: (line: string) => void): Promise<KernelFixture> {
  const cache = bootAssetsCacheDir();
  const apt = await foreignAptConfig(cache, "amd64", "bookworm");
  const source = await fetchPackage("linux-source-6.1", cache, log, undefined, apt);
  const imageName = await resolveKernelPackage({ config: apt, log });
  const image = await fetchPackage(imageName, cache, log, undefined, apt);
  const configs = (await readdir(join(image.root, "boot"))).filter((n) => n.startsWith("config-"));
  if (configs.length !== 1) throw new Error(`${imageName}: expected one /boot/config-*, found ${configs.join(", ")}`);
  const dir = join(cache, "kernel-kconfig", source.sha256);
  const tree = join(dir, "linux-source-6.1");
  if (!(await exists(tree))) {
    log("extracting the Kconfig files of linux-source-6.1");
    const temp = join(cache, "kernel-kconfig", `${source.sha256}.${randomUUID()}.part`);
    await mkdir(temp, { recursive: true });
    try {
      await runTool(
        tar,
        [
          "-xJf",
          join(source.root, "usr/src/linux-source-6.1.tar.xz"),
          "-C",
          temp,
          "--wildcards",
          "*Kconfig*",
          "linux-source-6.1/scripts/*",
          "linux-source-6.1/Makefile",
          "linux-source-6.1/arch/x86/Makefile*",
          "linux-source-6.1/arch/x86/tools/*",
          "linux-source-6.1/include/linux/compiler-version.h",
          "linux-source-6.1/include/linux/kconfig.h",
        ],
        { timeoutMs: 10 * 60 * 1000 },
      );
      await rename(temp, dir);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      if (!(await exists(tree))) throw err;
    }
  }
  const buildDir = join(dir, "build");
  const conf = join(buildDir, "scripts/kconfig/conf");
  if (!(await exists(conf))) {
    log("building scripts/kconfig/conf (make olddefconfig on an empty config)");
    const temp = join(dir, `build.${randomUUID()}.part`);
    await mkdir(temp, { recursive: true });
    try {
      await runTool(makeTool, ["-s", "-C", tree, `O=${temp}`, "ARCH=x86", "olddefconfig"], {
        timeoutMs: 10 * 60 * 1000,
      });
      await rm(buildDir, { recursive: true, force: true });
      await rename(temp, buildDir);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  }
  return {
    conf,
    buildDir,
    tree,
    sourceVersion: source.version,
    config: join(image.root, "boot", configs[0] as string),
    imageName,
  };
}

/**
 * The kernel's own scripts/kconfig/merge_config.sh -m on `files` (base first, then fragments), written into
 * the new directory `work` under the names given: the merged text and the "Value of CONFIG_X is redefined by
 * fragment F" lines it printed, as "CONFIG_X F".
 */
export async function runMergeConfigSh(
  fixture: KernelFixture,
  work: string,
  files: [string, string][],
): Promise<{ text: string; redefined: string[] }> {
  await mkdir(work, { recursive: true });
  for (const [name, text] of files) await writeFile(join(work, name), text);
  const script = join(fixture.tree, "scripts/kconfig/merge_config.sh");
  const { stdout } = await runTool(bash, [script, "-m", "-O", work, ...files.map(([name]) => name)], { cwd: work });
  const redefined = [
    ...stdout.toString("utf8").matchAll(/^Value of (CONFIG_\w+) is redefined by fragment (\S+):$/gm),
  ].map((m) => `${m[1]} ${m[2]}`);
  return { text: await readFile(join(work, ".config"), "utf8"), redefined };
}
