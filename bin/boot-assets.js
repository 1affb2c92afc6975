#!/usr/bin/env node
// Entry point of the boot-assets CLI.
// - From a checkout, it runs the TypeScript sources directly (Node 24 strips types), so what runs is always
//   what is in src/.
// - Installed as a dependency, it runs dist/, compiled by `npm run build` (`prepare`), because Node does not
//   strip types inside node_modules.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(
    `boot-assets: Node.js ${process.versions.node} is too old; Node 24 LTS is required (run through npm, which uses the pinned node package, or install Node 24)\n`,
  );
  process.exit(1);
}
const source = new URL("../src/cli/main.ts", import.meta.url);
const fromCheckout = existsSync(fileURLToPath(source)) && !fileURLToPath(source).includes("/node_modules/");
await import(fromCheckout ? source.href : "../dist/cli/main.js");
