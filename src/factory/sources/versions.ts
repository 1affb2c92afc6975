// The Talos versions the factory offers, served from memory. The list is the imager repository's tags read
// with upstream's rules (version-selection.ts). It is re-read in the background once it is older than the
// recheck interval (a timer once started, and a read that finds it old), one read at a time. When the
// registry fails, the last good list stays in service and the failure is logged and exposed (`state()`,
// metrics) until a read succeeds again. Before the first list loads, reads are retried with a short backoff.

import { upstream } from "../../errors.ts";
import {
  type Clock,
  errorMessage,
  type SourcesLog,
  type SourcesMetrics,
  systemClock,
  type TimerHandle,
} from "./runtime.ts";
import {
  parseConfiguredVersion,
  parseRequestedVersion,
  selectTalosVersions,
  type TalosVersion,
  talosVersionName,
  type VersionSelectionRules,
} from "./version-selection.ts";

export interface TalosVersionServiceOptions {
  /** Reads every tag of the imager repository. */
  listTags: () => Promise<string[]>;
  /** The imager repository, for messages. */
  imageName: string;
  rules: VersionSelectionRules;
  recheckIntervalMs: number;
  /** First retry delay while no list has loaded (doubles up to the recheck interval). Default 2 s. */
  initialRetryMs?: number;
  log: SourcesLog;
  metrics?: SourcesMetrics;
  clock?: Clock;
}

export interface TalosVersionsState {
  /** A list has loaded at least once. */
  readonly ready: boolean;
  /** The last read failed; the list served is the last good one (or none). */
  readonly stale: boolean;
  readonly count: number;
  /** When the served list was read (ms since epoch). */
  readonly loadedAt: number | undefined;
  readonly lastAttemptAt: number | undefined;
  /** Why the last read failed, while it is the latest outcome. */
  readonly lastError: string | undefined;
}

interface LoadedList {
  readonly versions: readonly TalosVersion[];
  readonly byName: ReadonlyMap<string, TalosVersion>;
  readonly latest: TalosVersion | undefined;
  readonly loadedAt: number;
}

export class TalosVersionService {
  readonly #options: TalosVersionServiceOptions;
  readonly #clock: Clock;
  readonly #broken: readonly string[];
  #loaded: LoadedList | undefined;
  #inflight: Promise<void> | undefined;
  #lastAttemptAt: number | undefined;
  #lastError: string | undefined;
  #timer: TimerHandle | undefined;
  #running = false;
  #retryMs: number;

