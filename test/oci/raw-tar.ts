// Tar layers for tests, written with tar-stream directly so a test can produce any header, hostile ones
// included, and PAX records (`SCHILY.xattr.*` as Talos' extension images carry SELinux labels).

import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import tar from "tar-stream";

export interface RawEntry {
  name: string;
  /** Default "file". */
  type?: tar.Header["type"];
  content?: string;
  linkname?: string;
  /** Default 0o755 for a directory, 0o644 otherwise. */
  mode?: number;
  /** PAX extended header records of the entry. */
  pax?: Record<string, string>;
}

/** Every entry's mtime: 2001-09-09T01:46:40Z. */
export const rawTarMtimeMs = 1_000_000_000_000;

/** An uncompressed tar of `entries`, in order. */
export async function rawTar(entries: readonly RawEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = buffer(Readable.from(pack));
  for (const e of entries) {
    const header = {
      name: e.name,
      type: e.type ?? "file",
      mode: e.mode ?? (e.type === "directory" ? 0o755 : 0o644),
      mtime: new Date(rawTarMtimeMs),
      ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
      ...(e.pax === undefined ? {} : { pax: e.pax }),
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, e.content ?? "", (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return done;
}
