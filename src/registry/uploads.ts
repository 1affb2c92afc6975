// Blob upload sessions. The bytes go to a temp file under the store's tmp dir; the running sha256 lives in
// this process (Node's Hash cannot be serialised), so sessions do not survive a restart — a client then gets
// BLOB_UPLOAD_UNKNOWN and starts again, which every client handles. Each chunk is all-or-nothing: if it fails
// half way (socket killed, size limit), the file is cut back and the hash restored to before the chunk.

import { createHash, type Hash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rm, truncate } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, badRequest, notFound } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";

export interface UploadSession {
  readonly id: string;
  readonly repository: string;
  /** Who started it (the remote address over HTTP), for the per-client cap. */
  readonly client: string;
  readonly path: string;
  /** Bytes received so far. */
  size: number;
  startedAt: Date;
  lastActivity: number;
  /** True while a chunk is being written: a second concurrent chunk is refused. */
  busy: boolean;
  hash: Hash;
}

/** Raised when a chunk does not start where the upload stands (HTTP 416). */
export function rangeInvalid(message: string): AppError {
  return new AppError("BadRequest", message, { code: "BLOB_UPLOAD_INVALID", detail: { status: 416 } });
}

export function uploadUnknown(id: string): AppError {
  return notFound(`blob upload ${JSON.stringify(id.slice(0, 80))} is unknown or has expired`, "BLOB_UPLOAD_UNKNOWN");
}

/** Hashes and counts a chunk, failing once the upload would pass the size limit. */
class ChunkMeter extends Transform {
  private readonly hash: Hash;
  private readonly remaining: number;
  bytes = 0;

  constructor(hash: Hash, remaining: number) {
    super({ highWaterMark: 1024 * 1024 });
    this.hash = hash;
    this.remaining = remaining;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.remaining) {
      callback(new AppError("BadRequest", "blob exceeds the size limit of this registry", { code: "SIZE_INVALID" }));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

export class UploadSessions {
  private readonly sessions = new Map<string, UploadSession>();
  private readonly tmpDir: string;
  private readonly maxBlobBytes: number;
  private readonly idleTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly maxSessionsPerClient: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    tmpDir: string,
    options: { maxBlobBytes: number; idleTimeoutMs: number; maxSessions: number; maxSessionsPerClient: number },
  ) {
    this.tmpDir = tmpDir;
    this.maxSessions = options.maxSessions;
    this.maxSessionsPerClient = options.maxSessionsPerClient;
    this.maxBlobBytes = options.maxBlobBytes;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.sweeper = setInterval(() => void this.sweep(), Math.min(60_000, Math.max(1000, this.idleTimeoutMs / 2)));
    this.sweeper.unref();
  }

  get count(): number {
    return this.sessions.size;
  }

  /**
   * Opens a session for `client`. Each holds a temp file, so they are bounded: per client (over its cap, that
   * client is told to slow down: 429) and in all — where the least recently active idle session of anyone
   * gives way, so idle sessions never stop another client's push.
   */
  async start(repository: string, client = "local"): Promise<UploadSession> {
    let own = 0;
    for (const session of this.sessions.values()) if (session.client === client) own++;
    if (own >= this.maxSessionsPerClient)
      throw new AppError(
        "BadRequest",
        `too many blob uploads in progress from ${client} (${this.maxSessionsPerClient}); finish or cancel some`,
        { code: "TOOMANYREQUESTS", detail: { status: 429 } },
      );
    if (this.sessions.size >= this.maxSessions) {
      let oldest: UploadSession | undefined;
      for (const session of this.sessions.values())
        if (!session.busy && (oldest === undefined || session.lastActivity < oldest.lastActivity)) oldest = session;
      if (oldest === undefined)
        throw new AppError("BadRequest", `too many blob uploads in progress (${this.maxSessions}), all receiving`, {
          code: "TOOMANYREQUESTS",
          detail: { status: 429 },
        });
      await this.discard(oldest);
    }
    const id = randomUUID();
    const path = join(this.tmpDir, `upload-${id}`);
    const handle = await open(path, "wx", 0o644);
    await handle.close();
    const now = Date.now();
    const session: UploadSession = {
      id,
      repository,
      client,
      path,
      size: 0,
      startedAt: new Date(now),
      lastActivity: now,
      busy: false,
      hash: createHash("sha256"),
    };
    this.sessions.set(id, session);
    return session;
  }

  /** The session, if it exists and belongs to `repository`. */
  get(id: string, repository: string): UploadSession {
    const session = this.sessions.get(id);
    if (!session || session.repository !== repository) throw uploadUnknown(id);
    session.lastActivity = Date.now();
    return session;
  }

  /**
   * Appends `source` to the upload. `expectedStart` (from Content-Range) must equal the bytes received so far;
   * `expectedLength`, when known, must equal what arrives.
   */
  async append(session: UploadSession, source: Readable, expectedStart?: number, expectedLength?: number) {
    if (session.busy) throw rangeInvalid(`upload ${session.id} is already receiving a chunk`);
    if (expectedStart !== undefined && expectedStart !== session.size)
      throw rangeInvalid(`chunk starts at byte ${expectedStart} but the upload has ${session.size} bytes`);
    session.busy = true;
    const before = session.size;
    const hashBefore = session.hash.copy();
    const meter = new ChunkMeter(session.hash, this.maxBlobBytes - before);
    try {
      await pipeline(source, meter, createWriteStream(session.path, { flags: "a", highWaterMark: 1024 * 1024 }));
      if (expectedLength !== undefined && meter.bytes !== expectedLength)
        throw badRequest(`chunk has ${meter.bytes} bytes, expected ${expectedLength}`, "SIZE_INVALID");
      session.size = before + meter.bytes;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
        // A full disk: the whole upload goes (its space freed at once) and the client hears why.
        await this.discard(session);
        throw new AppError("Internal", "no space left on the registry's storage: the upload was discarded", {
          code: "UNKNOWN",
          detail: { status: 507 },
          cause: err,
        });
      }
      // Undo the chunk so the session stays usable and consistent.
      session.hash = hashBefore;
      session.size = before;
      await truncate(session.path, before).catch(() => undefined);
      throw err;
    } finally {
      session.busy = false;
      session.lastActivity = Date.now();
    }
  }

  /** The digest of everything received (sha256 is kept running; sha512 re-reads the file). */
  async digestOf(session: UploadSession, algorithm: "sha256" | "sha512"): Promise<Digest> {
    if (algorithm === "sha256") return `sha256:${session.hash.copy().digest("hex")}`;
    const hash = createHash(algorithm);
    for await (const chunk of createReadStream(session.path, { highWaterMark: 1024 * 1024 })) hash.update(chunk);
    return `${algorithm}:${hash.digest("hex")}` as Digest;
  }

  /** Forgets the session; its temp file is removed unless it was already moved into the store. */
  async discard(session: UploadSession): Promise<void> {
    this.sessions.delete(session.id);
    await rm(session.path, { force: true });
  }

  /** Forgets a session whose temp file has been renamed into the store. */
  forget(session: UploadSession): void {
    this.sessions.delete(session.id);
  }

  async sweep(now = Date.now()): Promise<void> {
    for (const session of [...this.sessions.values()]) {
      if (!session.busy && now - session.lastActivity > this.idleTimeoutMs) await this.discard(session);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const session of [...this.sessions.values()]) await this.discard(session);
  }
}
