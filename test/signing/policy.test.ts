// The identity policy, rule by rule. Expected outcomes come from the rules in docs/upstream.md ("Signature verification") (whole-string
// match, RE2 syntax, one of several identities, no issuer → no match), not from the implementation.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AppError } from "../../src/errors.ts";
import { type IdentityMatcher, IdentityPolicy, vendorIdentity } from "../../src/signing/policy.ts";

const google = "https://accounts.google.com";
const github = "https://token.actions.githubusercontent.com";
const seedIssuer = "(https://token\\.actions\\.githubusercontent\\.com)|(https://accounts\\.google.com)";
const seedSubject =
  "(https://github.com/jfroy/talos-boot-assets/\\.github/workflows/assets\\.yaml@refs/heads/release-.+)|(.+@siderolabs\\.com)";
const seed: IdentityMatcher = { issuerRegExp: seedIssuer, subjectRegExp: seedSubject };
const seedWorkflow = "https://github.com/jfroy/talos-boot-assets/.github/workflows/assets.yaml@refs/heads/release-1.9";

interface Row {
  rule: string;
  identities: IdentityMatcher[];
  issuer: string | undefined;
  subject: string;
  matches: boolean;
  /** For bypass rows: what an unanchored (cosign-style) match would have said. */
  unanchored?: boolean;
}

const rows: Row[] = [
  {
    rule: "an exact subject and issuer match themselves",
    identities: [{ issuer: google, subject: "a@b.c" }],
    issuer: google,
    subject: "a@b.c",
    matches: true,
  },
  {
    rule: "an exact subject does not match a longer one",
    identities: [{ issuer: google, subject: "a@b.c" }],
    issuer: google,
    subject: "xa@b.c",
    matches: false,
  },
  {
    rule: "the seed regexps accept the seed's own workflow",
    identities: [seed],
    issuer: github,
    subject: seedWorkflow,
    matches: true,
  },
  {
    rule: "the seed regexps accept a vendor email from Google",
    identities: [seed],
    issuer: google,
    subject: "dev@siderolabs.com",
    matches: true,
  },
  {
    rule: "the seed subject regexp, anchored, refuses an email at a domain that only starts with siderolabs.com",
    identities: [seed],
    issuer: google,
    subject: "mallory@siderolabs.com.evil.example",
    matches: false,
    unanchored: true,
  },
  {
    rule: "the seed issuer regexp, anchored, refuses an issuer that only starts with accounts.google.com",
    identities: [seed],
    issuer: "https://accounts.google.com.evil.example",
    subject: "dev@siderolabs.com",
    matches: false,
    unanchored: true,
  },
  {
    rule: "the seed's workflow branch, anchored, refuses a fork's workflow that embeds it",
    identities: [seed],
    issuer: github,
    subject:
      "https://github.com/evil/fork/.github/workflows/x.yaml@refs/heads/main/https://github.com/jfroy/talos-boot-assets/.github/workflows/assets.yaml@refs/heads/release-1",
    matches: false,
    unanchored: true,
  },
  {
    rule: "a regexp for OWNER/REPO does not match https://github.com/evil/OWNER/REPO-fork/...",
    identities: [{ issuer: github, subjectRegExp: "OWNER/REPO.*" }],
    issuer: github,
    subject: "https://github.com/evil/OWNER/REPO-fork/.github/workflows/release.yaml@refs/heads/main",
    matches: false,
    unanchored: true,
  },
  {
    rule: "every alternative is anchored, not just the first and last",
    identities: [{ issuer: github, subjectRegExp: "a|b|c" }],
    issuer: github,
    subject: "xbx",
    matches: false,
    unanchored: true,
  },
  {
    rule: "RE2 flags work: (?i) makes the match case-insensitive",
    identities: [{ issuer: google, subjectRegExp: "(?i).+@SIDEROLABS\\.COM" }],
    issuer: google,
    subject: "dev@siderolabs.com",
    matches: true,
  },
  {
    rule: "a missing issuer never matches, even against .*",
    identities: [{ issuerRegExp: ".*", subjectRegExp: ".*" }],
    issuer: undefined,
    subject: "dev@siderolabs.com",
    matches: false,
  },
  {
    rule: "an empty issuer never matches, even against .*",
    identities: [{ issuerRegExp: ".*", subjectRegExp: ".*" }],
    issuer: "",
    subject: "dev@siderolabs.com",
    matches: false,
  },
  {
    rule: "with several identities, one matching is enough",
    identities: [
      { issuer: github, subject: "https://github.com/a/b" },
      { issuer: google, subjectRegExp: ".+@siderolabs\\.com" },
    ],
    issuer: google,
    subject: "dev@siderolabs.com",
    matches: true,
  },
  {
    rule: "issuer and subject must match within the same identity",
    identities: [
      { issuer: github, subject: "dev@siderolabs.com" },
      { issuer: google, subject: "https://github.com/a/b" },
    ],
    issuer: google,
    subject: "dev@siderolabs.com",
    matches: false,
  },
  {
    rule: "the vendor identity accepts a siderolabs.com Google account",
    identities: [vendorIdentity],
    issuer: google,
    subject: "dev@siderolabs.com",
    matches: true,
  },
  {
    rule: "the vendor identity accepts the release manager service account",
    identities: [vendorIdentity],
    issuer: google,
    subject: "releasemgr-svc@talos-production.iam.gserviceaccount.com",
    matches: true,
  },
  {
    rule: "the vendor identity refuses another Google account",
    identities: [vendorIdentity],
    issuer: google,
    subject: "dev@gmail.com",
    matches: false,
  },
  {
    rule: "the vendor identity refuses a siderolabs.com subject from another issuer",
    identities: [vendorIdentity],
    issuer: github,
    subject: "dev@siderolabs.com",
    matches: false,
  },
];

