// Builds (once, cached under .cache/ by test/harness/go-program.ts) and runs helm-render/main.go: Go's
// text/template with sprig, the template engine and function library Helm uses, from Debian's golang-go and
// golang-github-masterminds-sprig-dev, built offline in GOPATH mode.

import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { buildGoProgram } from "../harness/go-program.ts";

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "../..");
export const chartDir = path.join(repoRoot, "deploy/helm/boot-assets-factory");

export function buildRenderer(): string {
  return buildGoProgram({
    what: "the chart renderer",
    source: path.join(here, "helm-render/main.go"),
    cacheDir: "helm-render",
    binaryName: "helm-render",
    packages: [
      { file: "src/github.com/Masterminds/sprig/functions.go", debian: "golang-github-masterminds-sprig-dev" },
      { file: "src/gopkg.in/yaml.v3/yaml.go", debian: "golang-gopkg-yaml.v3-dev" },
    ],
  });
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
