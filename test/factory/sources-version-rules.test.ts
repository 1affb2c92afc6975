// The Talos version rules as upstream image-factory applies them to the imager's tags (blang/semver's
// ParseTolerant; pre-releases only `alpha|beta|rc` "." number of the newest major.minor; minimum; broken), one
// row per rule, with expectations worked out by hand from those rules.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseRequestedVersion, selectTalosVersions } from "../../src/factory/sources/version-selection.ts";
import { compareSemVer, parseStrict, parseTolerant } from "../../src/talos/version.ts";

const defaults = { minVersion: "1.2.0", brokenVersions: [] as string[] };
const names = (tags: string[], rules = defaults) => selectTalosVersions(tags, rules).map((v) => v.name);
const sigTag = `sha256-${"a".repeat(64)}.sig`;

describe("Talos versions from imager tags", () => {
  const rows: { rule: string; tags: string[]; rules?: typeof defaults; expected: string[] }[] = [
    { rule: "no tags, no versions", tags: [], expected: [] },
    {
      rule: "tags that are not semver are ignored (latest-dev, cosign signature tags, branch names)",
      tags: ["latest-dev", sigTag, `sha256-${"b".repeat(64)}`, "main", "v1.8.2"],
      expected: ["v1.8.2"],
    },
    {
      rule: "the v is optional and short versions are filled up, printed as v + canonical",
      tags: ["1.8.2", "v1.9", "1.7"],
      expected: ["v1.7.0", "v1.8.2", "v1.9.0"],
    },
    { rule: "leading zeros are dropped when reading tolerantly", tags: ["v1.08.02"], expected: ["v1.8.2"] },
    {
      rule: "pre-releases are offered only for the newest major.minor",
      tags: ["v1.10.3", "v1.10.4-rc.1", "v1.11.0-beta.1", "v1.11.0-alpha.2", "v1.11.0-rc.1"],
      expected: ["v1.10.3", "v1.11.0-alpha.2", "v1.11.0-beta.1", "v1.11.0-rc.1"],
    },
    {
      rule: "the newest tag decides the pre-release minor even when it is itself not offered",
      tags: ["v1.10.3", "v1.10.4-beta.1", "v1.11.0-foo"],
      expected: ["v1.10.3"],
    },
    {
      rule: "only alpha, beta and rc followed by one number are offered pre-releases",
      tags: [
        "v1.11.0-beta",
        "v1.11.0-beta.1.2",
        "v1.11.0-beta.x",
        "v1.11.0-gamma.1",
        "v1.11.0-RC.1",
        "v1.11.0-rc.01",
        "v1.11.0-rc.0",
      ],
      expected: ["v1.11.0-rc.0"],
    },
    {
      rule: "a new major's pre-release is the newest minor",
      tags: ["v1.11.2", "v2.0.0-alpha.1", "v1.11.3-rc.1"],
      expected: ["v1.11.2", "v2.0.0-alpha.1"],
    },
    {
      rule: "versions below the minimum are dropped, and a pre-release of the minimum is below it",
      tags: ["v1.8.2", "v1.9.0-rc.1", "v1.9.0", "v1.9.1"],
      rules: { minVersion: "1.9.0", brokenVersions: [] },
      expected: ["v1.9.0", "v1.9.1"],
    },
    {
      rule: "versions marked broken are dropped (release or pre-release, with or without v)",
      tags: ["v1.10.2", "v1.10.3", "v1.11.0-beta.1", "v1.11.0-beta.2"],
      rules: { minVersion: "1.2.0", brokenVersions: ["1.10.3", "v1.11.0-beta.1"] },
      expected: ["v1.10.2", "v1.11.0-beta.2"],
    },
    {
      rule: "sorted by semver precedence, not as text",
      tags: ["v1.10.0", "v1.9.0", "v1.10.1-alpha.10", "v1.10.1-alpha.9", "v1.10.1-beta.1", "v1.10.1"],
      expected: ["v1.9.0", "v1.10.0", "v1.10.1-alpha.9", "v1.10.1-alpha.10", "v1.10.1-beta.1", "v1.10.1"],
    },
  ];
  for (const row of rows) test(row.rule, () => assert.deepEqual(names(row.tags, row.rules), row.expected));

  test("two spellings of one version are listed once, pulled by the tag written v + canonical", () => {
    const listed = selectTalosVersions(["1.8.2", "v1.8.2", "v1.08.2"], defaults);
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.name, "v1.8.2");
    assert.equal(listed[0]?.tag, "v1.8.2");
    const only = selectTalosVersions(["1.8.2"], defaults);
    assert.deepEqual(
      only.map((v) => [v.name, v.tag]),
      [["v1.8.2", "1.8.2"]],
    );
  });

  test("a minimum that is not a version is refused", () => {
    assert.throws(() => selectTalosVersions(["v1.8.2"], { minVersion: "one", brokenVersions: [] }), /minimum/);
  });
});

describe("semver as blang/semver reads it", () => {
  test("strict parsing refuses what Parse refuses", () => {
    for (const bad of [
      "",
      "1.10",
      "v1.10.3",
      "01.10.3",
      "1.010.3",
      "1.10.03",
      "1.10.3-",
      "1.10.3-rc.01",
      "1.10.3+",
      "1.10.3-rc..1",
      "1.10.3-r_c",
    ])
      assert.throws(() => parseStrict(bad), `${JSON.stringify(bad)} is refused`);
    assert.equal(parseStrict("1.10.3-rc.1+build.5").build.join("."), "build.5");
  });

  test("tolerant parsing drops spaces and one v, fills short versions, refuses short ones with a pre-release", () => {
    assert.equal(compareSemVer(parseTolerant(" v1.8 "), parseStrict("1.8.0")), 0);
    assert.equal(compareSemVer(parseTolerant("2"), parseStrict("2.0.0")), 0);
    assert.throws(() => parseTolerant("1.8-rc.1"));
    assert.throws(() => parseTolerant("vv1.8.0"));
    assert.throws(() => parseTolerant("latest-dev"));
  });

  test("numbers are unsigned 64-bit", () => {
    assert.equal(parseStrict("18446744073709551615.0.0").major, 18446744073709551615n);
    assert.throws(() => parseStrict("18446744073709551616.0.0"));
  });

  test("a version asked for over HTTP: one optional v, then strict", () => {
    assert.equal(parseRequestedVersion("1.10.3").minor, 10n);
    assert.equal(parseRequestedVersion("v1.10.3").minor, 10n);
    assert.equal(parseRequestedVersion("v1.11.0-beta.1").pre.length, 2);
    for (const bad of ["1.10", "vv1.10.3", "latest-dev", "v01.10.3", " 1.10.3"])
      assert.throws(() => parseRequestedVersion(bad));
  });
});