  constructor(options: TalosVersionServiceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    // Checked now, so a bad rule fails at start-up rather than at the first read.
    parseConfiguredVersion(options.rules.minVersion, "minimum Talos version");
    this.#broken = options.rules.brokenVersions.map((v) =>
      talosVersionName(parseConfiguredVersion(v, "broken Talos version")),
    );
    this.#retryMs = this.#initialRetryMs();
  }

  #initialRetryMs(): number {
    return Math.min(this.#options.initialRetryMs ?? 2000, this.#options.recheckIntervalMs);
  }

  /** True once a list has loaded (it stays true through later registry failures). */
  ready(): boolean {
    return this.#loaded !== undefined;
  }

  state(): TalosVersionsState {
    const loadedAt = this.#loaded?.loadedAt;
    return {
      ready: this.ready(),
      stale: this.#lastError !== undefined,
      count: this.#loaded?.versions.length ?? 0,
      loadedAt,
      lastAttemptAt: this.#lastAttemptAt,
      lastError: this.#lastError,
    };
  }

  /** The served list, oldest first (empty before the first load); starts a background read when it is old. */
  current(): readonly TalosVersion[] {
    this.#refreshIfDue();
    return this.#loaded?.versions ?? [];
  }

  /** The served list; waits for the first load, and fails (Upstream) only when no list was ever read. */
  async list(): Promise<readonly TalosVersion[]> {
    if (this.#loaded === undefined) await this.refresh();
    const loaded = this.#loaded as LoadedList | undefined;
    if (loaded === undefined)
      throw upstream(
        `the Talos version list is not available: reading ${this.#options.imageName} failed: ${this.#lastError ?? "unknown error"}`,
      );
    return this.current();
  }

  /** The names as upstream prints them, e.g. ["v1.8.2","v1.10.3"]. */
  async names(): Promise<string[]> {
    return (await this.list()).map((v) => v.name);
  }

  /** The offered version `version` ("1.8.2" or "v1.8.2"), or undefined (also when malformed or not loaded). */
  resolve(version: string): TalosVersion | undefined {
    let name: string;
    try {
      name = talosVersionName(parseRequestedVersion(version));
    } catch {
      return undefined;
    }
    this.#refreshIfDue();
    return this.#loaded?.byName.get(name);
  }

  has(version: string): boolean {
    return this.resolve(version) !== undefined;
  }

  /** The newest offered version that is not a pre-release. */
  latest(): TalosVersion | undefined {
    this.#refreshIfDue();
    return this.#loaded?.latest;
  }

  /** The versions configured as broken, as upstream prints them (`/versions?broken=true`). */
  brokenVersions(): string[] {
    return [...this.#broken];
  }

  /** Reads the list now (joining a read under way). Never rejects: a failure is recorded in `state()`. */
  refresh(): Promise<void> {
    this.#inflight ??= this.#read().finally(() => {
      this.#inflight = undefined;
      this.#schedule();
    });
    return this.#inflight;
  }

  /** Loads the first list (resolving after the first attempt, whatever its outcome) and keeps it fresh. */
  start(): Promise<void> {
    this.#running = true;
    return this.refresh();
  }

  /** Stops background reads and waits for one under way. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inflight;
  }

  #refreshIfDue(): void {
    if (this.#inflight !== undefined) return;
    const since = this.#lastAttemptAt;
    if (since === undefined || this.#clock.now() - since >= this.#options.recheckIntervalMs) void this.refresh();
  }

  #schedule(): void {
    if (!this.#running) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    let delay = this.#options.recheckIntervalMs;
    if (this.#loaded === undefined) {
      delay = this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, this.#options.recheckIntervalMs);
    } else this.#retryMs = this.#initialRetryMs();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.refresh();
    }, delay);
  }

  async #read(): Promise<void> {
    const { log, metrics, imageName } = this.#options;
    const started = this.#clock.now();
    this.#lastAttemptAt = started;
    let versions: TalosVersion[];
    try {
      versions = selectTalosVersions(await this.#options.listTags(), this.#options.rules);
    } catch (err) {
      this.#lastError = errorMessage(err);
      metrics?.sourceRefreshed?.("versions", "error", this.#clock.now() - started);
      metrics?.versionsStale?.(true);
      log.warn(
        { image: imageName, err: this.#lastError, serving: this.#loaded?.versions.length ?? 0, stale: true },
        this.#loaded === undefined
          ? "reading the Talos versions failed; no version list yet"
          : "reading the Talos versions failed; serving the last good list",
      );
      return;
    }
    const previous = new Set(this.#loaded?.versions.map((v) => v.name) ?? []);
    const latest = versions.filter((v) => !v.prerelease).at(-1);
    this.#loaded = {
      versions: Object.freeze(versions),
      byName: new Map(versions.map((v) => [v.name, v])),
      latest,
      loadedAt: this.#clock.now(),
    };
    const recovered = this.#lastError !== undefined;
    this.#lastError = undefined;
    metrics?.sourceRefreshed?.("versions", "ok", this.#clock.now() - started);
    metrics?.versionsStale?.(false);
    metrics?.versionsCount?.(versions.length);
    const added = versions.filter((v) => !previous.has(v.name)).map((v) => v.name);
    const removed = [...previous].filter((name) => !this.#loaded?.byName.has(name));
    if (added.length > 0 || removed.length > 0 || recovered)
      log.info(
        { image: imageName, count: versions.length, added, removed, latest: latest?.name },
        recovered ? "Talos versions read again after a failure" : "Talos versions read",
      );
  }
}
