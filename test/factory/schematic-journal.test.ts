// The schematic journal (src/factory/schematic-journal.ts) over a real embedded store: a create is answered
// once its line is synced and stored in the background; a process killed with SIGKILL right after its answers
// loses none of them (the next start stores them from the journal); a torn last line is dropped, a corrupt one
// refused naming its line; the journal is emptied once everything is in the repository.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { isAppError } from "../../src/errors.ts";
import { SchematicJournal } from "../../src/factory/schematic-journal.ts";
import { SchematicService } from "../../src/factory/schematics.ts";
import { openStore } from "../../src/registry/store.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const line = (yaml: string) => `${JSON.stringify({ id: sha256(yaml), yaml })}\n`;
/** The journal's records part: its text up to the first NUL (the rest of the file is preallocated zeros). */
const recordsText = async (path: string) => {
  const bytes = await readFile(path);
  const nul = bytes.indexOf(0);
  return (nul < 0 ? bytes : bytes.subarray(0, nul)).toString("utf8");
};

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  for (let i = 0; i < timeoutMs / 10; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("the schematic journal", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "schematic-journal-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("answers a create from the journal, stores it in the background, and empties the journal at a clean stop", async () => {
    const store = await openStore(join(dir, "bg", "store"));
    const path = join(dir, "bg", "schematics.journal");
    const { journal, records } = await SchematicJournal.open(path);
    assert.deepEqual(records, []);
    const repository = store.repository("bg/schematics");
    const service = new SchematicService({ repository, memoCapacity: 1, negativeTtlMs: 1000, journal });
    const created = await Promise.all(
      [1, 2, 3].map((n) => service.create(`{"customization":{"extraKernelArgs":["bg.n=${n}"]}}`)),
    );
    // Readable at once, even beyond the memo's capacity of one.
    for (const { id, yaml } of created) assert.equal(await service.get(id), yaml);
    await until(() => service.pendingWrites === 0, "the background writer");
    // Kept until its stored records pass 256 KiB (each a lookup at replay), emptied at a clean stop.
    const kept = await recordsText(path);
    assert.equal(kept.split("\n").length - 1, 3);
    for (const { id, yaml } of created) {
      const manifest = await repository.getManifest(id);
      assert.ok(manifest.body.length > 0);
      const fresh = new SchematicService({ repository, memoCapacity: 10, negativeTtlMs: 0 });
      assert.equal(await fresh.get(id), yaml);
    }
    // A duplicate is not journalled again.
    assert.equal((await service.create(`{"customization":{"extraKernelArgs":["bg.n=1"]}}`)).created, false);
    assert.equal(await recordsText(path), kept);
    await service.close();
    assert.equal(await recordsText(path), "", "emptied at a clean stop");
    await store.close();
  });

  it("a process killed with SIGKILL right after its answers: the next start stores every answered schematic", async () => {
    const crashDir = join(dir, "crash");
    const child = await promisify(execFile)(
      process.execPath,
      [join(import.meta.dirname, "journal-crash-child.ts"), crashDir, "40"],
      { maxBuffer: 1024 * 1024 },
    ).catch((err: { stdout?: string; signal?: string }) => {
      assert.equal(err.signal, "SIGKILL", `the child was killed, not failed: ${String(err)}`);
      return { stdout: err.stdout ?? "" };
    });
    const { ids, pending } = JSON.parse(child.stdout.trim()) as { ids: string[]; pending: number };
    assert.equal(ids.length, 40);
    const store = await openStore(join(crashDir, "store")); // takes over the dead process's lock
    const repository = store.repository("crash/schematics");
    const before = new SchematicService({ repository, memoCapacity: 100, negativeTtlMs: 0 });
    let missing = 0;
    for (const id of ids) if (!(await before.storage.has(id))) missing++;
    console.log(`killed with ${pending} pending writes; ${missing} of 40 not in the repository at restart`);

    const { journal, records } = await SchematicJournal.open(join(crashDir, "schematics.journal"));
    const service = new SchematicService({ repository, memoCapacity: 100, negativeTtlMs: 0, journal });
    const stored = await service.recover(records);
    assert.equal(stored, missing);
    const fresh = new SchematicService({ repository, memoCapacity: 100, negativeTtlMs: 0 });
    for (const id of ids) assert.equal(sha256(await fresh.get(id)), id);
    assert.equal(await recordsText(journal.path), "", "emptied after recovery");
    await service.close();
    await store.close();
  });

  it("beyond 1024 pending writes a create writes through, waiting for the repository", async () => {
    const store = await openStore(join(dir, "cap", "store"));
    const { journal } = await SchematicJournal.open(join(dir, "cap", "schematics.journal"));
    const real = store.repository("cap/schematics");
    // The real repository, its manifest writes held until the gate opens (a repository that cannot keep up).
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const held = Object.create(real) as typeof real;
    held.putManifest = async (...args: Parameters<typeof real.putManifest>) => {
      await gate;
      return real.putManifest(...args);
    };
    const service = new SchematicService({ repository: held, memoCapacity: 10, negativeTtlMs: 0, journal });
    const body = (n: number) => `{"customization":{"extraKernelArgs":["cap.n=${n}"]}}`;
    const first = await Promise.all(Array.from({ length: 1024 }, (_, n) => service.create(body(n))));
    assert.equal(first.length, 1024, "answered from the journal while the repository is held");
    let through = false;
    const extra = service.create(body(1024)).then((created) => {
      through = true;
      return created;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(through, false, "the 1025th waits for the repository");
    assert.equal(service.pendingWrites, 1024);
    open();
    assert.equal((await extra).created, true);
    // 1024 schematics of five fsynced writes each: several seconds.
    await until(() => service.pendingWrites === 0, "the background writer", 120_000);
    await service.close();
    await store.close();
  });

  it("replay: a torn last line is dropped; a line that does not parse or hash is refused, naming it", async () => {
    const path = join(dir, "replay.journal");
    const a = "customization:\n    extraKernelArgs:\n        - replay.a\n";
    const b = "customization:\n    extraKernelArgs:\n        - replay.b\n";
    await writeFile(path, line(a) + line(b));
    await appendFile(path, line("customization: {}\n").slice(0, 20)); // torn: no newline
    const opened = await SchematicJournal.open(path);
    assert.deepEqual(
      opened.records.map((r) => r.yaml),
      [a, b],
    );
    // The torn bytes are gone: a line appended now is read back whole after the two.
    const c = "customization:\n    extraKernelArgs:\n        - replay.c\n";
    await opened.journal.append({ id: sha256(c), yaml: c });
    await opened.journal.close();
    assert.equal(await recordsText(path), line(a) + line(b) + line(c));

    await writeFile(path, `${line(a)}{"id":"${"0".repeat(64)}","yaml":"x"}\n`);
    await assert.rejects(
      SchematicJournal.open(path),
      (err: unknown) =>
        isAppError(err, "Integrity") && /replay\.journal line 2: the YAML does not hash/.test(err.message),
    );
    await writeFile(path, `${line(a)}not json\n`);
    await assert.rejects(
      SchematicJournal.open(path),
      (err: unknown) => isAppError(err, "Integrity") && /line 2: not a journal record/.test(err.message),
    );
  });

  it("group commit: concurrent appends are all on disk when answered, each line whole, in preallocated zeros", async () => {
    const path = join(dir, "group.journal");
    const { journal } = await SchematicJournal.open(path);
    const yamls = Array.from({ length: 200 }, (_, i) => `customization:\n    extraKernelArgs:\n        - g.${i}\n`);
    await Promise.all(yamls.map((yaml) => journal.append({ id: sha256(yaml), yaml })));
    assert.equal(await recordsText(path), yamls.map(line).join(""));
    // Preallocated: the lines went into zeros written beforehand (1 MiB), so the size did not change.
    assert.equal((await stat(path)).size, 1024 * 1024);
    await journal.truncate();
    assert.equal(await recordsText(path), "");
    // After emptying, shorter lines than before leave nothing of the older ones behind.
    const short = "customization: {}\n";
    await journal.append({ id: sha256(short), yaml: short });
    await journal.close();
    const reopened = await SchematicJournal.open(path);
    assert.deepEqual(reopened.records, [{ id: sha256(short), yaml: short }]);
    await reopened.journal.close();
    await assert.rejects(journal.append({ id: sha256("x"), yaml: "x" }), /closed/);
  });

  it("a burst past the preallocation grows the zeros by whole steps; every record reads back", async () => {
    const path = join(dir, "burst.journal");
    const { journal } = await SchematicJournal.open(path);
    // 30 records of about 40 KB: past the first MiB.
    const yamls = Array.from(
      { length: 30 },
      (_, i) => `customization:\n    extraKernelArgs:\n        - b${i}.${"x".repeat(40_000)}\n`,
    );
    await Promise.all(yamls.map((yaml) => journal.append({ id: sha256(yaml), yaml })));
    assert.equal((await stat(path)).size, 2 * 1024 * 1024);
    await journal.close();
    const reopened = await SchematicJournal.open(path);
    assert.deepEqual(
      reopened.records.map((r) => r.yaml),
      yamls,
    );
    await reopened.journal.truncate();
    assert.equal(await recordsText(path), "");
    await reopened.journal.close();
  });
});
