// The package's version, for `boot-assets --version` and the factory's Server header.

import { readFileSync } from "node:fs";

/** The version in package.json (two levels up from src/util and from dist/util alike); "dev" when unreadable. */
export function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: unknown;
    };
    return typeof manifest.version === "string" ? manifest.version : "dev";
  } catch {
    return "dev";
  }
}
