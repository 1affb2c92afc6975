// Helpers for the registry front's tests (test/factory/registry-front.test.ts, test/boot/installer.boot.test.ts):
// a factory started from the seed command line without its installer repositories and Secure Boot, so that
// installers live in the embedded store and the factory answers their manifests and blobs itself; and the
// files of a pulled layer.

import { gunzipSync } from "node:zlib";
import tar from "tar-stream";
import { type FactoryUnderTest, type PublishedTestbed, seedArgv, startFactoryUnderTest } from "./service-harness.ts";

/**
 * The seed without installer repositories (the flags and the values they take), and without Secure Boot unless
 * `secureBoot`.
 */
export function startEmbeddedFactory(
  testbed: PublishedTestbed,
  options: { secureBoot?: boolean } = {},
): Promise<FactoryUnderTest> {
  const dropWithValue = new Set(["-installer-external-repository", "-installer-internal-repository"]);
  if (!options.secureBoot)
    for (const flag of ["-secureboot-pcr-key-path", "-secureboot-signing-cert-path", "-secureboot-signing-key-path"])
      dropWithValue.add(flag);
  return startFactoryUnderTest((keys, dataDir) => {
    const argv: string[] = [];
    const seed = seedArgv(testbed, keys, dataDir);
    for (let i = 0; i < seed.length; i++) {
      const arg = seed[i] as string;
      if (dropWithValue.has(arg)) i++;
      else if (arg !== "-secureboot" || options.secureBoot) argv.push(arg);
    }
    return argv;
  });
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
