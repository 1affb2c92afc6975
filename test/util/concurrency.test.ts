import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { mapLimited, Semaphore, SingleFlight } from "../../src/util/concurrency.ts";

describe("mapLimited", () => {
  test("keeps the order of results and never runs more than the limit at once", async () => {
    let running = 0;
    let most = 0;
    const results = await mapLimited([30, 10, 20, 5, 1], 2, async (ms, index) => {
      running++;
      most = Math.max(most, running);
      await sleep(ms);
      running--;
      return `${index}:${ms}`;
    });
    assert.deepEqual(results, ["0:30", "1:10", "2:20", "3:5", "4:1"]);
    assert.equal(most, 2);
  });

  test("starts nothing after a failure and throws once the work under way has settled", async () => {
    const started: number[] = [];
    let settled = 0;
    await assert.rejects(
      mapLimited([0, 1, 2, 3, 4], 2, async (n) => {
        started.push(n);
        await sleep(n === 0 ? 1 : 20);
        settled++;
        if (n === 0) throw new Error("first fails");
      }),
      /first fails/,
    );
    assert.deepEqual(started, [0, 1]);
    assert.equal(settled, 2);
  });
});

describe("Semaphore", () => {
  test("serves waiters in order and an aborted wait takes no place", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const order: string[] = [];
    const aborted = new AbortController();
    const a = semaphore.acquire().then((r) => {
      order.push("a");
      return r;
    });
    const b = semaphore.acquire(aborted.signal).then(
      () => order.push("b"),
      () => order.push("b aborted"),
    );
    const c = semaphore.acquire().then((r) => {
      order.push("c");
      return r;
    });
    aborted.abort();
    await b;
    assert.equal(semaphore.waiting, 2);
    release();
    (await a)();
    (await c)();
    assert.deepEqual(order, ["b aborted", "a", "c"]);
    assert.equal(semaphore.held, 0);
  });
});

describe("SingleFlight", () => {
  test("callers of one key share one run; a failure is not remembered", async () => {
    const flights = new SingleFlight<string, number>();
    let runs = 0;
    const work = async () => {
      runs++;
      await sleep(10);
      return runs;
    };
    const all = await Promise.all(Array.from({ length: 50 }, () => flights.run("k", work)));
    assert.deepEqual(new Set(all), new Set([1]));
    assert.equal(flights.has("k"), false);
    await assert.rejects(
      flights.run("k", async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(await flights.run("k", work), 2);
  });
});
