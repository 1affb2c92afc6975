// Disk image outputs: the compressions and formats upstream offers (pkg/imager/post.go, qemuimg, ova), each
// streamed from the raw image into the output file.
//   .xz      xz -0 -T0            .zst  zstd -T0 -18         .gz  gzip -6 without a timestamp
//            .xz and .zst chunk by chunk (./frames.ts, ./chunks.ts): one xz stream / zstd frame per chunk (zero
//            8 MiB blocks, the data between them cut where its content says), concatenated (RFC 8878 §3.1,
//            the .xz format §2: every decoder reads them as one image); each chunk's frame is kept in the
//            intermediate cache by the chunk's bytes, so a warm build compresses only the chunks this
//            schematic changed (issue 18). Cold and warm cut alike: the same image, the same bytes.
//   .tar.gz  tar of disk.raw (sparse, sorted, root-owned, mtime) then gzip
//   qcow2 / vpc (VHD) via qemu-img convert with the platform's -o options (Talos pkg/imager/out.go,
//            pkg/imager/qemuimg/qemuimg.go: `qemu-img convert -f raw -O <format> -o <options>`)
//   ova      streamOptimized vmdk + OVF + manifest (SHA-256 lines) in a tar (pkg/imager/ova/ova.go; ./ovf.ts)
// Every output is reproducible: the same raw image and mtime give the same bytes. qemu-img's qcow2 carries
// nothing time- or chance-dependent; its VHD footer (creation time, random unique id) and its VMDK
// descriptor (random CID) do, so those are set afterwards (src/formats/vhd.ts, src/formats/vmdk.ts): the
// time from the mtime every archive here uses, the ids from the raw image's SHA-256, read while qemu-img
// converts it.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import tar from "tar-stream";
import { setVhdIdentity } from "../../formats/vhd.ts";
import { setVmdkCid } from "../../formats/vmdk.ts";
import type { VersionRules } from "../../talos/version-rules.ts";
import { type QemuImgConvertOptions, qemuImgConvert } from "../../tools/qemu-img.ts";
import { tarSparseFile } from "../../tools/tar.ts";
import { sha256HexOfFile } from "../../util/file-digest.ts";
import type { IntermediateCache } from "../intermediate-cache.ts";
import { compressByChunks } from "./frames.ts";
import { ovaManifest, ovfDescriptor } from "./ovf.ts";

export type DiskCompression = "xz" | "zst" | "gz" | "tar.gz";

export interface OutputOptions {
  signal?: AbortSignal;
  /** Timestamp recorded in archives (seconds); default SOURCE_DATE_EPOCH, else now (as upstream). */
  mtime?: number;
  /** .xz / .zst: where compressed chunks are kept between builds (./frames.ts). */
  intermediateCache?: IntermediateCache;
  /** Progress lines (how many chunks were compressed). */
  log?: (line: string) => void;
}

function mtimeOf(options: OutputOptions): number {
  if (options.mtime !== undefined) return options.mtime;
  const env = process.env.SOURCE_DATE_EPOCH;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : Math.floor(Date.now() / 1000);
}

/** Compresses the raw image `raw` into `out`; .xz and .zst frames are made in a temp dir under `raw`'s. */
export async function compressDiskImage(
  raw: string,
  out: string,
  compression: DiskCompression,
  options: OutputOptions = {},
): Promise<void> {
  // Compressing a multi-GB image can take a while; the default 10-minute tool timeout is too short.
  const timeoutMs = 60 * 60 * 1000;
  switch (compression) {
    case "xz":
    case "zst": {
      const frames = await compressByChunks(raw, out, compression, {
        scratchDir: dirname(raw),
        timeoutMs,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.intermediateCache === undefined ? {} : { cache: options.intermediateCache }),
      });
      options.log?.(
        `.${compression} by chunks: ${frames.chunks} (${frames.zeroChunks} zero), ${frames.distinct} distinct, ${frames.compressed} compressed here`,
      );
      return;
    }
    case "gz":
      // Node's gzip header carries no timestamp (mtime 0), as `gzip --no-time`.
      return await pipeline(createReadStream(raw), createGzip({ level: 6 }), createWriteStream(out), {
        signal: options.signal,
      });
    case "tar.gz": {
      const archive = new PassThrough();
      const written = pipeline(archive, createGzip({ level: 6 }), createWriteStream(out), { signal: options.signal });
      await Promise.all([
        tarSparseFile(dirname(raw), basename(raw), archive, {
          memberName: "disk.raw",
          mtime: mtimeOf(options),
          signal: options.signal,
          timeoutMs,
        }),
        written,
      ]);
      return;
    }
  }
}

/** A conversion of a multi-GB image can take a while: the default 10-minute tool timeout is too short. */
function toolOptions(options: OutputOptions) {
  return { signal: options.signal, timeoutMs: 3600_000 };
}

/**
 * Runs `qemu-img convert` from the raw image and meanwhile reads the raw image's SHA-256 (the second reader
 * mostly hits the page cache). When either fails, the other is stopped and awaited before the error goes on.
 */
