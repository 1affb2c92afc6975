import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistryServer } from "../../src/registry/server.ts";
import type { RunningRegistry } from "./types.ts";

export interface EmbeddedOptions {
  /** Storage root; a temporary directory (removed at stop) by default. */
  root?: string;
  tls?: { certFile: string; keyFile: string };
}

/**
 * Starts the embedded registry server in this process on a free loopback port. Logs only warnings, so test
 * output stays readable; the store lock is released and a temporary root removed by `stop()`.
 */
export async function startEmbeddedRegistry(opts: EmbeddedOptions = {}): Promise<RunningRegistry> {
  const temporary = opts.root === undefined ? await mkdtemp(join(tmpdir(), "embedded-registry-")) : undefined;
  const root = opts.root ?? join(temporary as string, "data");
  let server: Awaited<ReturnType<typeof startRegistryServer>>;
  try {
    server = await startRegistryServer({
      root,
      listen: "127.0.0.1:0",
      logLevel: "warn",
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
  } catch (err) {
    if (temporary) await rm(temporary, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    host: server.address,
    url: server.url,
    root,
    kind: "embedded",
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      if (temporary) await rm(temporary, { recursive: true, force: true });
    },
  };
}
