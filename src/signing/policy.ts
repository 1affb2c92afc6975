// Keyless identity policy: which certificate issuers and subjects an operator trusts.
//
// Rules (stricter than cosign, on purpose):
// - An identity names its issuer AND its subject, each either exactly (`issuer`, `subject`) or as a regular
//   expression (`issuerRegExp`, `subjectRegExp`); exactly one form of each is required.
// - A regular expression must match the WHOLE string: it is compiled as `^(?:RE)$`, so every alternative of a
//   seed-style `(A)|(B)` is anchored. cosign and upstream image-factory match unanchored, where a regexp for
//   `https://github.com/OWNER/REPO/...` also accepts `https://github.com/evil/OWNER/REPO-fork/...`.
// - RE2 semantics (re2js): operators write the Go/cosign syntax they know (`(?i)`, `\pL`…), and matching runs in
//   linear time on attacker-chosen certificate subjects. Perl-only syntax (lookaround, backreferences) is refused.
// - Several identities may be configured; a certificate is accepted when one of them matches.
// - A certificate without an issuer never matches, whatever the policy.

import { RE2JS } from "re2js";
import { badRequest } from "../errors.ts";

export interface IdentityMatcher {
  /** The OIDC issuer, exactly. */
  issuer?: string;
  /** The OIDC issuer as a whole-string RE2 regular expression. */
  issuerRegExp?: string;
  /** The certificate subject (SAN URI or email), exactly. */
  subject?: string;
  /** The certificate subject as a whole-string RE2 regular expression. */
  subjectRegExp?: string;
}

/**
 * The vendor's own signing identity (Sidero Labs' extensions and release images), anchored: any
 * `@siderolabs.com` Google account, or the release manager service account.
 */
export const vendorIdentity: Readonly<IdentityMatcher> = Object.freeze({
  issuer: "https://accounts.google.com",
  subjectRegExp: ".+@siderolabs\\.com|releasemgr-svc@talos-production\\.iam\\.gserviceaccount\\.com",
});

/** The identity a certificate claims: its OIDC issuer (absent when the certificate has none) and its subject. */
export interface CertificateIdentity {
  issuer: string | undefined;
  subject: string;
}

/** Names of the options that carry each matcher field, so errors speak the operator's language. */
export interface IdentityFlagNames {
  issuer: string;
  issuerRegExp: string;
  subject: string;
  subjectRegExp: string;
}

export const cosignFlagNames: IdentityFlagNames = {
  issuer: "--certificate-oidc-issuer",
  issuerRegExp: "--certificate-oidc-issuer-regexp",
  subject: "--certificate-identity",
  subjectRegExp: "--certificate-identity-regexp",
};

type StringTest = (value: string) => boolean;

interface CompiledIdentity {
  readonly source: IdentityMatcher;
  readonly issuer: StringTest;
  readonly subject: StringTest;
}

/** Compiles a user regexp to a whole-string RE2 matcher; BadRequest naming the flag when invalid. */
export function compileWholeMatch(expression: string, flag: string): StringTest {
  let compiled: RE2JS;
  try {
    // On its own first: an expression with unbalanced parentheses such as "a)|(.*" would otherwise close the
    // anchoring group and compile to "^(?:a)|(.*)$", which matches anything.
    RE2JS.compile(expression);
    compiled = RE2JS.compile(`^(?:${expression})$`);
  } catch (err) {
    throw badRequest(`${flag} ${JSON.stringify(expression)}: invalid regular expression: ${(err as Error).message}`);
  }
  // matches() is a whole-input match too; the explicit anchors keep the intent visible in the pattern.
  return (value) => compiled.matches(value);
}

function compileField(exact: string | undefined, expression: string | undefined, exactFlag: string, reFlag: string) {
  if (exact !== undefined && expression !== undefined)
    throw badRequest(`${exactFlag} and ${reFlag} are mutually exclusive in one identity`);
  if (exact !== undefined) {
    if (exact === "") throw badRequest(`${exactFlag} must not be empty`);
    return (value: string) => value === exact;
  }
  if (expression !== undefined) return compileWholeMatch(expression, reFlag);
  throw badRequest(`an identity needs ${exactFlag} or ${reFlag}`);
}

function describeMatcher(m: IdentityMatcher): string {
  const issuer = m.issuer !== undefined ? `issuer ${m.issuer}` : `issuer ~ ^(?:${m.issuerRegExp})$`;
  const subject = m.subject !== undefined ? `subject ${m.subject}` : `subject ~ ^(?:${m.subjectRegExp})$`;
  return `${subject}, ${issuer}`;
}

/** A compiled set of trusted identities. */
export class IdentityPolicy {
  private readonly identities: readonly CompiledIdentity[];

  private constructor(identities: readonly CompiledIdentity[]) {
    this.identities = identities;
  }

  /** Compiles the matchers; BadRequest naming the flag for a missing field or an invalid regexp. */
  static compile(matchers: readonly IdentityMatcher[], flags: IdentityFlagNames = cosignFlagNames): IdentityPolicy {
    const compiled = matchers.map((m) => ({
      source: m,
      issuer: compileField(m.issuer, m.issuerRegExp, flags.issuer, flags.issuerRegExp),
      subject: compileField(m.subject, m.subjectRegExp, flags.subject, flags.subjectRegExp),
    }));
    return new IdentityPolicy(compiled);
  }

  get size(): number {
    return this.identities.length;
  }

  /** The first configured identity the certificate matches, or undefined. */
  match(identity: CertificateIdentity): IdentityMatcher | undefined {
    if (identity.issuer === undefined || identity.issuer === "") return undefined;
    const { issuer, subject } = identity;
    return this.identities.find((i) => i.issuer(issuer) && i.subject(subject))?.source;
  }

  /** Human-readable list of what is trusted, for "does not match" messages. */
  describe(): string {
    return this.identities.map((i) => describeMatcher(i.source)).join("; or ");
  }
}
