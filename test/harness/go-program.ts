// Builds a small Go program (one main.go) with Debian's Go toolchain and Debian's Go library packages, offline
// in GOPATH mode (no module downloads), once: the binary is cached under .cache/<cacheDir>/ by the hash of
// its source and of `go version`, so a changed program or toolchain builds anew.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
/** Where Debian's golang-*-dev packages put their sources. */
const GOPATH = "/usr/share/gocode";

export interface GoProgram {
  /** How messages name it, e.g. "the chart renderer". */
  what: string;
  /** Absolute path of its main.go. */
  source: string;
  /** Directory under .cache/ holding its builds. */
  cacheDir: string;
  /** The binary's name before "-<hash>". */
  binaryName: string;
  /** The Debian packages it imports, each with a file under GOPATH that shows it is installed. */
  packages: ReadonlyArray<{ file: string; debian: string }>;
}

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

/** The program's binary, built when its source or the Go toolchain changed. */
export function buildGoProgram(program: GoProgram): string {
  const cacheDir = path.join(repoRoot, ".cache", program.cacheDir);
  mkdirSync(cacheDir, { recursive: true });
  let goVersion: string;
  try {
    goVersion = execFileSync("go", ["version"], { env: goEnv(cacheDir) })
      .toString()
      .trim();
  } catch {
    throw new Error(`${program.what} needs Debian package golang-go (go not found)`);
  }
  for (const { file, debian } of program.packages)
    if (!existsSync(path.join(GOPATH, file)))
      throw new Error(`${program.what} needs Debian package ${debian} (${file} not found under ${GOPATH})`);
  const source = readFileSync(program.source);
  const key = createHash("sha256").update(source).update(goVersion).digest("hex").slice(0, 16);
  const binary = path.join(cacheDir, `${program.binaryName}-${key}`);
  if (!existsSync(binary)) {
    const tmp = `${binary}.${process.pid}.tmp`;
    execFileSync("go", ["build", "-o", tmp, program.source], { env: goEnv(cacheDir), stdio: "pipe" });
    renameSync(tmp, binary);
  }
  return binary;
}
