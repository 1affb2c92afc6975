// Progress of `boot-assets build` on stderr. On a terminal: one status line redrawn in place (a bar for
// downloads, a spinner with the elapsed time for builds), with finished steps printed above it. Elsewhere
// (CI logs, pipes): plain lines, one per step start and end, nothing redrawn.

import type { SourceProgress } from "../factory/sources/imager-inputs.ts";

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function bar(fraction: number, width = 24): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

const spinnerFrames = ["|", "/", "-", "\\"];
const redrawMs = 100;

export class BuildProgress {
  readonly #out: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly #tty: boolean;
  #status = "";
  #lastDraw = 0;
  #spinner: NodeJS.Timeout | undefined;
  /** Downloads under way (a TTY shows them all on the status line). */
  readonly #pulls = new Map<string, { bytes: number; total: number }>();

  constructor(out: NodeJS.WriteStream | NodeJS.WritableStream, tty: boolean) {
    this.#out = out;
    this.#tty = tty;
  }

  /** A finished step: printed on its own line. */
  line(text: string): void {
    if (this.#tty && this.#status !== "") this.#out.write("\r\x1b[K");
    this.#out.write(`${text}\n`);
    if (this.#tty && this.#status !== "") this.#out.write(this.#status);
  }

  #draw(status: string, force = false): void {
    if (!this.#tty) return;
    const width = (this.#out as NodeJS.WriteStream).columns ?? 100;
    // Never wider than the terminal: a wrapped status line could not be redrawn in place.
    this.#status = status.length >= width ? `${status.slice(0, Math.max(0, width - 2))}…` : status;
    const now = Date.now();
    if (!force && now - this.#lastDraw < redrawMs) return;
    this.#lastDraw = now;
    this.#out.write(`\r\x1b[K${this.#status}`);
  }

  #clear(): void {
    if (this.#tty && this.#status !== "") this.#out.write("\r\x1b[K");
    this.#status = "";
  }

  /** A source event from the resolver. */
  source(event: SourceProgress): void {
    const name = event.image;
    switch (event.step) {
      case "verify":
        if (!this.#tty) this.line(`verify ${name}`);
        else this.#draw(`verifying ${name}`);
        break;
      case "verified":
        this.line(
          event.signers.length === 0
            ? `verified ${event.pinned} (signature verification DISABLED)`
            : `verified ${event.pinned}: ${event.signers.join("; ")}`,
        );
        for (const reason of event.rejected.slice(0, 10)) this.line(`  rejected candidate: ${reason}`);
        if (event.rejected.length > 10) this.line(`  … and ${event.rejected.length - 10} more rejected candidates`);
        break;
      case "cached":
        this.line(`cached   ${event.pinned} (from the content cache, nothing pulled)`);
        break;
      case "discard":
        this.line(`cache    ${name}: the cached copy is unusable (${event.reason}); pulling it again`);
        break;
      case "pull": {
        const known = this.#pulls.get(name);
        if (known === undefined && !this.#tty) this.line(`pull     ${name} (${formatBytes(event.total)})`);
        this.#pulls.set(name, { bytes: event.bytes, total: event.total });
        if (this.#tty) {
          const bytes = [...this.#pulls.values()].reduce((sum, p) => sum + p.bytes, 0);
          const total = [...this.#pulls.values()].reduce((sum, p) => sum + p.total, 0);
          this.#draw(
            `pulling ${this.#pulls.size} image(s) ${bar(total === 0 ? 1 : bytes / total)} ${formatBytes(bytes)}/${formatBytes(total)}`,
          );
        }
        break;
      }
      case "unpack":
        if (!this.#tty) this.line(`unpack   ${name}`);
        break;
      case "ready": {
        const pulled = this.#pulls.get(name);
        this.#pulls.delete(name);
        if (pulled !== undefined) this.line(`pulled   ${event.pinned} (${formatBytes(pulled.bytes)})`);
        if (this.#pulls.size === 0) this.#clear();
        break;
      }
    }
  }

  /** Runs a long step with a spinner (TTY) or start/end lines; `note` gets the step's latest log line. */
  async step<T>(title: string, work: (note: (text: string) => void) => Promise<T>): Promise<T> {
    const started = Date.now();
    let latest = "";
    if (this.#tty) {
      let frame = 0;
      const redraw = () => {
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        this.#draw(
          `${spinnerFrames[frame++ % spinnerFrames.length]} ${title} ${seconds}s${latest ? ` — ${latest}` : ""}`,
          true,
        );
      };
      redraw();
      this.#spinner = setInterval(redraw, redrawMs);
      this.#spinner.unref();
    } else {
      this.line(`${title}…`);
    }
    try {
      return await work((text) => {
        latest = text;
        if (!this.#tty) this.line(`  ${text}`);
      });
    } finally {
      if (this.#spinner !== undefined) clearInterval(this.#spinner);
      this.#spinner = undefined;
      this.#clear();
    }
  }
}
