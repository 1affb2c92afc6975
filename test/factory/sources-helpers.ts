// Shared pieces of the sources tests: a clock the test moves by hand, a logger that records, metrics that
// record, small images and catalogs pushed (and signed) into a real registry, a bare fastify app with the
// error mapping the factory uses, and a factory configuration read from a real command line.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { httpStatusOf } from "../../src/errors.ts";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";
import type { FactoryConfig } from "../../src/factory/config/model.ts";
import type { FactorySources } from "../../src/factory/sources/index.ts";
import { registerSourceRoutes } from "../../src/factory/sources/index.ts";
import type { Clock, SourceKind, SourcesLog, SourcesMetrics } from "../../src/factory/sources/runtime.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { buildImage, LayerStore, pushImage } from "../../src/oci/image-builder.ts";
import type { Repository } from "../../src/oci/repository.ts";
import type { TarEntry } from "../../src/oci/tar.ts";
import { signImage } from "../../src/signing/sign.ts";
import type { Signer } from "../../src/signing/signer.ts";

/** A clock whose time moves only when the test says so; due timers fire on `advance`. */
export class ManualClock implements Clock {
  #now = 1_700_000_000_000;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #next = 1;

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    this.#now += ms;
    for (const [id, timer] of [...this.#timers]) {
      if (timer.at > this.#now) continue;
      this.#timers.delete(id);
      timer.callback();
    }
  }
}

export interface LogRecord {
  level: "info" | "warn";
  message: string;
  details: Record<string, unknown>;
}

export class RecordingLog implements SourcesLog {
  readonly records: LogRecord[] = [];
  info(details: object, message: string): void {
    this.records.push({ level: "info", message, details: details as Record<string, unknown> });
  }
  warn(details: object, message: string): void {
    this.records.push({ level: "warn", message, details: details as Record<string, unknown> });
  }
  warnings(): LogRecord[] {
    return this.records.filter((r) => r.level === "warn");
  }
}

export class RecordingMetrics implements SourcesMetrics {
  readonly refreshes: { source: SourceKind; outcome: string }[] = [];
  readonly stale: boolean[] = [];
  readonly counts: number[] = [];
  sourceRefreshed(source: SourceKind, outcome: "ok" | "error"): void {
    this.refreshes.push({ source, outcome });
  }
  versionsStale(stale: boolean): void {
    this.stale.push(stale);
  }
  versionsCount(count: number): void {
    this.counts.push(count);
  }
}

/** Builds small reproducible images (one gzip layer of the given files) in a scratch layer cache. */
export class ImageMaker {
  readonly #cache: LayerStore;
  constructor(dir: string) {
    this.#cache = new LayerStore(dir, 0);
  }

  async push(
    repository: Repository,
    name: string,
    tag: string,
    files: Record<string, string> | TarEntry[],
    sign?: { signer: Signer; registry: string },
  ): Promise<Digest> {
    const entries: TarEntry[] = Array.isArray(files)
      ? files
      : Object.entries(files).map(([path, content]) => ({ type: "file", path, content: Buffer.from(content) }));
    const image = await buildImage({ repository: name, tag, layers: [entries] }, this.#cache);
    const digest = await pushImage(repository, image);
    if (sign) await signImage(repository, digest, sign.signer, { dockerReference: `${sign.registry}/${name}` });
    return digest;
  }
}

export async function scratchDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** The factory configuration from a command line, as the service reads it. */
export function factoryConfig(argv: string[], dataDir: string): Promise<FactoryConfig> {
  return parseFactoryCommandLine([...argv, "--data-dir", dataDir], {}, { cwd: dataDir });
}

/** A bare app with the sources' routes and the one error mapping (status by kind, plain-text message). */
export async function sourcesApp(sources: Pick<FactorySources, "versions" | "catalogs">): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((err, _request, reply) => {
    reply
      .code(httpStatusOf(err))
      .type("text/plain; charset=utf-8")
      .send(err instanceof Error ? err.message : String(err));
  });
  registerSourceRoutes(app, sources);
  await app.ready();
  return app;
}
