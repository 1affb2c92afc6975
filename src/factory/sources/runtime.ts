// What the sources need from the service around them: a clock with timers (injectable, so tests can move
// time), a logger (pino fits), and optional metric hooks the service wires to Prometheus.

export type TimerHandle = unknown;

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    // Background refreshes never keep the process alive on their own.
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The subset of a pino logger the sources use. */
export interface SourcesLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export type SourceKind = "versions" | "extensions" | "overlays";

/** Hooks for metrics; every one optional. */
export interface SourcesMetrics {
  /** A read of the registry for a source finished (background or on demand). */
  sourceRefreshed?(source: SourceKind, outcome: "ok" | "error", durationMs: number): void;
  /** The version list is stale: the last refresh failed and the previous list is still served. */
  versionsStale?(stale: boolean): void;
  /** How many Talos versions are offered. */
  versionsCount?(count: number): void;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
