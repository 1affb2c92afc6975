#!/usr/bin/env node
// Entry point for the installed CLI. The TypeScript sources are compiled to dist/ by `npm run build`
// (run by `npm ci` through `prepare`), because Node does not strip types inside node_modules.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(
    `boot-assets: Node.js ${process.versions.node} is too old; Node 24 LTS is required (run through npm, which uses the pinned node package, or install Node 24)\n`,
  );
  process.exit(1);
}
await import("../dist/cli/main.js");
