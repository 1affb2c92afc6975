// The README's shell examples and what the docs test does with each. Every ```sh block must be preceded by
// one marker line saying how it is tested:
//   <!-- docs-test: run -->                                   run as written
//   <!-- docs-test: run; ready when URL answers -->           run as written, then wait until URL answers 2xx
//                                                             (for a block that starts a service with `&`)
//   <!-- docs-test: background; ready when URL answers -->    run as written in the background (a service a
//                                                             reader leaves running in its own terminal), then
//                                                             wait until URL answers 2xx
//   <!-- docs-test: skip: REASON -->                          not run, for the reason given
// An unmarked block, or a marker the docs test does not know, is an error: the README cannot grow an example
// nobody decided how to check.

export type BlockMode = "run" | "background" | "skip";

export interface ReadmeBlock {
  /** 1-based line of the opening fence. */
  line: number;
  mode: BlockMode;
  /** For run/background: a URL that answers once the service the block starts is ready. */
  readyUrl?: string;
  /** For skip: why. */
  reason?: string;
  /** The block's text, without the fences, ending with a newline. */
  text: string;
}

const markerPattern = /^<!-- docs-test: (.*) -->$/;

function parseMarker(directive: string, line: number): Pick<ReadmeBlock, "mode" | "readyUrl" | "reason"> {
  if (directive === "run") return { mode: "run" };
  const skip = /^skip: (\S.*)$/.exec(directive);
  if (skip) return { mode: "skip", reason: skip[1] as string };
  const ready = /^(run|background); ready when (http:\/\/127\.0\.0\.1:\d+\/\S*) answers$/.exec(directive);
  if (ready) return { mode: ready[1] as "run" | "background", readyUrl: ready[2] as string };
  throw new Error(`README line ${line}: unknown docs-test marker "${directive}"`);
}

/** The ```sh blocks of `markdown`, in order, with their markers; throws on an unmarked block. */
export function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split("\n");
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(`{3,})(.*)$/.exec(lines[i] as string);
    if (!fence) continue;
    const close = lines.findIndex((l, j) => j > i && l === fence[1]);
    if (close < 0) throw new Error(`README line ${i + 1}: unclosed code block`);
    const info = (fence[2] as string).trim();
    if (info === "sh" || info === "bash" || info === "shell") {
      let previous = i - 1;
      while (previous >= 0 && (lines[previous] as string).trim() === "") previous--;
      const marker = markerPattern.exec(lines[previous] ?? "");
      if (!marker)
        throw new Error(`README line ${i + 1}: a shell block without a <!-- docs-test: … --> marker line before it`);
      blocks.push({
        line: i + 1,
        ...parseMarker(marker[1] as string, previous + 1),
        text: `${lines.slice(i + 1, close).join("\n")}\n`,
      });
    }
    i = close;
  }
  return blocks;
}

/** A wait of up to `seconds` for `url` to answer 2xx, failing the script if it does not. */
function waitFor(url: string, seconds: number): string {
  return [
    `for _ in $(seq ${seconds * 2}); do command curl -sf -o /dev/null ${url} && break; sleep 0.5; done`,
    `command curl -sSf -o /dev/null ${url} || { echo "docs-test: ${url} did not answer within ${seconds}s" >&2; exit 1; }`,
  ].join("\n");
}

/**
 * One bash script running the blocks to run, in order, in one shell (so a variable or a background service
 * of one block is there for the next). Each block is announced on stderr with its README line. Two things are
 * added around the blocks, never inside them: `curl` fails on an HTTP error status (a README `curl` that gets
 * a 404 must fail the test, not print the error page), and background services write to
 * `docs-test-background-<line>.log` in the working directory.
 */
export function scriptFor(blocks: readonly ReadmeBlock[], readySeconds: number): string {
  const parts = ["set -euo pipefail", 'curl() { command curl --silent --show-error --fail-with-body "$@"; }'];
  for (const block of blocks) {
    if (block.mode === "skip") continue;
    parts.push(`echo "docs-test: README line ${block.line}" >&2`);
    if (block.mode === "background") parts.push(`(\n${block.text}) > docs-test-background-${block.line}.log 2>&1 &`);
    else parts.push(block.text.trimEnd());
    if (block.readyUrl !== undefined) parts.push(waitFor(block.readyUrl, readySeconds));
  }
  parts.push('echo "docs-test: all blocks ran" >&2');
  return `${parts.join("\n")}\n`;
}
