import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, test } from "node:test";
import { isAppError } from "../../src/errors.ts";
import { findTool, runTool, runToolText, type Tool, toolTransform } from "../../src/tools/run.ts";

const sh: Tool = { command: "sh", debianPackage: "dash" };
const missing: Tool = { command: "no-such-tool-xyz", debianPackage: "imaginary-tools" };

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("runTool", () => {
  test("captures stdout and passes arguments without a shell", async () => {
    assert.equal(await runToolText(sh, ["-c", 'printf "%s|" "$@"', "sh", "a b", "$HOME", "*"]), "a b|$HOME|*|");
  });

  test("feeds stdin from a buffer and from a stream", async () => {
    assert.equal(await runToolText(sh, ["-c", "cat"], { stdin: "hello" }), "hello");
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const result = await runTool(sh, ["-c", "wc -c"], { stdin: Readable.from([big]) });
    assert.equal(result.stdout.toString().trim(), String(big.length));
  });

  test("streams stdout into a writable", async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    });
    const result = await runTool(sh, ["-c", "head -c 100000 /dev/zero"], { stdout: sink });
    assert.equal(Buffer.concat(chunks).length, 100000);
    assert.equal(result.stdout.length, 0);
  });

  test("a non-zero exit is an error naming the tool, the code and stderr", async () => {
    await assert.rejects(runTool(sh, ["-c", "echo boom >&2; exit 3"]), (err: unknown) => {
      assert.ok(isAppError(err));
      assert.equal(err.code, "TOOL_FAILED");
      assert.match(err.message, /^sh exited with code 3: boom$/);
      return true;
    });
    assert.equal((await runTool(sh, ["-c", "exit 1"], { okExitCodes: [0, 1] })).exitCode, 1);
  });

  test("a missing program names the Debian package that provides it", async () => {
    assert.equal(findTool(missing), undefined);
    await assert.rejects(runTool(missing, []), (err: unknown) => {
      assert.ok(isAppError(err, "Unsupported"));
      assert.equal(err.code, "TOOL_MISSING");
      assert.match(err.message, /apt-get install imaginary-tools/);
      return true;
    });
  });

  test("a timeout kills the program and its children", async () => {
    const started = Date.now();
    await assert.rejects(runTool(sh, ["-c", "sleep 30 & sleep 30"], { timeoutMs: 200 }), /timed out after 200 ms/);
    assert.ok(Date.now() - started < 5000);
  });

  test("an abort signal stops the program with the abort reason", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user cancelled")), 100);
    await assert.rejects(runTool(sh, ["-c", "sleep 30"], { signal: controller.signal }), /user cancelled/);
  });

  test("bounded stdout capture", async () => {
    await assert.rejects(
      runTool(sh, ["-c", "head -c 2000 /dev/zero"], { maxStdoutBytes: 1000 }),
      /wrote more than 1000 bytes/,
    );
  });
});

describe("toolTransform", () => {
  test("works as a pipeline stage", async () => {
    const out = await collect(
      Readable.from([Buffer.from("abc\n"), Buffer.from("def\n")]).pipe(toolTransform(sh, ["-c", "tr a-z A-Z"])),
    );
    assert.equal(out.toString(), "ABC\nDEF\n");
  });

  test("a failing program fails the pipeline instead of ending the output early", async () => {
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await assert.rejects(
      pipeline(Readable.from([Buffer.from("x")]), toolTransform(sh, ["-c", "cat; echo bad >&2; exit 2"]), sink),
      /exited with code 2: bad/,
    );
  });

  test("destroyed while its output waits unread, it leaves no pipe and no timer behind", async () => {
    // A consumer that stops reading (an unpacker refusing a decompression bomb) destroys the stage: the
    // program is killed and its pipes closed, so its 10-minute timeout does not keep the process alive.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = timers();
    const stage = toolTransform(sh, ["-c", "yes"]);
    stage.end();
    await new Promise<void>((resolve) => stage.once("readable", () => resolve()));
    stage.pause();
    await new Promise((resolve) => setTimeout(resolve, 100)); // the pipe fills; stdout is paused
    assert.equal(timers(), before + 1, "the program's timeout runs while it does");
    stage.destroy();
    for (let i = 0; i < 100 && timers() > before; i++) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(timers(), before, "its timeout is cleared once it is gone");
  });
});
