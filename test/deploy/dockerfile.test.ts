// The production Dockerfile's rules, read from the file itself (no container engine or base image can be
// reached here, so the build is not run by this test; docs/deploying.md says what is and is not proven):
// two stages, the runtime's Debian packages exactly scripts/host-packages.sh's `runtime` list (read by bash),
// a non-root numeric user, the data directory a volume that HOME/XDG_CACHE_HOME point into, TMPDIR on /tmp,
// a HEALTHCHECK on /healthz at the port the factory listens on by default, `boot-assets factory` as the
// entrypoint, no secret in the image, and the image's environment accepted by the factory's own
// configuration reader (run: `boot-assets factory --check-config` with that environment).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { allSettings } from "../../src/factory/config/settings.ts";
import { type Dockerfile, envOf, parseDockerfile, type Stage } from "./dockerfile.ts";

const root = new URL("../../", import.meta.url);

/** The `runtime` array of scripts/host-packages.sh, as bash itself reads it. */
function hostRuntimePackages(): string[] {
  const script = execFileSync(
    "bash",
    [
      "-c",
      // Only the array assignments (up to the `case`) are evaluated: nothing is installed.
      `eval "$(sed -n '/^runtime=(/,/^bench_only=/p' scripts/host-packages.sh)"; printf '%s\\n' "\${runtime[@]}"`,
    ],
    { cwd: root, encoding: "utf8" },
  );
  return script.split("\n").filter((p) => p !== "");
}

function runtimeStage(file: Dockerfile): Stage {
  return file.stages.at(-1) as Stage;
}

function defaultOf(key: string): unknown {
  const setting = allSettings().find((s) => s.key === key);
  assert.ok(setting, `setting ${key}`);
  return setting.default;
}

