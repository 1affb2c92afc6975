// Helpers for the registry front's tests (test/factory/registry-front.test.ts, test/boot/installer.boot.test.ts):
// a factory started from the seed command line without its installer repositories and Secure Boot, so that
// installers live in the embedded store and the factory answers their manifests and blobs itself; and the
// files of a pulled layer.

import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import tar from "tar-stream";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import { startFactory } from "../../src/factory/run.ts";
import { makeKeyFiles } from "./config-fixtures.ts";
import { capturingLogger, type FactoryUnderTest, type PublishedTestbed, seedArgv } from "./service-harness.ts";

export /** The seed without installer repositories and Secure Boot (the flags and the values they take). */
async function startEmbeddedFactory(testbed: PublishedTestbed): Promise<FactoryUnderTest> {
  const keys = await makeKeyFiles();
  const dataDir = join(keys.dir, "data");
  const dropWithValue = new Set([
    "-installer-external-repository",
    "-installer-internal-repository",
    "-secureboot-pcr-key-path",
    "-secureboot-signing-cert-path",
    "-secureboot-signing-key-path",
  ]);
  const argv: string[] = [];
  const seed = seedArgv(testbed, keys, dataDir);
  for (let i = 0; i < seed.length; i++) {
    const arg = seed[i] as string;
    if (dropWithValue.has(arg)) i++;
    else if (arg !== "-secureboot") argv.push(arg);
  }
  const logs: Array<Record<string, unknown>> = [];
  const config = await parseFactoryCommandLine(argv, {});
  const factory = await startFactory(config, { logger: capturingLogger(logs), print: () => {}, processMetrics: false });
  return {
    factory,
    logs,
    keys,
    dataDir,
    async stop() {
      await factory.close();
      await keys.cleanup();
    },
  };
}

/** The regular files of a gzip layer, by name. */
export async function layerFileContents(gz: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      if (entry.header.type === "file") {
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
        files.set(entry.header.name, Buffer.concat(chunks));
      } else entry.resume();
    }
  })();
  extract.end(gunzipSync(gz));
  await done;
  return files;
}
