// Reliability, bad input (issue 19): hostile extension images and catalogs, signed as the test bed signs its
// release, pushed to the registry the factory pulls from, and asked for through the factory's HTTP API. Each
// must be refused with 502 (a broken source: the image's fault, not the caller's) naming the image and the rule, and nothing may be written outside the
// temporary directory the image is unpacked into: sentinel directories that the hostile paths aim at stay
// empty, and the data directory keeps no temporary entry and no cache entry of a refused image.
// The flattening rules are src/oci/flatten.ts's; the per-role limits src/factory/sources/imager-inputs.ts's
// and src/talos/catalog-image.ts's. Rows go to test-artifacts/reliability/hostile-images.json.

import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync, zstdCompressSync } from "node:zlib";
import type { Digest } from "../../src/oci/digest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { startRegistryServer } from "../../src/registry/server.ts";
import { signImage } from "../../src/signing/sign.ts";
import { ExtensionCatalog } from "../../src/talos/catalog.ts";
import { compatibleConstraint, extensionManifestYaml } from "../../src/testbed/extensions.ts";
import { publishTestbedRelease } from "../../src/testbed/release.ts";
import { loadOrCreateReleaseKeys } from "../../src/testbed/release-keys.ts";
import { bootAssetsCacheDir } from "../../src/tools/debian-packages.ts";
import {
  createSchematic,
  type FactoryUnderTest,
  type PublishedTestbed,
  startSeedFactory,
  waitFor200,
} from "../factory/service-harness.ts";
import { type RawEntry, rawTar } from "../oci/raw-tar.ts";
import { ResultRows } from "./harness.ts";

const version = "v1.10.3";
/** Every sentinel path a hostile entry aims at lives under here; it must stay empty. */
const sentinel = join(tmpdir(), `reliability-sentinel-${randomUUID()}`);
/** Enough `..` to climb from any directory the factory unpacks into up to `/`. */
const climb = "../".repeat(24);

const rows = new ResultRows(import.meta.url);

