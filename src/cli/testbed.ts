// `boot-assets testbed release --registry HOST:PORT [--talos-version V …] [--out DIR]`: builds the test bed's
// miniature Talos release and pushes and signs it. Progress on stderr; one `registry/repo:tag@digest` line per
// image on stdout.

import { join } from "node:path";
import type { Command } from "commander";
import { badRequest } from "../errors.ts";
import { testbedArches } from "../testbed/debian.ts";
import { defaultTestbedVersions, publishTestbedRelease } from "../testbed/release.ts";
import {
  addRegistryClientOptions,
  type RegistryClientCliOptions,
  registryClientFromOptions,
} from "./registry-options.ts";

interface ReleaseCliOptions extends RegistryClientCliOptions {
  registry: string;
  talosVersion?: string[];
  arch?: string[];
  out?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerTestbedCommands(program: Command): void {
  const testbed = program.command("testbed").description("The test bed: a miniature, signed Talos release");
  const release = testbed
    .command("release")
    .description(
      "Build the test bed release from Debian packages and push it, signed, to a registry under siderolabs/ " +
        "(imager, installer/installer-base, extensions, extensions and overlays catalogs)",
    )
    .requiredOption("--registry <host:port>", "registry to push to")
    .option(
      "--talos-version <version>",
      `Talos version to release, repeatable (default: ${defaultTestbedVersions.join(", ")})`,
      collect,
    )
    .option(
      "--arch <arch>",
      "architecture to release, repeatable: amd64, arm64 (default: both; amd64 is always released)",
      collect,
    )
    .option(
      "--out <dir>",
      "write cosign.key, cosign.pub, trusted_root.json and identity.json here, and keep the signing keys in DIR/keys (default: in the cache directory)",
    );
  addRegistryClientOptions(release).action(async (opts: ReleaseCliOptions) => {
    if (opts.registry.includes("/")) throw badRequest(`--registry ${opts.registry}: give host[:port] only`);
    const arches = testbedArches.filter((arch) => arch === "amd64" || (opts.arch ?? testbedArches).includes(arch));
    const unknown = (opts.arch ?? []).filter((arch) => !(testbedArches as readonly string[]).includes(arch));
    if (unknown.length > 0) throw badRequest(`--arch ${unknown.join(", ")}: the test bed releases amd64 and arm64`);
    const client = registryClientFromOptions(opts, [opts.registry]);
    const started = Date.now();
    try {
      const summary = await publishTestbedRelease({
        registry: opts.registry,
        client,
        versions: opts.talosVersion,
        arches,
        out: opts.out,
        // With --out, the keys live there too (keys/): that directory always signs with the same keys.
        ...(opts.out === undefined ? {} : { keysDir: join(opts.out, "keys") }),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      for (const version of summary.versions)
        for (const image of version.images) process.stdout.write(`${image.reference}\n`);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stderr.write(
        `released ${summary.versions.length} Talos version(s) on kernel ${summary.kernel.release} in ${seconds}s; ` +
          `${summary.signatures.written} signature(s) written, ${summary.signatures.present} already present\n`,
      );
      for (const file of summary.outFiles) process.stderr.write(`wrote ${file}\n`);
    } finally {
      await client.close();
    }
  });
}
