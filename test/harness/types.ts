/** A registry process or server started by a test, reachable on loopback. */
export interface RunningRegistry {
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT` or `https://…`. */
  url: string;
  /** The storage root on disk. */
  root: string;
  /** Which implementation this is, for test names. */
  kind: "distribution" | "embedded";
  stop(): Promise<void>;
}
