// One cosign v3 signature: a Sigstore bundle holding a DSSE envelope of an in-toto statement. sigstore-js
// verifies the envelope (keyless or with the configured key); then the statement must be cosign's signing
// predicate about this very image digest.

import { assertBundle, type Bundle, bundleFromJSON } from "@sigstore/bundle";
import { integrity } from "../errors.ts";
import { type Digest, digestAlgorithm, digestHex } from "../oci/digest.ts";
import { CosignSignPredicateType, InTotoPayloadType } from "./cosign-format.ts";
import { type SignerInfo, verifyKeyBundle, verifyKeylessBundle } from "./sigstore-checks.ts";
import type { LoadedVerification } from "./verify-options.ts";

const statementTypes = ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];

/** Parses bundle JSON bytes into a structurally valid bundle. */
export function parseBundle(bytes: Buffer): Bundle {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw integrity(`the bundle is not JSON: ${(err as Error).message}`);
  }
  try {
    const bundle = bundleFromJSON(json);
    assertBundle(bundle);
    return bundle;
  } catch (err) {
    const fields = (err as { fields?: unknown }).fields;
    throw integrity(
      `the bundle is invalid: ${(err as Error).message}${Array.isArray(fields) ? ` (${fields.join(", ")})` : ""}`,
    );
  }
}

/** The envelope's statement must be cosign's signing predicate with the image digest among its subjects. */
export function checkStatement(bundle: Bundle, imageDigest: Digest): void {
  if (bundle.content.$case !== "dsseEnvelope")
    throw integrity("the bundle holds a message signature, not a DSSE envelope");
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== InTotoPayloadType)
    throw integrity(`the envelope's payload type is ${envelope.payloadType}, not ${InTotoPayloadType}`);
  let statement: { _type?: unknown; predicateType?: unknown; subject?: unknown };
  try {
    statement = JSON.parse(Buffer.from(envelope.payload).toString("utf8"));
  } catch {
    throw integrity("the envelope's payload is not JSON");
  }
  if (typeof statement._type !== "string" || !statementTypes.includes(statement._type))
    throw integrity(`the statement type ${String(statement._type)} is not in-toto`);
  if (statement.predicateType !== CosignSignPredicateType)
    throw integrity(`the predicate type is ${String(statement.predicateType)}, not ${CosignSignPredicateType}`);
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const algorithm = digestAlgorithm(imageDigest);
  const hex = digestHex(imageDigest);
  const names = subjects.some((s) => (s as { digest?: Record<string, unknown> } | null)?.digest?.[algorithm] === hex);
  if (!names) throw integrity(`the statement's subjects do not include this image ${imageDigest}`);
}

/** Verifies a parsed bundle for an image; throws Integrity saying why when no configured trust accepts it. */
export function verifyImageBundle(bundle: Bundle, imageDigest: Digest, verification: LoadedVerification): SignerInfo {
  checkStatement(bundle, imageDigest);
  if (bundle.verificationMaterial.content.$case === "publicKey") {
    if (!verification.key) throw integrity("the bundle is signed with a key, but no key is configured");
    return verifyKeyBundle(bundle, undefined, verification.key);
  }
  if (!verification.keyless) throw integrity("the bundle is a keyless signature, but no identity is configured");
  return verifyKeylessBundle(bundle, undefined, verification.keyless);
}
