// The schematic service: creates schematics (parse, canonicalize, store) and reads them back by ID.
//
// Storage follows upstream image-factory (internal/schematic/storage/registry): each schematic is an image in
// the schematic repository whose single layer, of media type `schematicMediaType`, is the canonical YAML,
// tagged with the ID. The ID is the layer blob's sha256 hex, so a schematic is read back as that blob (a
// repository written by upstream reads the same) and the store checks its bytes against the ID. The manifest
// only exists so registries keep the blob (no garbage collection of unreferenced blobs); it has upstream's
// shape (go-containerregistry's empty image plus one layer: Docker schema 2 manifest and config).
//
// In front of the repository, the schematic memo (docs/caches.md): an LRU of known schematics, a memo of unknown IDs (an ID
// asked for before it is created is found again once the TTL passes), and single-flight per ID so a burst of
// requests for one schematic reads the repository once.

import type { Readable } from "node:stream";
import { badRequest, integrity, isAppError, notFound } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import { sha256Digest } from "../oci/digest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import type { Repository } from "../oci/repository.ts";
import { isSchematicId } from "../talos/asset-path.ts";
import {
  canonicalYaml,
  MAX_SCHEMATIC_BYTES,
  parseSchematic,
  type Schematic,
  schematicMediaType,
} from "../talos/schematic.ts";
import { SingleFlight } from "../util/concurrency.ts";
import type { FactoryMetrics } from "./metrics.ts";
import type { JournalRecord, SchematicJournal } from "./schematic-journal.ts";

/**
 * One size limit for what is accepted and what is read back: a schematic whose canonical YAML is larger than
 * a request body may be is refused when created, so whatever is stored can be read (and parsed) again.
 */
const maxStoredSchematicBytes = MAX_SCHEMATIC_BYTES;
/** go-containerregistry's zero time, which its empty image carries. */
const zeroTime = "0001-01-01T00:00:00Z";

export interface CreatedSchematic {
  id: string;
  /** The canonical YAML. */
  yaml: string;
  /** false when the schematic was already stored (a duplicate create). */
  created: boolean;
}

export interface StoredSchematic {
  id: string;
  yaml: string;
  schematic: Schematic;
}

export interface SchematicServiceOptions {
  repository: Repository;
  /** Most schematics kept in memory. */
  memoCapacity: number;
  /** Most bytes of canonical YAML kept in memory (default 64 MiB), so a few large schematics cannot pin it. */
  memoMaxBytes?: number;
  /** How long an unknown ID is answered from memory as unknown; 0 disables the memo of unknown IDs. */
  negativeTtlMs: number;
  metrics?: Pick<
    FactoryMetrics,
    "schematicGets" | "schematicCreates" | "schematicDuplicateCreates" | "schematicMemoSize"
  >;
  /** Clock for the memo of unknown IDs (tests). */
  now?: () => number;
  /**
   * The embedded store's journal (schematic-journal.ts): a create is answered once its line is synced, and
   * the schematic is written to the repository in the background. Without it creates write through.
   */
  journal?: SchematicJournal;
  /** The background writer failed to store a journalled schematic (it retries). */
  onWriteError?: (id: string, err: unknown) => void;
}

/**
 * Most schematics (and bytes of YAML) answered from the journal but not yet in the repository; beyond either,
 * creates write through and wait, so a repository that cannot keep up slows creates instead of filling memory.
 */
const maxPendingWrites = 1024;
const maxPendingBytes = 64 * 1024 * 1024;
/** The journal is emptied once its stored records pass this (and at a clean stop). */
const journalKeepBytes = 256 * 1024;

/** The background writer's retry delays after a failure: doubling from 1 s to 30 s. */
const retryMinMs = 1000;
const retryMaxMs = 30_000;

export const schematicNotFoundMessage = "schematic not found";

function schematicNotFound(): Error {
  return notFound(schematicNotFoundMessage, "SCHEMATIC_NOT_FOUND");
}

/** The image config upstream's schematic images carry (go-containerregistry's empty image, one layer appended). */
export function schematicImageConfig(id: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "",
      created: zeroTime,
      history: [{ created: zeroTime }],
      os: "",
      rootfs: { type: "layers", diff_ids: [`sha256:${id}`] },
      config: {},
    }),
  );
}

/** The manifest of a schematic image. */
export function schematicImageManifest(
  layer: { digest: Digest; size: number },
  config: { digest: Digest; size: number },
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, size: config.size, digest: config.digest },
      layers: [{ mediaType: schematicMediaType, size: layer.size, digest: layer.digest }],
    }),
  );
}