describe("Dockerfile", () => {
  let file: Dockerfile;
  let text: string;
  before(async () => {
    text = await readFile(new URL("Dockerfile", root), "utf8");
    file = parseDockerfile(text);
  });

  test("two stages: the TypeScript built by npm in `build`, a Debian 12 slim runtime", async () => {
    assert.equal(file.stages.length, 2);
    const [build, runtime] = file.stages as [Stage, Stage];
    assert.equal(build.name, "build");
    assert.match(build.from, /^node:24-bookworm-slim$/);
    const buildRun = build.instructions.filter((i) => i.keyword === "RUN").map((i) => i.text);
    assert.ok(buildRun.some((r) => /\bnpm ci\b/.test(r) && /npm prune --omit=dev/.test(r)));
    // `npm ci` runs `prepare`, which is `npm run build`
    const pkg = JSON.parse(await readFile(new URL("package.json", root), "utf8")) as {
      scripts: Record<string, string>;
    };
    assert.equal(pkg.scripts.prepare, "npm run build");
    assert.match(runtime.from, /^\$\{DEBIAN_IMAGE\}$/);
    assert.equal(file.globalArgs.get("DEBIAN_IMAGE"), "debian:bookworm-slim");
    const copied = runtime.instructions.filter((i) => i.keyword === "COPY");
    assert.ok(
      copied.every((c) => c.flags.from === "build"),
      "the runtime takes only the build stage's output",
    );
    assert.deepEqual(copied.map((c) => c.text.split(/\s+/)[0]).sort(), [
      "/src/bin",
      "/src/dist",
      "/src/node",
      "/src/node_modules",
      "/src/package.json",
    ]);
  });

  test("the runtime's Debian packages are exactly scripts/host-packages.sh's runtime list", () => {
    const runs = runtimeStage(file).instructions.filter((i) => i.keyword === "RUN");
    const installs = runs.flatMap((r) =>
      [...r.text.matchAll(/apt-get install ((?:\S+\s*)+?)(?:&&|$)/g)].map((m) => m[1] as string),
    );
    assert.equal(installs.length, 1, "one apt-get install");
    const packages = (installs[0] as string).split(/\s+/).filter((w) => w !== "" && !w.startsWith("-"));
    const expected = hostRuntimePackages();
    assert.ok(expected.includes("util-linux") && expected.includes("xorriso"), "the script's list was read");
    assert.deepEqual([...packages].sort(), [...expected].sort());
    assert.match(runs[0]?.text ?? "", /--no-install-recommends/);
    assert.match(runs[0]?.text ?? "", /rm -rf \/var\/lib\/apt\/lists/);
  });

  test("runs as a non-root numeric user that owns the data volume; writes only there and to /tmp", () => {
    const runtime = runtimeStage(file);
    const users = runtime.instructions.filter((i) => i.keyword === "USER");
    assert.equal(users.length, 1);
    const [uid, gid] = (users[0] as { text: string }).text.split(":") as [string, string];
    assert.match(uid, /^[1-9]\d*$/, "numeric (Kubernetes' runAsNonRoot can check it)");
    assert.match(gid, /^[1-9]\d*$/);
    const volumes = runtime.instructions.filter((i) => i.keyword === "VOLUME");
    assert.equal(volumes.length, 1);
    const volume = (volumes[0]?.exec ?? [])[0] as string;
    const env = envOf(runtime);
    assert.equal(env.get("IF_DATADIR"), volume, "the factory's data directory is the volume");
    assert.equal(env.get("HOME"), volume);
    assert.ok(env.get("XDG_CACHE_HOME")?.startsWith(`${volume}/`), "caches inside the volume");
    assert.equal(env.get("TMPDIR"), "/tmp");
    const setup = runtime.instructions.find((i) => i.keyword === "RUN")?.text ?? "";
    assert.match(setup, new RegExp(`useradd [^&]*--uid ${uid} --gid ${gid}`));
    assert.match(setup, new RegExp(`chown ${uid}:${gid} ${volume}(\\s|$)`));
  });

  test("HEALTHCHECK asks /healthz on the factory's default port; the entrypoint is `boot-assets factory`", () => {
    const runtime = runtimeStage(file);
    const health = runtime.instructions.find((i) => i.keyword === "HEALTHCHECK");
    assert.ok(health?.exec, "exec form: no shell needed");
    const port = String(defaultOf("http.httpListenAddr")).replace(/^.*:/, "");
    assert.equal(port, "8080");
    assert.match(health.exec.join(" "), new RegExp(`http://127\\.0\\.0\\.1:${port}/healthz`));
    const metricsPort = String(defaultOf("metrics.addr")).replace(/^.*:/, "");
    const exposed = runtime.instructions.find((i) => i.keyword === "EXPOSE")?.text.split(/\s+/);
    assert.deepEqual(exposed, [port, metricsPort]);
    const entrypoint = runtime.instructions.find((i) => i.keyword === "ENTRYPOINT")?.exec;
    assert.deepEqual(entrypoint, ["/usr/local/bin/node", "/app/bin/boot-assets.js", "factory"]);
    assert.equal(
      runtime.instructions.find((i) => i.keyword === "CMD"),
      undefined,
      "arguments to `run` are factory flags",
    );
  });

  test("no secret in the image or its build context", async () => {
    for (const stage of file.stages)
      for (const i of stage.instructions) {
        if (i.keyword === "ENV" || i.keyword === "ARG")
          assert.doesNotMatch(i.text, /(KEY|TOKEN|PASSWORD|SECRET|PASSWD|CREDENTIAL)[A-Z_]*=/i, `line ${i.line}`);
        if (i.keyword === "COPY" || i.keyword === "ADD")
          assert.doesNotMatch(i.text, /\.(pem|key)\b|\.env\b|auth\.json|\.docker/, `line ${i.line}`);
      }
    assert.doesNotMatch(text, /^\s*ADD\s/im, "COPY only: ADD fetches URLs and unpacks archives");
    const ignore = (await readFile(new URL(".dockerignore", root), "utf8")).split("\n");
    for (const entry of ["data", "node_modules", "**/*.pem", "**/*.key", "**/.env"])
      assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
  });

  describe("the image's environment, read by the factory", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "dockerfile-env-"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    test("`factory --check-config` with the image's ENV: data directory from IF_DATADIR, port 8080", () => {
      const env = Object.fromEntries(envOf(runtimeStage(file)));
      // The volume's path stands for itself in a throwaway directory; the rest is the image's as written.
      const summary = execFileSync(
        process.execPath,
        ["bin/boot-assets.js", "factory", "--check-config", "-metrics-listen-addr", ""],
        {
          cwd: root,
          encoding: "utf8",
          env: { PATH: process.env.PATH ?? "", ...env, IF_DATADIR: dir, HOME: dir, XDG_CACHE_HOME: join(dir, "cache") },
        },
      );
      assert.match(summary, new RegExp(`^data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
      assert.match(summary, /^would listen on http:\/\/:8080 \(all interfaces\)$/m);
      assert.match(summary, /^configuration is valid/m);
    });
  });
});
