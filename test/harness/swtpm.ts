// A software TPM 2.0 (Debian's swtpm) on 127.0.0.1 for the tests: systemd-measure 252 computes PCR policies
// with a trial session on a TPM, and QEMU can hand one to a guest.

import { mkdtemp, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./ports.ts";
import { type ServerProcess, startServerProcess } from "./process.ts";

export interface Swtpm {
  port: number;
  /** systemd's --tpm2-device value for it. */
  device: string;
  stop(): Promise<void>;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts swtpm with a fresh state directory; `stop` kills it and removes the state. */
export async function startSwtpm(): Promise<Swtpm> {
  const state = await mkdtemp(join(tmpdir(), "swtpm-"));
  // The TSS's swtpm TCTI talks to the control channel on the next port up.
  const port = await freePort();
  const ctrl = port + 1;
  const child: ServerProcess = startServerProcess("swtpm", [
    "socket",
    "--tpm2",
    "--server",
    `type=tcp,port=${port},bindaddr=127.0.0.1`,
    "--ctrl",
    `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
    "--tpmstate",
    `dir=${state}`,
    "--flags",
    "not-need-init,startup-clear",
  ]);
  const stop = async () => {
    await child.kill();
    await rm(state, { recursive: true, force: true });
  };
  for (let i = 0; i < 100 && !(await accepts(port)); i++) {
    if (child.exited() !== undefined) break;
    await sleep(50);
  }
  if (!(await accepts(port))) {
    const output = child.output();
    await stop();
    throw new Error(`swtpm did not start: ${output}`);
  }
  return { port, device: `swtpm:host=127.0.0.1,port=${port}`, stop };
}
