// The Dockerfile's runtime stage carried out in a throwaway root, since no container engine or base image can
// be reached here: a Debian 12 root laid by mmdebstrap from Debian's mirror with the Dockerfile's package list
// (cached by that list's hash under ~/.cache/boot-assets/image-root), the stage's RUN line run in it verbatim,
// its COPY steps done from this checkout (the pinned Node binary, `npm run build`'s dist/, the production
// dependency tree `npm ls --omit=dev` names), then the ENTRYPOINT started with the image's ENV and USER, the
// root mounted read-only, the VOLUME and a /tmp tmpfs the only writable places, in its own network
// namespace, until the image's own HEALTHCHECK command passes. Not proven: the build stage on the node image,
// and the debian:bookworm-slim image's exact contents (the root is Debian 12 with the same packages).

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import type { Tool } from "../../src/tools/run.ts";
import { envOf, parseDockerfile, type Stage } from "./dockerfile.ts";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const isRoot = process.getuid?.() === 0;

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

describe("the Dockerfile's runtime stage in a throwaway Debian 12 root", { skip: !isRoot && "needs root" }, () => {
  let stage: Stage;
  let packages: string[];
  let work: string;
  let root: string;
  before(async () => {
    const file = parseDockerfile(await readFile(path.join(repoRoot, "Dockerfile"), "utf8"));
    stage = file.stages.at(-1) as Stage;
    const setup = stage.instructions.find((i) => i.keyword === "RUN")?.text ?? "";
    const install = /apt-get install ((?:\S+\s*)+?)(?:&&|$)/.exec(setup)?.[1] ?? "";
    packages = install.split(/\s+/).filter((w) => w !== "" && !w.startsWith("-"));
    assert.ok(packages.length > 10);

    const key = createHash("sha256")
      .update(JSON.stringify(["bookworm", "apt", ...packages]))
      .digest("hex");
    const cacheDir = path.join(bootAssetsCacheDir(), "image-root");
    const tarball = path.join(cacheDir, `debian-bookworm-${key.slice(0, 16)}.tar`);
    // A cache path that is no regular file is left from a broken run (a directory, once, when mmdebstrap
    // chose its format from the temp name): made again.
    if (!(await stat(tarball).catch(() => undefined))?.isFile()) {
      await rm(tarball, { recursive: true, force: true });
      await mkdir(cacheDir, { recursive: true });
      const partial = `${tarball}.${process.pid}.tmp`;
      // --format=tar: without it mmdebstrap infers the format from the name, and `.tmp` means a directory.
      await run(
        "mmdebstrap",
        ["--variant=apt", "--format=tar", `--include=${packages.join(",")}`, "bookworm", partial],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      await rename(partial, tarball);
    }
    work = await mkdtemp(path.join(tmpdir(), "image-root-"));
    root = path.join(work, "root");
    await mkdir(root);
    await run("tar", ["-xf", tarball, "-C", root]);
    await cp("/etc/resolv.conf", path.join(root, "etc/resolv.conf"));

    // RUN, verbatim (apt-get update reaches Debian's mirror; the packages are already there)
    await run(
      "unshare",
      [
        "--mount",
        "--fork",
        "sh",
        "-c",
        `mount --rbind /dev ${quote(`${root}/dev`)} && mount -t proc proc ${quote(`${root}/proc`)} && chroot ${quote(root)} /bin/sh -c ${quote(setup)}`,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );

    // COPY --from=build: what the build stage produces, made here the same way
    await mkdir(path.join(root, "app/node_modules"), { recursive: true });
    await cp(path.join(repoRoot, "node_modules/node/bin/node"), path.join(root, "usr/local/bin/node"));
    await cp(path.join(repoRoot, "package.json"), path.join(root, "app/package.json"));
    await cp(path.join(repoRoot, "bin"), path.join(root, "app/bin"), { recursive: true });
    await run(process.execPath, [
      path.join(repoRoot, "node_modules/typescript/bin/tsc"),
      "-p",
      path.join(repoRoot, "tsconfig.build.json"),
      "--outDir",
      path.join(root, "app/dist"),
    ]);
    // `npm prune --omit=dev` keeps the lockfile's entries not marked dev
    const lock = JSON.parse(await readFile(path.join(repoRoot, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; link?: boolean }>;
    };
    const production = Object.entries(lock.packages)
      .filter(([key, entry]) => key.startsWith("node_modules/") && entry.dev !== true && entry.link !== true)
      .map(([key]) => key);
    assert.ok(production.includes("node_modules/fastify"));
    assert.ok(!production.includes("node_modules/typescript"), "production dependencies only");
    for (const key of production) {
      const dir = path.join(repoRoot, key);
      if (!existsSync(dir)) continue; // an optional dependency for another platform
      await cp(dir, path.join(root, "app", key), {
        recursive: true,
        filter: (src) => src === dir || !src.startsWith(`${dir}/node_modules/`),
      });
    }
  });
  after(() => (work === undefined ? undefined : rm(work, { recursive: true, force: true })));

  test("every program the imager runs (src/tools) from a runtime package is on the image's PATH", async (t) => {
    const tools: Tool[] = [];
    for (const file of (await readdir(path.join(repoRoot, "src/tools"))).filter((f) => f.endsWith(".ts"))) {
      const mod = (await import(path.join(repoRoot, "src/tools", file))) as Record<string, unknown>;
      for (const value of Object.values(mod))
        if (typeof value === "object" && value !== null && "command" in value && "debianPackage" in value)
          tools.push(value as Tool);
    }
    const shipped = tools.filter((t) => packages.includes(t.debianPackage));
    assert.ok(shipped.length >= 20, `${shipped.length} tools`);
    t.diagnostic(`${shipped.length} programs: ${shipped.map((x) => x.command).join(" ")}`);
    const missing: string[] = [];
    for (const tool of shipped) {
      try {
        await run("chroot", [root, "/bin/sh", "-c", `command -v ${tool.command}`]);
      } catch {
        missing.push(`${tool.command} (${tool.debianPackage})`);
      }
    }
    assert.deepEqual(missing, []);
  });

  test("ENTRYPOINT as USER with the image's ENV, read-only root: the HEALTHCHECK passes", async (t) => {
    const env = envOf(stage);
    const user = stage.instructions.find((i) => i.keyword === "USER")?.text as string;
    const volume = stage.instructions.find((i) => i.keyword === "VOLUME")?.exec?.[0] as string;
    const entrypoint = stage.instructions.find((i) => i.keyword === "ENTRYPOINT")?.exec as string[];
    const health = stage.instructions.find((i) => i.keyword === "HEALTHCHECK")?.exec as string[];
    const data = path.join(work, "volume");
    await mkdir(data);
    execFileSync("chown", [user, data]);
    const envArgs = [...env].map(([k, v]) => quote(`${k}=${v}`)).join(" ");
    const asUser = (argv: string[]) =>
      `chroot --userspec=${user} ${quote(root)} /usr/bin/env -i ${envArgs} ${argv.map(quote).join(" ")}`;
    const script = [
      "set -eu",
      "ip link set lo up",
      `mount --bind ${quote(root)} ${quote(root)}`,
      `mount -o remount,bind,ro ${quote(root)}`,
      `mount -t proc proc ${quote(`${root}/proc`)}`,
      `mount --rbind /dev ${quote(`${root}/dev`)}`,
      `mount -t tmpfs -o size=256m tmpfs ${quote(`${root}/tmp`)}`,
      `mount --bind ${quote(data)} ${quote(root + volume)}`,
      // the root is read-only for everyone now
      `if touch ${quote(`${root}/app/probe`)} 2>/dev/null; then echo "root is writable"; exit 1; fi`,
      `${asUser([...entrypoint, "-metrics-listen-addr", ""])} > ${quote(`${work}/factory.log`)} 2>&1 &`,
      "factory=$!",
      "for i in $(seq 1 120); do",
      `  if ${asUser(health)}; then echo healthy after $i; kill -TERM $factory; wait $factory || true; exit 0; fi`,
      "  kill -0 $factory || { echo factory exited; exit 1; }",
      "  sleep 0.5",
      "done",
      "echo never healthy; kill -TERM $factory; exit 1",
    ].join("\n");
    await writeFile(path.join(work, "start.sh"), script);
    let out: string;
    try {
      out = (await run("unshare", ["--net", "--mount", "--pid", "--fork", "sh", path.join(work, "start.sh")])).stdout;
    } catch (err) {
      const log = await readFile(path.join(work, "factory.log"), "utf8").catch(() => "");
      throw new Error(`${(err as { stdout?: string }).stdout ?? ""}${String(err)}\nfactory log:\n${log}`);
    }
    assert.match(out, /^healthy after \d+$/m);
    t.diagnostic(out.trim());
    const log = await readFile(path.join(work, "factory.log"), "utf8");
    assert.match(log, new RegExp(`^data directory ${volume}$`, "m"));
    // what it wrote went to the volume: the generated cache signing key
    assert.ok(existsSync(path.join(data, "keys/cache-signing-key.pem")), log);
  });
});
