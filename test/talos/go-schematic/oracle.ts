// Builds (once, cached under .cache/ by test/harness/go-program.ts) and runs the Go oracle in main.go:
// gopkg.in/yaml.v3 itself, from Debian's golang-go and golang-gopkg-yaml.v3-dev, built offline in GOPATH mode
// (no module downloads).

import { spawn } from "node:child_process";
import path from "node:path";
import { buildGoProgram } from "../../harness/go-program.ts";

const here = path.dirname(new URL(import.meta.url).pathname);

export type OracleResult = { ok: true; yaml: string } | { ok: false; error: string };

/** The oracle binary's path, building it if main.go or the Go toolchain changed. */
export function buildOracle(): string {
  return buildGoProgram({
    what: "the Go oracle",
    source: path.join(here, "main.go"),
    cacheDir: "go-schematic",
    binaryName: "oracle",
    packages: [{ file: "src/gopkg.in/yaml.v3/yaml.go", debian: "golang-gopkg-yaml.v3-dev" }],
  });
}

/** Runs every body through the oracle in one process; results in input order. */
export async function runOracle(binary: string, bodies: (string | Buffer)[]): Promise<OracleResult[]> {
  const child = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const done = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  child.stdin.end(`${bodies.map((b) => Buffer.from(b).toString("base64")).join("\n")}\n`);
  const code = await done;
  if (code !== 0) throw new Error(`oracle exited ${code}: ${Buffer.concat(err).toString()}`);
  const lines = Buffer.concat(out).toString().trim().split("\n");
  if (lines.length !== bodies.length) throw new Error(`oracle answered ${lines.length} of ${bodies.length} inputs`);
  return lines.map((l) => JSON.parse(l) as OracleResult);
}