const sha256 = (data: Uint8Array): Digest => `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;

/** A 512-byte ustar header claiming `size` bytes (up to 8 GiB - 1, octal), for files whose data is not there. */
function ustarHeader(name: string, size: number, type = "0"): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, text: string) => header.write(text, offset, length, "ascii");
  field(0, 100, name);
  field(100, 8, "0000644\0");
  field(108, 8, "0000000\0");
  field(116, 8, "0000000\0");
  field(124, 12, `${size.toString(8).padStart(11, "0")}\0`);
  field(136, 12, "00000000000\0");
  field(148, 8, "        ");
  field(156, 1, type);
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return header;
}

/** A valid extension's files (manifest and one rootfs file), before the hostile entries. */
function extensionBase(name: string): RawEntry[] {
  return [
    {
      name: "manifest.yaml",
      content: extensionManifestYaml({
        name,
        version: "v1.0.0",
        description: `hostile test image ${name}`,
        constraint: compatibleConstraint,
      }),
    },
    { name: "rootfs/", type: "directory" },
    { name: "rootfs/usr/", type: "directory" },
    { name: "rootfs/usr/lib/", type: "directory" },
    { name: "rootfs/usr/lib/hostile.txt", content: "ok\n" },
  ];
}

/** A compressed layer: the tar's bytes, or parts concatenated as separate gzip members / zstd frames. */
interface Layer {
  mediaType: string;
  bytes: Buffer;
}
const gzipLayer = (tar: Buffer): Layer => ({ mediaType: MediaType.ociLayerGzip, bytes: gzipSync(tar) });

/**
 * A bomb: one file entry of `size` zero bytes after `entries`, compressed as repeated members/frames of one
 * compressed block of zeros (so building it costs one block, unpacking it the whole size).
 */
async function bombLayer(
  entries: RawEntry[],
  name: string,
  size: number,
  compression: "gzip" | "zstd",
): Promise<Layer> {
  const compress =
    compression === "gzip" ? (b: Buffer) => gzipSync(b, { level: 9 }) : (b: Buffer) => zstdCompressSync(b);
  const head = await rawTar(entries);
  // rawTar ends with two zero blocks; drop them so the bomb's entry follows.
  const body = head.subarray(0, head.length - 1024);
  const block = 64 * 1024 ** 2;
  const zeros = compress(Buffer.alloc(block));
  const parts = [compress(Buffer.concat([body, ustarHeader(name, size)]))];
  for (let done = 0; done < size; done += block) parts.push(zeros);
  return {
    mediaType: compression === "gzip" ? MediaType.ociLayerGzip : MediaType.ociLayerZstd,
    bytes: Buffer.concat(parts),
  };
}

interface HostileCase {
  /** The check's name in the report. */
  rule: string;
  repository: string;
  layers: () => Promise<Layer[]>;
  /** What the refusal must say (besides the image). */
  says: RegExp;
}

const ext = (slug: string) => `siderolabs/hostile-${slug}`;

const extensionCases: HostileCase[] = [
  {
    rule: "tar path traversal (../)",
    repository: ext("traversal"),
    layers: async () => [
      gzipLayer(
        await rawTar([...extensionBase("traversal"), { name: `${climb}${sentinel.slice(1)}/pwned`, content: "x" }]),
      ),
    ],
    says: /"\.\." component/,
  },
  {
    rule: "absolute path",
    repository: ext("absolute"),
    layers: async () => [
      gzipLayer(await rawTar([...extensionBase("absolute"), { name: `${sentinel}/pwned`, content: "x" }])),
    ],
    says: /absolute path/,
  },
  {
    rule: "symlink escaping the root, then a file through it",
    repository: ext("symlink-escape"),
    layers: async () => [
      gzipLayer(
        await rawTar([
          ...extensionBase("symlink-escape"),
          { name: "rootfs/usr/lib/escape", type: "symlink", linkname: `${climb}${sentinel.slice(1)}` },
          { name: "rootfs/usr/lib/escape/pwned", content: "x" },
        ]),
      ),
    ],
    says: /escapes the root/,
  },
  {
    rule: "absolute symlink (inside the tree), then a file written through it",
    repository: ext("symlink-through"),
    layers: async () => [
      gzipLayer(
        await rawTar([
          ...extensionBase("symlink-through"),
          { name: "rootfs/usr/lib/through", type: "symlink", linkname: sentinel },
          { name: "rootfs/usr/lib/through/pwned", content: "x" },
        ]),
      ),
    ],
    says: /is a symlink; refusing to write through it/,
  },
  {
    rule: "symlink in a lower layer, file through it in an upper layer",
    repository: ext("symlink-layers"),
    layers: async () => [
      gzipLayer(
        await rawTar([
          ...extensionBase("symlink-layers"),
          { name: "rootfs/usr/lib/up", type: "symlink", linkname: sentinel },
        ]),
      ),
      gzipLayer(await rawTar([{ name: "rootfs/usr/lib/up/pwned", content: "x" }])),
    ],
    says: /is a symlink; refusing to write through it/,
  },
  {
    rule: "hardlink escaping the root",
    repository: ext("hardlink-escape"),
    layers: async () => [
      gzipLayer(
        await rawTar([
          ...extensionBase("hardlink-escape"),
          { name: "rootfs/usr/lib/passwd", type: "link", linkname: `${climb}etc/passwd` },
        ]),
      ),
    ],
    says: /hardlink target .* is outside the tree/,
  },
  {
    rule: "hardlink to an absolute path",
    repository: ext("hardlink-absolute"),
    layers: async () => [
      gzipLayer(
        await rawTar([
          ...extensionBase("hardlink-absolute"),
          { name: "rootfs/usr/lib/shadow", type: "link", linkname: "/etc/shadow" },
        ]),
      ),
    ],
    says: /hardlink target .* is outside the tree/,
  },
  {
    rule: "character device node",
    repository: ext("chardev"),
    layers: async () => [
      gzipLayer(await rawTar([...extensionBase("chardev"), { name: "rootfs/usr/lib/mem", type: "character-device" }])),
    ],
    says: /unsupported entry type "character-device"/,
  },
  {
    rule: "block device node",
    repository: ext("blockdev"),
    layers: async () => [
      gzipLayer(await rawTar([...extensionBase("blockdev"), { name: "rootfs/usr/lib/sda", type: "block-device" }])),
    ],
    says: /unsupported entry type "block-device"/,
  },
  {
    rule: "fifo",
    repository: ext("fifo"),
    layers: async () => [
      gzipLayer(await rawTar([...extensionBase("fifo"), { name: "rootfs/usr/lib/pipe", type: "fifo" }])),
    ],
    says: /unsupported entry type "fifo"/,
  },
  {
    rule: "huge file: a header claiming 6 GiB with no data behind it",
    repository: ext("huge-header"),
    layers: async () => {
      const head = await rawTar(extensionBase("huge-header"));
      const tar = Buffer.concat([
        head.subarray(0, head.length - 1024),
        ustarHeader("rootfs/usr/lib/huge", 6 * 1024 ** 3),
      ]);
      return [gzipLayer(tar)];
    },
    says: /file is larger than \d+ bytes/,
  },
  {
    rule: "gzip decompression bomb (5 GiB of zeros in one file)",
    repository: ext("bomb-gzip"),
    layers: async () => [await bombLayer(extensionBase("bomb-gzip"), "rootfs/usr/lib/zeros", 5 * 1024 ** 3, "gzip")],
    says: /file is larger than \d+ bytes|image content exceeds/,
  },
  {
    rule: "zstd decompression bomb (2 GiB of zeros, under the per-file limit)",
    repository: ext("bomb-zstd"),
    layers: async () => [await bombLayer(extensionBase("bomb-zstd"), "rootfs/usr/lib/zeros", 2 * 1024 ** 3, "zstd")],
    says: /image content exceeds \d+ bytes \(at most 100× its \d+ compressed bytes/,
  },
];

const aliasMissing = ext("alias-missing");
const aliasCopied = ext("alias-copied");
/** Catalog entries whose digest is another image's (the test bed imager's). */
const aliasCases: { rule: string; repository: string; says: RegExp }[] = [
  {
    rule: "catalog digest of another repository's image (absent here)",
    repository: aliasMissing,
    says: /not found|unknown|no signature|signature/i,
  },
  {
    rule: "another image's manifest copied under the extension's name (signed only for its own)",
    repository: aliasCopied,
    says: /signature/i,
  },
];

interface Pushed {
  repository: string;
  tag: string;
  digest: Digest;
}

describe("hostile extension images and catalogs are refused, and nothing is written outside the unpack directory", {
  timeout: 600_000,
}, () => {
  let testbed: PublishedTestbed;
  let running: FactoryUnderTest;
  let base = "";
  const pushedExtensions = new Map<string, Pushed>();

  /** Pushes an image of `layers` (a linux/amd64 OCI manifest) and signs it with both test bed signers. */
  async function pushSigned(repository: string, tag: string, layers: Layer[]): Promise<Pushed> {
    const repo = testbed.server.store.repository(repository);
    for (const layer of layers)
      await repo.putBlob(layer.bytes, { digest: sha256(layer.bytes), size: layer.bytes.length });
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        // Not the real diff_ids (hashing gigabytes of zeros would dominate the test): nothing reads them here.
        rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l.bytes)) },
        config: {},
      }),
    );
    await repo.putBlob(config, { digest: sha256(config), size: config.length });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: sha256(l.bytes), size: l.bytes.length })),
      }),
    );
    const digest = await repo.putManifest(manifest, MediaType.ociManifest, tag);
    const keys = await loadOrCreateReleaseKeys(join(bootAssetsCacheDir(), "testbed", "keys"));
    for (const signer of [keys.keySigner, keys.keylessSigner])
      await signImage(repo, digest, signer, { dockerReference: `${testbed.registry}/${repository}` });
    return { repository, tag, digest };
  }

  before(async () => {
    await mkdir(sentinel, { recursive: true });
    const dir = await mkdtemp(join(tmpdir(), "hostile-images-"));
    const server = await startRegistryServer({ root: join(dir, "registry"), listen: "127.0.0.1:0", logger: false });
    testbed = {
      registry: server.address,
      outDir: join(dir, "out"),
      server,
      summary: await publishTestbedRelease({
        registry: server.address,
        repositoryFor: (name) => server.store.repository(name),
        out: join(dir, "out"),
        versions: [version],
      }),
      async stop() {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
    // The hostile extensions, then the version's catalog replaced by one listing them (before the factory
    // starts, so it reads this one).
    for (const hostile of extensionCases)
      pushedExtensions.set(hostile.repository, await pushSigned(hostile.repository, "v1.0.0", await hostile.layers()));
    // A manifest pointing at another image's digest: the catalog names a repository by the digest of an image
    // that lives elsewhere, once where the repository lacks it and once with the manifest copied in (unsigned
    // there: its signatures name the image it came from).
    const imager = testbed.summary.versions[0]?.images.find((i) => i.kind === "imager");
    assert.ok(imager !== undefined);
    pushedExtensions.set(aliasMissing, { repository: aliasMissing, tag: "v1.0.0", digest: imager.digest });
    const imagerManifest = await server.store.repository(imager.repository).getManifest(imager.digest);
    const copied = server.store.repository(aliasCopied);
    const manifestJson = JSON.parse(imagerManifest.body.toString("utf8")) as {
      config: { digest: Digest };
      layers: { digest: Digest }[];
    };
    for (const blob of [manifestJson.config, ...manifestJson.layers]) {
      const reader = await server.store.repository(imager.repository).getBlob(blob.digest);
      await copied.putBlob(reader.stream, { digest: blob.digest, size: reader.size });
    }
    await copied.putManifest(imagerManifest.body, imagerManifest.mediaType, "v1.0.0");
    pushedExtensions.set(aliasCopied, { repository: aliasCopied, tag: "v1.0.0", digest: imager.digest });
    const catalog = new ExtensionCatalog(
      [...pushedExtensions.values()].map((p) => ({
        name: p.repository,
        ref: `ghcr.io/${p.repository}:${p.tag}@${p.digest}`,
        host: "ghcr.io",
        tag: p.tag,
        digest: p.digest,
        author: "reliability suite",
        description: "hostile",
      })),
    );
    await pushSigned("siderolabs/extensions", version, [
      gzipLayer(
        await rawTar([
          { name: "image-digests", content: catalog.imageDigestsText() },
          { name: "descriptions.yaml", content: catalog.descriptionsYamlText() },
        ]),
      ),
    ]);
    running = await startSeedFactory(testbed);
    base = running.factory.url.replace(/\/$/, "");
    await waitFor200(`${base}/readyz`);
  });

  after(async () => {
    await running?.stop();
    await testbed?.stop();
    await rm(sentinel, { recursive: true, force: true });
    await rows.save();
  });

  const leftovers = (digests: readonly string[]) => leftoversIn(running.dataDir, digests);
  /** Temporary entries (`.tmp-*`) anywhere in a data directory, and cache entries of `digests`. */
  async function leftoversIn(dataDir: string, digests: readonly string[]): Promise<string[]> {
    const found: string[] = [];
    const keys = new Set(digests.map((d) => d.replace(":", "-")));
    const walk = async (dir: string, depth: number): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, entry.name);
        if (entry.name.startsWith(".tmp-") || keys.has(entry.name)) found.push(path);
        else if (entry.isDirectory() && depth < 4) await walk(path, depth + 1);
      }
    };
    await walk(dataDir, 0);
    return found;
  }

  for (const hostile of [...extensionCases, ...aliasCases])
    test(`extension image: ${hostile.rule}`, async () => {
      const id = await createSchematic(
        base,
        `customization:\n  systemExtensions:\n    officialExtensions:\n      - ${hostile.repository}\n`,
      );
      const res = await fetch(`${base}/image/${id}/${version}/initramfs-amd64.xz`, {
        signal: AbortSignal.timeout(300_000),
      });
      const text = (await res.text()).slice(0, 2000);
      const problems: string[] = [];
      if (res.status !== 502) problems.push(`answered ${res.status}, not 502`);
      if (!text.includes(hostile.repository)) problems.push("the answer does not name the image");
      if (!hostile.says.test(text)) problems.push(`the answer does not state the rule (${hostile.says})`);
      const escaped = await readdir(sentinel);
      if (escaped.length > 0) problems.push(`written outside: ${escaped.join(", ")}`);
      // The alias cases' digest is the imager's, whose cache entry the other builds rightly keep.
      const pushed = pushedExtensions.get(hostile.repository) as Pushed;
      const left = await leftovers(hostile.repository.includes("alias") ? [] : [pushed.digest]);
      if (left.length > 0) problems.push(`left in the data directory: ${left.join(", ")}`);
      rows.push({
        area: "input",
        check: `hostile extension image: ${hostile.rule}`,
        tried: 1,
        failures: problems.length === 0 ? 0 : 1,
        detail:
          problems.length === 0
            ? `${res.status}: ${text.trim().slice(0, 200)}`
            : `${problems.join("; ")} (${res.status}: ${text.slice(0, 200)})`,
      });
      assert.deepEqual(problems, [], `${res.status} ${text}`);
    });

  // Hostile catalogs: each replaces the version's extensions catalog, and a fresh factory (nothing cached)
  // is asked for the catalog; it must answer 502 (a broken source), naming the image and the rule.
  const catalogLine = (i: number) =>
    `ghcr.io/siderolabs/absurd-${i}:v1.0.0@sha256:${createHash("sha256").update(String(i)).digest("hex")}`;
  const catalogCases: { rule: string; layers: () => Promise<Layer[]>; says: RegExp }[] = [
    {
      rule: "a catalog layer with a path traversal entry",
      layers: async () => [
        gzipLayer(await rawTar([{ name: `${climb}${sentinel.slice(1)}/image-digests`, content: "x" }])),
      ],
      says: /"\.\." component/,
    },
    {
      rule: "image-digests a symlink escaping the root",
      layers: async () => [
        gzipLayer(await rawTar([{ name: "image-digests", type: "symlink", linkname: `${climb}etc/passwd` }])),
      ],
      says: /escapes the root/,
    },
    {
      rule: "a catalog layer with a device node",
      layers: async () => [gzipLayer(await rawTar([{ name: "image-digests", type: "character-device" }]))],
      says: /unsupported entry type/,
    },
    {
      rule: "a catalog decompression bomb (1 GiB of zeros)",
      layers: async () => [await bombLayer([], "image-digests", 1024 ** 3, "gzip")],
      says: /file is larger than \d+ bytes|image content exceeds/,
    },
    {
      rule: "a catalog with an absurd entry count (35,000 extensions)",
      layers: async () => [
        gzipLayer(
          await rawTar([
            { name: "image-digests", content: Array.from({ length: 35_000 }, (_, i) => catalogLine(i)).join("\n") },
          ]),
        ),
      ],
      says: /image-digests lists more than 10000 entries/,
    },
  ];
  for (const hostile of catalogCases)
    test(`extensions catalog: ${hostile.rule}`, async () => {
      const pushed = await pushSigned("siderolabs/extensions", version, await hostile.layers());
      const fresh = await startSeedFactory(testbed);
      const problems: string[] = [];
      let status = 0;
      let text = "";
      try {
        const freshBase = fresh.factory.url.replace(/\/$/, "");
        await waitFor200(`${freshBase}/readyz`);
        const res = await fetch(`${freshBase}/version/${version}/extensions/official`, {
          signal: AbortSignal.timeout(120_000),
        });
        status = res.status;
        text = (await res.text()).slice(0, 2000);
        if (status !== 502) problems.push(`answered ${status}, not 502`);
        if (!text.includes("siderolabs/extensions")) problems.push("the answer does not name the image");
        if (!hostile.says.test(text)) problems.push(`the answer does not state the rule (${hostile.says})`);
        const escaped = await readdir(sentinel);
        if (escaped.length > 0) problems.push(`written outside: ${escaped.join(", ")}`);
        const dataLeft = await leftoversIn(fresh.dataDir, [pushed.digest]);
        if (dataLeft.length > 0) problems.push(`left in the data directory: ${dataLeft.join(", ")}`);
      } finally {
        await fresh.stop();
      }
      rows.push({
        area: "input",
        check: `hostile extensions catalog: ${hostile.rule}`,
        tried: 1,
        failures: problems.length === 0 ? 0 : 1,
        detail:
          problems.length === 0
            ? `${status}: ${text.trim().slice(0, 200)}`
            : `${problems.join("; ")} (${status}: ${text.slice(0, 200)})`,
      });
      assert.deepEqual(problems, [], `${status} ${text}`);
    });

  test("the factory still serves a clean build afterwards (the hostile cases broke nothing)", async () => {
    const id = await createSchematic(base, "customization:\n  extraKernelArgs:\n    - after-hostile\n");
    const res = await fetch(`${base}/image/${id}/${version}/kernel-amd64`);
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    assert.ok(existsSync(dirname(running.dataDir)));
  });
});