async function readBounded(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw integrity(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** The schematic repository as upstream lays it out: put and get by ID, nothing cached. */
export class SchematicStorage {
  readonly repository: Repository;

  constructor(repository: Repository) {
    this.repository = repository;
  }

  /** The canonical YAML stored under `id`, or undefined when there is none. */
  async get(id: string): Promise<string | undefined> {
    let blob: Awaited<ReturnType<Repository["getBlob"]>>;
    try {
      blob = await this.repository.getBlob(`sha256:${id}`);
    } catch (err) {
      if (isAppError(err, "NotFound")) return undefined;
      throw err;
    }
    // The reader fails the stream when the bytes do not hash to the ID.
    const bytes = await readBounded(
      blob.stream,
      maxStoredSchematicBytes,
      `schematic ${id} in ${this.repository.displayName}`,
    );
    return bytes.toString("utf8");
  }

  /** Whether `id` is stored (its blob is there). */
  async has(id: string): Promise<boolean> {
    return (await this.repository.statBlob(`sha256:${id}`)) !== undefined;
  }

  /** Stores the canonical YAML under its ID: layer, config, then the tagged manifest, so a tag never dangles. */
  async put(id: string, yaml: string): Promise<void> {
    const layerBytes = Buffer.from(yaml, "utf8");
    const layer = { digest: `sha256:${id}` as Digest, size: layerBytes.length };
    if (sha256Digest(layerBytes) !== layer.digest) throw new Error(`schematic ${id}: ID is not the digest of its YAML`);
    const configBytes = schematicImageConfig(id);
    const config = { digest: sha256Digest(configBytes), size: configBytes.length };
    await Promise.all([this.repository.putBlob(layerBytes, layer), this.repository.putBlob(configBytes, config)]);
    await this.repository.putManifest(schematicImageManifest(layer, config), MediaType.dockerManifest, id);
  }
}

/** Creates and reads schematics through the schematic memo: an in-memory LRU of known schematics and a memo of unknown IDs. */
export class SchematicService {
  readonly storage: SchematicStorage;
  private readonly capacity: number;
  private readonly maxBytes: number;
  /** UTF-16 code units are counted as 2 bytes: what the strings hold in memory. */
  private knownBytes = 0;
  private readonly negativeTtlMs: number;
  private readonly metrics: SchematicServiceOptions["metrics"];
  private readonly now: () => number;
  /** id → canonical YAML; Map order is recency (oldest first). */
  private readonly known = new Map<string, string>();
  /** id → time until which it is answered as unknown; oldest first. */
  private readonly unknown = new Map<string, number>();
  private readonly loading = new SingleFlight<string, string | undefined>();
  private readonly storing = new SingleFlight<string, boolean>();
  private readonly journal: SchematicJournal | undefined;
  private readonly onWriteError: SchematicServiceOptions["onWriteError"];
  /** Journalled schematics not yet in the repository: id → canonical YAML, oldest first. */
  private readonly pending = new Map<string, string>();
  /** The pending schematics' YAML; UTF-16 code units count as 2 bytes, as in the memo. */
  private pendingBytes = 0;
  private writer: Promise<void> | undefined;
  private retryMs = retryMinMs;
  private retryTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(options: SchematicServiceOptions) {
    this.storage = new SchematicStorage(options.repository);
    this.capacity = Math.max(1, options.memoCapacity);
    this.maxBytes = Math.max(1, options.memoMaxBytes ?? 64 * 1024 * 1024);
    this.negativeTtlMs = Math.max(0, options.negativeTtlMs);
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
    this.journal = options.journal;
    this.onWriteError = options.onWriteError;
  }

  /**
   * Stores the records a journal kept from the last run (each one not in the repository yet), then empties the
   * journal. Run before the factory answers.
   */
  async recover(records: readonly JournalRecord[]): Promise<number> {
    let stored = 0;
    for (const { id, yaml } of records) {
      if (await this.storage.has(id)) continue;
      await this.storage.put(id, yaml);
      stored++;
    }
    await this.journal?.truncate();
    return stored;
  }

  /** Schematics answered but not yet written to the repository (journalled). */
  get pendingWrites(): number {
    return this.pending.size;
  }

  private addPending(id: string, yaml: string): void {
    this.pending.set(id, yaml);
    this.pendingBytes += yaml.length * 2;
  }

  private deletePending(id: string): void {
    const yaml = this.pending.get(id);
    if (yaml === undefined) return;
    this.pending.delete(id);
    this.pendingBytes -= yaml.length * 2;
  }

  /** Stops the background writer after one last pass (what it cannot store stays in the journal), and closes the journal. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    await this.writer;
    if (this.pending.size > 0 && this.writer === undefined) await this.writePending().catch(() => {});
    if (this.pending.size === 0) await this.journal?.truncate();
    await this.journal?.close();
  }

  /** Starts the background writer unless it runs (or waits for a retry). */
  private kick(): void {
    if (this.writer !== undefined || this.retryTimer !== undefined || this.closing) return;
    this.writer = this.writePending()
      .then(
        () => {
          this.retryMs = retryMinMs;
        },
        () => {
          if (this.closing) return;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.kick();
          }, this.retryMs);
          this.retryTimer.unref();
          this.retryMs = Math.min(retryMaxMs, this.retryMs * 2);
        },
      )
      .finally(() => {
        this.writer = undefined;
        if (this.pending.size > 0) this.kick();
      });
  }

  /** Writes every pending schematic, oldest first; the journal is emptied once none is left. */
  private async writePending(): Promise<void> {
    for (const [id, yaml] of this.pending) {
      try {
        if (!(await this.storage.has(id))) await this.storage.put(id, yaml);
      } catch (err) {
        this.onWriteError?.(id, err);
        throw err;
      }
      this.deletePending(id);
    }
    // Emptied once the stored records pass a bound, not each time the writer catches up (a sync per round
    // that creates would wait behind); a clean stop empties it.
    if (this.pending.size === 0) await this.journal?.truncate({ ifAbove: journalKeepBytes });
  }

  /** Schematics held in memory. */
  get memoSize(): number {
    return this.known.size;
  }

  /** Parses a request body, stores the schematic unless it exists, and returns its ID and canonical YAML. */
  async create(body: Buffer | string): Promise<CreatedSchematic> {
    const schematic = parseSchematic(body); // BadRequest naming the problem
    const yaml = canonicalYaml(schematic);
    if (Buffer.byteLength(yaml) > maxStoredSchematicBytes)
      throw badRequest(
        `invalid schematic: its canonical form is larger than ${maxStoredSchematicBytes} bytes`,
        "SCHEMATIC_TOO_LARGE",
      );
    const id = sha256Digest(yaml).slice("sha256:".length);
    const created = await this.store(id, yaml);
    this.metrics?.schematicCreates.inc();
    if (!created) this.metrics?.schematicDuplicateCreates.inc();
    return { id, yaml, created };
  }

  /**
   * The canonical YAML of schematic `id`; NotFound "schematic not found" when there is none, a malformed ID
   * included (upstream's storage treats an ID that is no digest as not found: there is no separate 400).
   */
  async get(id: string): Promise<string> {
    if (!isSchematicId(id)) throw schematicNotFound();
    const yaml = await this.lookup(id);
    if (yaml === undefined) throw schematicNotFound();
    this.metrics?.schematicGets.inc();
    return yaml;
  }

  /** The schematic `id` parsed back, for building assets. */
  async load(id: string): Promise<StoredSchematic> {
    const yaml = await this.get(id);
    return { id, yaml, schematic: parseSchematic(yaml) };
  }

  private async lookup(id: string): Promise<string | undefined> {
    const cached = this.known.get(id) ?? this.pending.get(id);
    if (cached !== undefined) {
      this.remember(id, cached); // refresh recency
      return cached;
    }
    const until = this.unknown.get(id);
    if (until !== undefined) {
      if (until > this.now()) return undefined;
      this.unknown.delete(id);
    }
    return this.loading.run(id, () =>
      this.storage.get(id).then((yaml) => {
        // A create that finished meanwhile wins over a read that started before it.
        if (yaml !== undefined) this.remember(id, yaml);
        else if (!this.known.has(id)) this.forget(id);
        return this.known.get(id) ?? yaml;
      }),
    );
  }

  /** Stores unless present; true when it was stored now. One store per ID at a time. */
  private async store(id: string, yaml: string): Promise<boolean> {
    if (this.known.has(id)) {
      this.remember(id, yaml);
      return false;
    }
    if (this.storing.has(id)) {
      await this.storing.run(id, async () => false); // joins the store under way
      return false;
    }
    const created = await this.storing.run(id, async () => {
      if (this.pending.has(id) || (await this.storage.has(id))) return false;
      if (
        this.journal === undefined ||
        this.pending.size >= maxPendingWrites ||
        this.pendingBytes + yaml.length * 2 > maxPendingBytes
      ) {
        await this.storage.put(id, yaml);
        return true;
      }
      // Pending before the append: the writer empties the journal only when nothing is pending, so a line
      // is never dropped before its schematic is in the repository.
      this.addPending(id, yaml);
      try {
        await this.journal.append({ id, yaml });
      } catch (err) {
        this.deletePending(id);
        throw err;
      }
      this.kick();
      return true;
    });
    this.remember(id, yaml);
    return created;
  }

  /** Bytes of canonical YAML held in memory. */
  get memoBytes(): number {
    return this.knownBytes;
  }

  private remember(id: string, yaml: string): void {
    this.unknown.delete(id);
    this.drop(id);
    this.known.set(id, yaml);
    this.knownBytes += yaml.length * 2;
    // Oldest first, by count and by bytes; the newest always stays (one schematic is below the body limit).
    while (this.known.size > this.capacity || (this.knownBytes > this.maxBytes && this.known.size > 1))
      this.drop(this.known.keys().next().value as string);
    this.metrics?.schematicMemoSize.set(this.known.size);
  }

  private drop(id: string): void {
    const yaml = this.known.get(id);
    if (yaml === undefined) return;
    this.known.delete(id);
    this.knownBytes -= yaml.length * 2;
  }

  private forget(id: string): void {
    if (this.negativeTtlMs === 0) return;
    this.unknown.delete(id);
    this.unknown.set(id, this.now() + this.negativeTtlMs);
    // Bounded like the LRU of known schematics, so a scan of random IDs cannot grow memory without limit.
    while (this.unknown.size > this.capacity) this.unknown.delete(this.unknown.keys().next().value as string);
  }
}
