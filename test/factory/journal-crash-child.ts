// Child of schematic-journal.test.ts: creates schematics through a journalled service on the store at argv[2],
// prints each answered ID, and is killed with SIGKILL by itself as soon as the last create is answered — before
// the background writer can have stored them all.
import { join } from "node:path";
import { SchematicJournal } from "../../src/factory/schematic-journal.ts";
import { SchematicService } from "../../src/factory/schematics.ts";
import { openStore } from "../../src/registry/store.ts";

const dir = process.argv[2] as string;
const count = Number(process.argv[3]);
const store = await openStore(join(dir, "store"));
const { journal } = await SchematicJournal.open(join(dir, "schematics.journal"));
const service = new SchematicService({
  repository: store.repository("crash/schematics"),
  memoCapacity: 10,
  negativeTtlMs: 0,
  journal,
});
const created = await Promise.all(
  Array.from({ length: count }, (_, i) => service.create(`{"customization":{"extraKernelArgs":["crash.n=${i}"]}}`)),
);
process.stdout.write(`${JSON.stringify({ ids: created.map((c) => c.id), pending: service.pendingWrites })}\n`, () =>
  process.kill(process.pid, "SIGKILL"),
);
