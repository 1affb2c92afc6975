import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isAppError } from "../../src/errors.ts";
import {
  formatReference,
  type ImageReference,
  isDigestReference,
  manifestReferenceOf,
  parseManifestReference,
  parseReference,
  tagOrDefault,
  validateRepositoryName,
  validateTag,
} from "../../src/oci/reference.ts";

const hexA = "a".repeat(64);
const hexB = "0123456789abcdef".repeat(4);
const digestA = `sha256:${hexA}`;
const digestB = `sha256:${hexB}`;

// Expected values follow Docker's documented normalization (distribution/reference ParseNormalizedNamed).
const valid: Array<[rule: string, input: string, expected: ImageReference]> = [
  ["one component on docker.io gets library/", "ubuntu", { registry: "docker.io", repository: "library/ubuntu" }],
  [
    "tag is kept, no default tag invented",
    "ubuntu:22.04",
    { registry: "docker.io", repository: "library/ubuntu", tag: "22.04" },
  ],
  ["two components stay on docker.io without library/", "user/app", { registry: "docker.io", repository: "user/app" }],
  ["docker.io spelled out", "docker.io/ubuntu", { registry: "docker.io", repository: "library/ubuntu" }],
  ["index.docker.io becomes docker.io", "index.docker.io/user/app", { registry: "docker.io", repository: "user/app" }],
  [
    "index.docker.io one component gets library/",
    "index.docker.io/busybox:1",
    { registry: "docker.io", repository: "library/busybox", tag: "1" },
  ],
  ["host with a dot", "ghcr.io/siderolabs/imager", { registry: "ghcr.io", repository: "siderolabs/imager" }],
  ["no library/ on other registries", "quay.io/app", { registry: "quay.io", repository: "app" }],
  ["localhost is a host", "localhost/app", { registry: "localhost", repository: "app" }],
  ["localhost with port", "localhost:5000/x", { registry: "localhost:5000", repository: "x" }],
  ["host with port only (colon)", "myhost:5000/a/b", { registry: "myhost:5000", repository: "a/b" }],
  ["uppercase first component is a host", "Registry/app", { registry: "Registry", repository: "app" }],
  [
    "IP, port, tag and digest together",
    `127.0.0.1:5000/a/b:tag@${digestB}`,
    { registry: "127.0.0.1:5000", repository: "a/b", tag: "tag", digest: digestB as ImageReference["digest"] },
  ],
  [
    "digest without tag",
    `ghcr.io/x/y@${digestA}`,
    { registry: "ghcr.io", repository: "x/y", digest: digestA as ImageReference["digest"] },
  ],
  [
    "name:tag@digest on docker.io",
    `busybox:1.36@${digestA}`,
    { registry: "docker.io", repository: "library/busybox", tag: "1.36", digest: digestA as ImageReference["digest"] },
  ],
  ["IPv6 host in brackets", "[::1]:5000/app:v1", { registry: "[::1]:5000", repository: "app", tag: "v1" }],
  ["separators . _ __ and runs of -", "x/a.b_c__d---e", { registry: "docker.io", repository: "x/a.b_c__d---e" }],
  [
    "a first component with a dot is a host even if it looks like a path",
    "a.b/c",
    { registry: "a.b", repository: "c" },
  ],
  ["deep path", "r.example/a/b/c/d", { registry: "r.example", repository: "a/b/c/d" }],
  [
    "defaultRegistry replaces docker.io for host-less names (no library/)",
    "app:1",
    { registry: "registry.local", repository: "app", tag: "1" },
  ],
  [
    "a 128-character tag",
    `x:${"t".repeat(128)}`,
    { registry: "docker.io", repository: "library/x", tag: "t".repeat(128) },
  ],
  [
    "tag with dots, dashes, underscores",
    "x:_v1.2-rc",
    { registry: "docker.io", repository: "library/x", tag: "_v1.2-rc" },
  ],
];

describe("parseReference: valid references", () => {
  for (const [rule, input, expected] of valid) {
    it(rule, () => {
      const options = rule.startsWith("defaultRegistry") ? { defaultRegistry: "registry.local" } : undefined;
      assert.deepEqual(parseReference(input, options), expected);
    });
  }
});

const invalid: Array<[rule: string, input: string, code: string, messagePart: string]> = [
  ["empty input", "", "NAME_INVALID", "empty"],
  ["whitespace", "ubuntu latest", "NAME_INVALID", "whitespace"],
  ["uppercase repository", "docker.io/Library/ubuntu", "NAME_INVALID", "lowercase"],
  ["uppercase single name", "Ubuntu", "NAME_INVALID", "lowercase"],
  ["empty path component", "ghcr.io/a//b", "NAME_INVALID", "empty path component"],
  ["trailing slash", "ghcr.io/a/", "NAME_INVALID", "ends with a slash"],
  ["leading slash", "/a", "NAME_INVALID", "starts with a slash"],
  ["dot-dot component", "ghcr.io/a/../b", "NAME_INVALID", '".."'],
  ["component starting with a separator", "ghcr.io/-a", "NAME_INVALID", '"-a"'],
  ["component ending with a separator", "a_/b", "NAME_INVALID", '"a_"'],
  ["triple underscore separator", "a___b", "NAME_INVALID", '"a___b"'],
  ["invalid characters", "ghcr.io/a$b", "NAME_INVALID", '"a$b"'],
  ["bad host", "bad_host.io/a", "NAME_INVALID", 'registry host "bad_host.io"'],
  ["host port not numeric", "host:port/a/b:c", "NAME_INVALID", 'registry host "host:port"'],
  ["over-long name", `r.io/${"a".repeat(251)}`, "NAME_INVALID", "longer than 255"],
  ["64-hex image id", hexA, "NAME_INVALID", "image ID"],
  ["empty name before tag", ":tag", "NAME_INVALID", "empty"],
  ["empty tag", "ubuntu:", "TAG_INVALID", 'tag ""'],
  ["tag starting with a dot", "ubuntu:.x", "TAG_INVALID", 'tag ".x"'],
  ["tag over 128 chars", `ubuntu:${"t".repeat(129)}`, "TAG_INVALID", "tag"],
  ["tag with invalid character", "ubuntu:a+b", "TAG_INVALID", 'tag "a+b"'],
  ["digest with short hex", "ubuntu@sha256:abc", "DIGEST_INVALID", "sha256:abc"],
  ["digest with unknown algorithm", `ubuntu@md5:${hexA}`, "DIGEST_INVALID", "md5:"],
  ["digest with uppercase hex", `ubuntu@sha256:${hexA.toUpperCase()}`, "DIGEST_INVALID", "digest"],
  ["two @ signs", `ubuntu@${digestA}@${digestA}`, "DIGEST_INVALID", "digest"],
];

