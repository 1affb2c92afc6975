// The garbage collection limits as operators write them (src/factory/config/gc-limits.ts) and as the
// factory's configuration reports them: every bad value named with its flag, all at once.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseAge, parseSize } from "../../src/factory/config/gc-limits.ts";
import { parseFactoryCommandLine } from "../../src/factory/config/index.ts";

describe("garbage collection limits", () => {
  it("ages: whole days or any Go duration; empty is no limit", () => {
    assert.equal(parseAge(""), undefined);
    assert.equal(parseAge("30d"), 30 * 86_400_000);
    assert.equal(parseAge("36h"), 36 * 3_600_000);
    assert.equal(parseAge("1h30m"), 90 * 60_000);
    for (const bad of ["0", "0d", "-1h", "3 days", "1w", "d"]) assert.throws(() => parseAge(bad), /invalid age/, bad);
  });

  it("sizes: bytes, SI and IEC units, case-insensitive; empty is no limit", () => {
    assert.equal(parseSize(""), undefined);
    assert.equal(parseSize("1024"), 1024);
    assert.equal(parseSize("500MB"), 500_000_000);
    assert.equal(parseSize("50GiB"), 50 * 1024 ** 3);
    assert.equal(parseSize("1.5g"), 1_500_000_000);
    assert.equal(parseSize("1T"), 1e12);
    for (const bad of ["0", "-5GB", "5 parsecs", "GiB", "1e9"])
      assert.throws(() => parseSize(bad), /invalid size/, bad);
  });

  it("the factory reports bad limits with their flags, all at once", async () => {
    await assert.rejects(
      parseFactoryCommandLine(["-asset-cache-max-age", "forever", "-asset-cache-max-size", "lots"], {}),
      (err: Error) => {
        assert.match(err.message, /-asset-cache-max-age: invalid age "forever"/);
        assert.match(err.message, /-asset-cache-max-size: invalid size "lots"/);
        return true;
      },
    );
    const config = await parseFactoryCommandLine(["-asset-cache-max-age", "7d", "-asset-cache-max-size", "10GiB"], {});
    assert.deepEqual(config.cacheGc, {
      maxAgeMs: 7 * 86_400_000,
      maxSizeBytes: 10 * 1024 ** 3,
      intervalMs: 3_600_000,
      intermediateMaxSizeBytes: 16 * 1024 ** 3,
    });
  });

  it("the intermediate cache has its own size limit, 16 GiB unless given (docs/caches.md)", async () => {
    const config = await parseFactoryCommandLine(["-intermediate-cache-max-size", "2GiB"], {});
    assert.equal(config.cacheGc.intermediateMaxSizeBytes, 2 * 1024 ** 3);
    await assert.rejects(
      parseFactoryCommandLine(["-intermediate-cache-max-size", "lots"], {}),
      /-intermediate-cache-max-size: invalid size "lots"/,
    );
  });
});