describe("identity policy", () => {
  for (const row of rows) {
    test(row.rule, () => {
      const policy = IdentityPolicy.compile(row.identities);
      assert.equal(policy.match({ issuer: row.issuer, subject: row.subject }) !== undefined, row.matches);
      if (row.unanchored !== undefined) {
        // The bypass is real: an unanchored match of the same expressions would have accepted it.
        const m = row.identities[0] as IdentityMatcher;
        const unanchored =
          (m.issuerRegExp ? new RegExp(m.issuerRegExp).test(row.issuer ?? "") : m.issuer === row.issuer) &&
          (m.subjectRegExp ? new RegExp(m.subjectRegExp).test(row.subject) : m.subject === row.subject);
        assert.equal(unanchored, row.unanchored);
      }
    });
  }

  test("the matched identity is returned, for reporting", () => {
    const second: IdentityMatcher = { issuer: google, subjectRegExp: ".+" };
    const policy = IdentityPolicy.compile([{ issuer: github, subject: "x" }, second]);
    assert.equal(policy.match({ issuer: google, subject: "y" }), second);
  });

  test("RE2 runs in linear time on a pathological subject", () => {
    const policy = IdentityPolicy.compile([{ issuer: google, subjectRegExp: "(a+)+b" }]);
    const started = performance.now();
    assert.equal(policy.match({ issuer: google, subject: `${"a".repeat(5000)}c` }), undefined);
    assert.ok(performance.now() - started < 1000);
  });
});

describe("identity policy errors", () => {
  const cases: Array<{ rule: string; identity: IdentityMatcher; message: RegExp }> = [
    {
      rule: "an invalid regexp names the flag and the problem",
      identity: { issuer: google, subjectRegExp: "(a" },
      message: /--certificate-identity-regexp "\(a": invalid regular expression: .*missing closing \)/,
    },
    {
      rule: "parentheses that would close the anchoring group are refused (a)|(.* would match anything)",
      identity: { issuer: google, subjectRegExp: "a)|(.*" },
      message: /--certificate-identity-regexp "a\)\|\(\.\*": invalid regular expression: .*unexpected \)/,
    },
    {
      rule: "Perl-only syntax (lookahead) is refused",
      identity: { issuerRegExp: "x(?=y)", subject: "s" },
      message: /--certificate-oidc-issuer-regexp .*invalid regular expression/,
    },
    {
      rule: "an identity needs a subject",
      identity: { issuer: google },
      message: /needs --certificate-identity or --certificate-identity-regexp/,
    },
    {
      rule: "an identity needs an issuer",
      identity: { subject: "a@b.c" },
      message: /needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp/,
    },
    {
      rule: "exact and regexp forms of one field are exclusive",
      identity: { issuer: google, issuerRegExp: ".*", subject: "x" },
      message: /mutually exclusive/,
    },
  ];
  for (const c of cases) {
    test(c.rule, () => {
      assert.throws(
        () => IdentityPolicy.compile([c.identity]),
        (err: unknown) => err instanceof AppError && err.kind === "BadRequest" && c.message.test(err.message),
      );
    });
  }
});