describe("parseReference: rejections", () => {
  for (const [rule, input, code, messagePart] of invalid) {
    it(rule, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => {
          assert.ok(isAppError(err, "BadRequest"), `expected BadRequest, got ${String(err)}`);
          assert.equal(err.code, code);
          assert.ok(err.message.includes(messagePart), `message "${err.message}" should mention ${messagePart}`);
          const shownInput = input.length > 300 ? input.slice(0, 300) : input;
          assert.ok(err.message.includes(shownInput), `message "${err.message}" should name the input`);
          return true;
        },
      );
    });
  }
});

describe("formatReference and defaults", () => {
  it("formats fully qualified references without inventing a tag", () => {
    assert.equal(formatReference(parseReference("ubuntu")), "docker.io/library/ubuntu");
    assert.equal(formatReference(parseReference(`localhost:5000/a/b:t@${digestA}`)), `localhost:5000/a/b:t@${digestA}`);
  });
  it("round-trips through parse", () => {
    for (const [, input] of valid) {
      const ref = parseReference(input);
      assert.deepEqual(parseReference(formatReference(ref)), ref);
    }
  });
  it("tagOrDefault gives latest only when no tag was given", () => {
    assert.equal(tagOrDefault(parseReference("ubuntu")), "latest");
    assert.equal(tagOrDefault(parseReference("ubuntu:22.04")), "22.04");
  });
  it("manifestReferenceOf prefers the digest", () => {
    assert.equal(manifestReferenceOf(parseReference(`x:1@${digestA}`)), digestA);
    assert.equal(manifestReferenceOf(parseReference("x:1")), "1");
    assert.equal(manifestReferenceOf(parseReference("x")), "latest");
  });
});

describe("validateRepositoryName (the <name> of /v2/<name>/…)", () => {
  const accepted = ["a", "library/ubuntu", "a/b/c", "my-org/my.app_x"];
  for (const name of accepted) it(`accepts ${name}`, () => assert.equal(validateRepositoryName(name), name));

  const rejected: Array<[rule: string, name: string, messagePart: string]> = [
    ["dot-dot", "a/../b", '".."'],
    ["single dot", "a/./b", '"."'],
    ["empty component", "a//b", "empty path component"],
    ["uppercase", "a/B", "lowercase"],
    ["leading slash", "/a", "starts with a slash"],
    ["trailing slash", "a/", "ends with a slash"],
    ["empty", "", "empty"],
    ["over-long", `${"a/".repeat(128)}a`, "longer than 255"],
    ["percent-encoded", "a%2fb", '"a%2fb"'],
  ];
  for (const [rule, name, messagePart] of rejected) {
    it(`rejects ${rule}`, () => {
      assert.throws(
        () => validateRepositoryName(name),
        (err: unknown) =>
          isAppError(err, "BadRequest") &&
          err.code === "NAME_INVALID" &&
          err.message.includes(messagePart) &&
          err.message.includes(JSON.stringify(name.slice(0, 300)).slice(1, -1).slice(0, 40)),
      );
    });
  }
});

describe("tags and manifest references", () => {
  it("validateTag accepts and rejects per the grammar", () => {
    assert.equal(validateTag("v1.9.0"), "v1.9.0");
    for (const bad of ["", "-x", ".x", "a/b", "a:b", "t".repeat(129)]) {
      assert.throws(
        () => validateTag(bad),
        (err: unknown) => isAppError(err, "BadRequest") && err.code === "TAG_INVALID",
      );
    }
  });
  it("isDigestReference tells digests from tags by the colon", () => {
    assert.equal(isDigestReference(digestA), true);
    assert.equal(isDigestReference("sha256:nothex"), true);
    assert.equal(isDigestReference("latest"), false);
  });
  it("parseManifestReference validates either form", () => {
    assert.deepEqual(parseManifestReference("v1"), { tag: "v1" });
    assert.deepEqual(parseManifestReference(digestA), { digest: digestA });
    assert.throws(
      () => parseManifestReference("sha256:zz"),
      (err: unknown) => isAppError(err, "BadRequest") && err.code === "DIGEST_INVALID",
    );
    assert.throws(
      () => parseManifestReference("-bad"),
      (err: unknown) => isAppError(err, "BadRequest") && err.code === "TAG_INVALID",
    );
  });
});
