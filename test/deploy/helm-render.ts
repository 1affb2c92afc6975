// Builds (once, cached under .cache/ by the source's and Go's hash) and runs helm-render/main.go: Go's
// text/template with sprig, the template engine and function library Helm uses, from Debian's golang-go and
// golang-github-masterminds-sprig-dev, built offline in GOPATH mode.

import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "../..");
const GOPATH = "/usr/share/gocode";
export const chartDir = path.join(repoRoot, "deploy/helm/boot-assets-factory");

function goEnv(cacheDir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? cacheDir,
    GO111MODULE: "off",
    GOPATH,
    GOCACHE: path.join(cacheDir, "go-build"),
    GOFLAGS: "",
    GOPROXY: "off",
    CGO_ENABLED: "0",
  };
}

export function buildRenderer(): string {
  const cacheDir = path.join(repoRoot, ".cache", "helm-render");
  mkdirSync(cacheDir, { recursive: true });
  for (const [file, pkg] of [
    ["src/github.com/Masterminds/sprig/functions.go", "golang-github-masterminds-sprig-dev"],
    ["src/gopkg.in/yaml.v3/yaml.go", "golang-gopkg-yaml.v3-dev"],
  ] as const)
    if (!existsSync(path.join(GOPATH, file))) throw new Error(`the chart renderer needs Debian package ${pkg}`);
  const goVersion = execFileSync("go", ["version"], { env: goEnv(cacheDir) })
    .toString()
    .trim();
  const source = readFileSync(path.join(here, "helm-render/main.go"));
  const key = createHash("sha256").update(source).update(goVersion).digest("hex").slice(0, 16);
  const binary = path.join(cacheDir, `helm-render-${key}`);
  if (!existsSync(binary)) {
    const tmp = `${binary}.${process.pid}.tmp`;
    execFileSync("go", ["build", "-o", tmp, path.join(here, "helm-render/main.go")], {
      env: goEnv(cacheDir),
      stdio: "pipe",
    });
    renameSync(tmp, binary);
  }
  return binary;
}

export type RenderResult = { ok: true; text: string } | { ok: false; error: string };

/** `helm template RELEASE CHART -n NAMESPACE -f …` in effect. */
export async function render(binary: string, valuesFiles: string[] = []): Promise<RenderResult> {
  try {
    const { stdout } = await run(binary, [chartDir, "factory", "boot-assets", ...valuesFiles]);
    return { ok: true, text: stdout };
  } catch (err) {
    return { ok: false, error: String((err as { stderr?: string }).stderr ?? err) };
  }
}
