// The registry client's pure parts, one table row per rule: WWW-Authenticate parsing (RFC 7235 and the
// distribution token spec's examples), scope merging, Link and Retry-After parsing, platform selection.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeScopes, parseWwwAuthenticate } from "../../src/oci/client/auth.ts";
import { retryAfterMs } from "../../src/oci/client/client.ts";
import { nextLink, referrersTagFor } from "../../src/oci/client/remote-repository.ts";
import type { ImageIndex } from "../../src/oci/manifest.ts";
import { parsePlatform, selectPlatform } from "../../src/oci/platform.ts";

describe("WWW-Authenticate parsing", () => {
  const rows: Array<[string, string | string[], Array<{ scheme: string; params: Record<string, string> }>]> = [
    [
      "a bearer challenge as in the token spec",
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      [
        {
          scheme: "bearer",
          params: {
            realm: "https://auth.docker.io/token",
            service: "registry.docker.io",
            scope: "repository:samalba/my-app:pull,push",
          },
        },
      ],
    ],
    ["a basic challenge", 'Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      "two challenges in one value, spaces after commas, unquoted token values",
      'Basic realm="a, b", Bearer realm="https://t/x", error=insufficient_scope',
      [
        { scheme: "basic", params: { realm: "a, b" } },
        { scheme: "bearer", params: { realm: "https://t/x", error: "insufficient_scope" } },
      ],
    ],
    [
      "escaped quotes inside a quoted string, case-insensitive names",
      'BEARER Realm="say \\"hi\\"",SERVICE="s"',
      [{ scheme: "bearer", params: { realm: 'say "hi"', service: "s" } }],
    ],
    [
      "challenges in separate header values",
      ['Bearer realm="r1"', 'Basic realm="r2"'],
      [
        { scheme: "bearer", params: { realm: "r1" } },
        { scheme: "basic", params: { realm: "r2" } },
      ],
    ],
    ["a scheme without parameters", "Negotiate", [{ scheme: "negotiate", params: {} }]],
  ];
  for (const [name, input, expected] of rows) {
    it(name, () => assert.deepEqual(parseWwwAuthenticate(input), expected));
  }
});

describe("scope merging", () => {
  it("joins the actions of one repository and keeps others apart", () => {
    assert.deepEqual(mergeScopes(["repository:a:pull", "repository:b:pull", "repository:a:push"]), [
      "repository:a:pull,push",
      "repository:b:pull",
    ]);
  });
  it("keeps a registry-level scope", () => {
    assert.deepEqual(mergeScopes(["registry:catalog:*"]), ["registry:catalog:*"]);
  });
});

describe("Link header", () => {
  const here = new URL("https://r.example/v2/app/tags/list?n=10");
  it("resolves a relative next link", () => {
    assert.equal(
      nextLink(['</v2/app/tags/list?n=10&last=b>; rel="next"'], here)?.href,
      "https://r.example/v2/app/tags/list?n=10&last=b",
    );
  });
  it("finds next among several links", () => {
    assert.equal(
      nextLink(['<https://r.example/prev>; rel="prev", <https://r.example/next>; rel="next"'], here)?.href,
      "https://r.example/next",
    );
  });
  it("has no next without rel=next", () => {
    assert.equal(nextLink(['<https://r.example/prev>; rel="prev"'], here), undefined);
    assert.equal(nextLink([], here), undefined);
  });
});

describe("Retry-After", () => {
  it("reads delay-seconds", () => assert.equal(retryAfterMs("3"), 3000));
  it("reads an HTTP date relative to now", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    assert.equal(retryAfterMs("Wed, 21 Oct 2015 07:28:05 GMT", now), 5000);
  });
  it("ignores garbage", () => assert.equal(retryAfterMs("soon"), undefined));
});

describe("referrers fallback tag", () => {
  it("is <alg>-<hex> of the subject digest", () => {
    const hex = "a".repeat(64);
    assert.equal(referrersTagFor(`sha256:${hex}`), `sha256-${hex}`);
  });
});

describe("platform selection", () => {
  const d = (n: number) => `sha256:${String(n).repeat(64)}` as const;
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      { mediaType: "m", digest: d(1), size: 1, platform: { os: "linux", architecture: "amd64" } },
      { mediaType: "m", digest: d(2), size: 1, platform: { os: "linux", architecture: "arm", variant: "v6" } },
      { mediaType: "m", digest: d(3), size: 1, platform: { os: "linux", architecture: "arm", variant: "v7" } },
      { mediaType: "m", digest: d(4), size: 1, platform: { os: "linux", architecture: "arm64" } },
      { mediaType: "m", digest: d(5), size: 1, platform: { os: "unknown", architecture: "unknown" } },
    ],
  };
  const rows: Array<[string, string, string | undefined]> = [
    ["os and architecture must match", "linux/amd64", d(1)],
    ["an exact variant is chosen", "linux/arm/v6", d(2)],
    ["without a variant, the architecture's default variant is preferred", "linux/arm", d(3)],
    ["arm64/v8 matches an arm64 entry without variant", "linux/arm64/v8", d(4)],
    ["no match gives undefined", "linux/s390x", undefined],
    ["another os does not match", "windows/amd64", undefined],
  ];
  for (const [name, wanted, digest] of rows) {
    it(name, () => assert.equal(selectPlatform(index, parsePlatform(wanted))?.digest, digest));
  }
  it("rejects a malformed platform string", () => assert.throws(() => parsePlatform("linux"), /os\/architecture/));
});
