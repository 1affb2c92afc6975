// Builds (once, cached under .cache/) and runs the Go oracle in main.go: gopkg.in/yaml.v3 itself, from
// Debian's golang-go and golang-gopkg-yaml.v3-dev, built offline in GOPATH mode (no module downloads).

import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "../../..");
const GOPATH = "/usr/share/gocode";

export type OracleResult = { ok: true; yaml: string } | { ok: false; error: string };

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

/** The oracle binary's path, building it if main.go or the Go toolchain changed. */
export function buildOracle(): string {
  const cacheDir = path.join(repoRoot, ".cache", "go-schematic");
  mkdirSync(cacheDir, { recursive: true });
  let goVersion: string;
  try {
    goVersion = execFileSync("go", ["version"], { env: goEnv(cacheDir) })
      .toString()
      .trim();
  } catch {
    throw new Error("the Go oracle needs Debian packages golang-go and golang-gopkg-yaml.v3-dev (go not found)");
  }
  if (!existsSync(path.join(GOPATH, "src/gopkg.in/yaml.v3/yaml.go")))
    throw new Error("the Go oracle needs Debian package golang-gopkg-yaml.v3-dev (yaml.v3 sources not found)");
  const source = readFileSync(path.join(here, "main.go"));
  const key = createHash("sha256").update(source).update(goVersion).digest("hex").slice(0, 16);
  const binary = path.join(cacheDir, `oracle-${key}`);
  if (!existsSync(binary)) {
    const tmp = `${binary}.${process.pid}.tmp`;
    execFileSync("go", ["build", "-o", tmp, path.join(here, "main.go")], { env: goEnv(cacheDir), stdio: "pipe" });
    renameSync(tmp, binary);
  }
  return binary;
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
