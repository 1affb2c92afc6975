// zstd compression through Node's zlib, with bytes that depend only on the input and the parameters.
//
// Node 24's zstd stream appends an empty zstd frame when `end()` arrives while writes are still queued
// (nodejs/node#66078: "createZstdCompress appends an empty frame when end() is called with writes still
// queued"). Inside a pipeline, whether writes are queued at the end depends on timing, so the same input
// came out with or without 13 trailing bytes on a loaded machine. The wrapper below hands the compressor
// one chunk at a time and ends it only after the last chunk has been taken: nothing is ever queued at the
// end, and the output is one frame.

import { Duplex } from "node:stream";
import { createZstdCompress, type ZstdOptions } from "node:zlib";

/** A zstd compressor (one frame) whose output is the same however the input is chunked or timed. */
export function createZstdCompressor(options: ZstdOptions): Duplex {
  const zstd = createZstdCompress(options);
  const stream = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      // zlib calls back once the chunk is consumed; until then the next write waits (and backpressure holds).
      zstd.write(chunk, (err) => callback(err ?? undefined));
    },
    final(callback) {
      zstd.end();
      callback();
    },
    read() {
      zstd.resume();
    },
    destroy(err, callback) {
      zstd.destroy();
      callback(err);
    },
  });
  zstd.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) zstd.pause();
  });
  zstd.on("end", () => stream.push(null));
  zstd.on("error", (err) => stream.destroy(err));
  return stream;
}
