import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { badRequest, integrity } from "../errors.ts";

/** A content digest, always written `algorithm:hex`. Only sha256 is produced; sha512 is accepted on read. */
export type Digest = `sha256:${string}` | `sha512:${string}`;

const digestPattern = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(value: string): value is Digest {
  return digestPattern.test(value);
}

/** Validates a digest string, raising a BadRequest with code DIGEST_INVALID that names the value. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) {
    const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
    throw badRequest(`invalid digest "${shown}": expected sha256:<64 hex> or sha512:<128 hex>`, "DIGEST_INVALID");
  }
  return value;
}

export function digestAlgorithm(digest: Digest): "sha256" | "sha512" {
  return digest.startsWith("sha512:") ? "sha512" : "sha256";
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(":") + 1);
}

export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * A pass-through stream that hashes and counts what flows through it and, at the end, fails the pipeline
 * if the content does not match the expected digest or size. Nothing downstream should treat the data as
 * good before this stream has ended without error.
 */
export class VerifyingStream extends Transform {
  readonly expected: Digest | undefined;
  readonly expectedSize: number | undefined;
  private readonly hash: Hash;
  private bytes = 0;

  constructor(expected?: Digest, expectedSize?: number) {
    super();
    this.expected = expected;
    this.expectedSize = expectedSize;
    this.hash = createHash(expected ? digestAlgorithm(expected) : "sha256");
  }

  get size(): number {
    return this.bytes;
  }

  /** The digest of everything seen; only meaningful after the stream has ended. */
  digest(): Digest {
    const algorithm = this.expected ? digestAlgorithm(this.expected) : "sha256";
    return `${algorithm}:${this.hash.copy().digest("hex")}` as Digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.expectedSize !== undefined && this.bytes > this.expectedSize) {
      callback(integrity(`content is larger than the expected ${this.expectedSize} bytes`, "SIZE_INVALID"));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      callback(integrity(`content is ${this.bytes} bytes, expected ${this.expectedSize}`, "SIZE_INVALID"));
      return;
    }
    const actual = this.digest();
    if (this.expected !== undefined && actual !== this.expected) {
      callback(integrity(`content digest ${actual} does not match the expected ${this.expected}`, "DIGEST_INVALID"));
      return;
    }
    callback();
  }
}