async function convertAndDigest(
  raw: string,
  out: string,
  convert: Pick<QemuImgConvertOptions, "to" | "formatOptions">,
  options: OutputOptions,
): Promise<string> {
  const stop = new AbortController();
  const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]);
  const jobs = [
    qemuImgConvert(raw, out, { from: "raw", ...convert, ...toolOptions({ ...options, signal }) }),
    sha256HexOfFile(raw, signal),
  ] as const;
  try {
    return (await Promise.all(jobs))[1];
  } catch (err) {
    stop.abort();
    await Promise.allSettled(jobs);
    throw err;
  }
}

/** `bytes` bytes derived from the raw image's digest for one use (`label`): the same image, the same ids. */
function derivedBytes(label: string, rawSha256: string, bytes: number): Buffer {
  return createHash("sha256").update(`talos disk image ${label}\0${rawSha256}`).digest().subarray(0, bytes);
}

/** A VHD unique id: 16 derived bytes marked as an RFC 9562 version 8 (custom) UUID. */
function vhdUniqueIdOf(rawSha256: string): Buffer {
  const id = Buffer.from(derivedBytes("vhd unique id", rawSha256, 16));
  id[6] = ((id[6] as number) & 0x0f) | 0x80;
  id[8] = ((id[8] as number) & 0x3f) | 0x80;
  return id;
}

/** A VMDK content id: 32 derived bits, never ffffffff (a parentCID's "no parent") nor fffffffe. */
function vmdkCidOf(rawSha256: string): number {
  const cid = derivedBytes("vmdk cid", rawSha256, 4).readUInt32BE(0);
  return cid >= 0xffff_fffe ? cid & 0x7fff_ffff : cid;
}

/** qcow2 or VHD (qemu's "vpc") from the raw image. */
export async function convertDiskImage(
  raw: string,
  out: string,
  format: "qcow2" | "vpc",
  formatOptions: string | undefined,
  options: OutputOptions = {},
): Promise<void> {
  if (format === "qcow2") {
    // qemu-img's qcow2 is the same for the same raw image and options (no time, no random id).
    await qemuImgConvert(raw, out, { from: "raw", to: format, formatOptions, ...toolOptions(options) });
    return;
  }
  const digest = await convertAndDigest(raw, out, { to: format, formatOptions }, options);
  await setVhdIdentity(out, { timestamp: mtimeOf(options), uniqueId: vhdUniqueIdOf(digest) });
}

export const ovaVmdkOptions = "compat6,subformat=streamOptimized,adapter_type=lsilogic";

/**
 * An OVA (tar of disk.ovf, disk.mf, disk.vmdk) from the raw image; `diskSizeBytes` is the VM's disk size and
 * `rules` the Talos version's (the OVF's hardware version and disk.EnableUUID).
 */
export async function buildOva(
  raw: string,
  out: string,
  options: OutputOptions & {
    diskSizeBytes: number;
    scratchDir: string;
    rules: Pick<VersionRules, "ovaHardwareVersion" | "ovaDiskEnableUuid">;
  },
): Promise<void> {
  const work = await mkdtemp(join(options.scratchDir, "ova-"));
  try {
    const vmdk = join(work, "disk.vmdk");
    // Upstream's options before it moved to open-vmdk's vmdk-convert in Talos 1.11 (pkg/imager/ova/ova.go
    // at 7c057edd5^): hardware version 6, an LSI Logic adapter, one streamOptimized extent. From 1.11 upstream
    // makes the VMDK with open-vmdk's vmdk-convert, which Debian does not package: qemu-img stays for every version.
    const digest = await convertAndDigest(raw, vmdk, { to: "vmdk", formatOptions: ovaVmdkOptions }, options);
    await setVmdkCid(vmdk, vmdkCidOf(digest));
    const vmdkBytes = (await stat(vmdk)).size;
    const ovf = ovfDescriptor({
      vmdkName: "disk.vmdk",
      vmdkBytes,
      capacityMiB: Math.floor(options.diskSizeBytes / (1024 * 1024)),
      rules: options.rules,
    });
    const ovfSha = createHash("sha256").update(ovf).digest("hex");
    const mf = ovaManifest({
      vmdkName: "disk.vmdk",
      vmdkSha256: await sha256HexOfFile(vmdk),
      ovfName: "disk.ovf",
      ovfSha256: ovfSha,
    });
    const mtime = new Date(mtimeOf(options) * 1000);
    const pack = tar.pack();
    const written = pipeline(pack, createWriteStream(out), { signal: options.signal });
    // Fixed headers (no owner names, the one mtime) in upstream's member order: the same bytes every time.
    const header = (name: string, size: number) => ({ name, size, mtime, mode: 0o644, uid: 0, gid: 0 });
    pack.entry(header("disk.ovf", Buffer.byteLength(ovf)), ovf);
    pack.entry(header("disk.mf", Buffer.byteLength(mf)), mf);
    const entry = pack.entry(header("disk.vmdk", vmdkBytes));
    await pipeline(createReadStream(vmdk), entry);
    pack.finalize();
    await written;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
