// A Rekor-like transparency log and a CT log for tests. The Rekor log keeps its leaves in memory so that it can
// give both kinds of proof sigstore verifiers accept: the SET (inclusion promise) and an RFC 6962 inclusion proof
// with a signed checkpoint.

import { createHash, type KeyObject, sign } from "node:crypto";
import { json } from "@sigstore/core";
import { type EcCurve, generateEcKeyPair, type KeyPair } from "./ca.ts";

export interface LogKey {
  keys: KeyPair;
  /** SubjectPublicKeyInfo DER of the log's key. */
  spki: Buffer;
  /** sha256 of the SPKI: the log ID sigstore uses. */
  logId: Buffer;
}

export function createLogKey(curve: EcCurve = "P-256"): LogKey {
  return logKeyOf(generateEcKeyPair(curve));
}

/** The log key for an existing key pair (a persisted test log, e.g. the test bed's). */
export function logKeyOf(keys: KeyPair): LogKey {
  const spki = keys.publicKey.export({ type: "spki", format: "der" });
  return { keys, spki, logId: createHash("sha256").update(spki).digest() };
}

function hashFor(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "sha384" : "sha256";
}

/** A transparency log entry as both the legacy annotation and the bundle need it. */
export interface LogEntry {
  /** The canonical JSON body as stored by the log. */
  body: Buffer;
  integratedTime: number;
  logIndex: number;
  /** hex of the log ID. */
  logID: string;
  signedEntryTimestamp: Buffer;
  kind: string;
  apiVersion: string;
  inclusionProof: { logIndex: number; treeSize: number; rootHash: Buffer; hashes: Buffer[]; checkpoint: string };
}

export interface LogOptions {
  /** Host-like name used as the checkpoint origin; it must appear in the trusted root's baseUrl. */
  origin?: string;
  curve?: EcCurve;
  /** Sign with this key pair instead of a fresh one (`curve` is then ignored). */
  keys?: KeyPair;
}

export interface AppendOptions {
  /** Unix seconds; default now. */
  integratedTime?: number;
}

const leafHash = (leaf: Buffer) =>
  createHash("sha256")
    .update(Buffer.from([0]))
    .update(leaf)
    .digest();
const nodeHash = (l: Buffer, r: Buffer) =>
  createHash("sha256")
    .update(Buffer.from([1]))
    .update(l)
    .update(r)
    .digest();

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function treeHash(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0] as Buffer;
  const k = largestPowerOfTwoBelow(leaves.length);
  return nodeHash(treeHash(leaves.slice(0, k)), treeHash(leaves.slice(k)));
}

/** RFC 6962 audit path, leaf to root. */
function auditPath(index: number, leaves: readonly Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  const k = largestPowerOfTwoBelow(leaves.length);
  return index < k
    ? [...auditPath(index, leaves.slice(0, k)), treeHash(leaves.slice(k))]
    : [...auditPath(index - k, leaves.slice(k)), treeHash(leaves.slice(0, k))];
}

export class TestTransparencyLog {
  readonly key: LogKey;
  readonly origin: string;
  readonly baseUrl: string;
  private readonly leaves: Buffer[] = [];

  constructor(options: LogOptions = {}) {
    this.key = options.keys ? logKeyOf(options.keys) : createLogKey(options.curve);
    this.origin = options.origin ?? "rekor.test";
    this.baseUrl = `https://${this.origin}`;
  }

  get logIdHex(): string {
    return this.key.logId.toString("hex");
  }

  /** hashedrekord v0.0.1 body: what Rekor stores for a plain signature over a digest (legacy cosign). */
  static hashedRekordBody(input: { signature: Buffer; verifierPem: string; digestHex: string }): unknown {
    return {
      apiVersion: "0.0.1",
      kind: "hashedrekord",
      spec: {
        data: { hash: { algorithm: "sha256", value: input.digestHex } },
        signature: {
          content: input.signature.toString("base64"),
          publicKey: { content: Buffer.from(input.verifierPem).toString("base64") },
        },
      },
    };
  }

  /** dsse v0.0.1 body: what Rekor stores for a DSSE envelope (cosign v3 bundles). */
  static dsseBody(input: { envelopeJson: string; payload: Buffer; signature: Buffer; verifierPem: string }): unknown {
    const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
    return {
      apiVersion: "0.0.1",
      kind: "dsse",
      spec: {
        envelopeHash: { algorithm: "sha256", value: sha256(input.envelopeJson) },
        payloadHash: { algorithm: "sha256", value: sha256(input.payload) },
        signatures: [
          {
            signature: input.signature.toString("base64"),
            verifier: Buffer.from(input.verifierPem).toString("base64"),
          },
        ],
      },
    };
  }

  /** Appends an entry body (any JSON with kind/apiVersion) and returns the entry with its SET and proof. */
  append(entryBody: unknown, options: AppendOptions = {}): LogEntry {
    const { kind, apiVersion } = entryBody as { kind: string; apiVersion: string };
    const body = Buffer.from(json.canonicalize(entryBody), "utf8");
    const integratedTime = options.integratedTime ?? Math.floor(Date.now() / 1000);
    const logIndex = this.leaves.length;
    this.leaves.push(leafHash(body));
    const signedEntryTimestamp = this.signedEntryTimestamp({ body, integratedTime, logIndex });
    return {
      body,
      integratedTime,
      logIndex,
      logID: this.logIdHex,
      signedEntryTimestamp,
      kind,
      apiVersion,
      inclusionProof: this.proof(logIndex),
    };
  }

  /** The SET: the log's signature over the canonical JSON of body, integratedTime, logID and logIndex. */
  signedEntryTimestamp(entry: { body: Buffer; integratedTime: number; logIndex: number }): Buffer {
    const payload = json.canonicalize({
      body: entry.body.toString("base64"),
      integratedTime: entry.integratedTime,
      logID: this.logIdHex,
      logIndex: entry.logIndex,
    });
    return sign(hashFor(this.key.keys.privateKey), Buffer.from(payload), this.key.keys.privateKey);
  }

  private proof(logIndex: number): LogEntry["inclusionProof"] {
    const treeSize = this.leaves.length;
    const rootHash = treeHash(this.leaves);
    const note = `${this.origin} - 1\n${treeSize}\n${rootHash.toString("base64")}\n`;
    const signature = sign(hashFor(this.key.keys.privateKey), Buffer.from(note), this.key.keys.privateKey);
    const hinted = Buffer.concat([this.key.logId.subarray(0, 4), signature]);
    const checkpoint = `${note}\n\u2014 ${this.origin} ${hinted.toString("base64")}\n`;
    return { logIndex, treeSize, rootHash, hashes: auditPath(logIndex, this.leaves), checkpoint };
  }
}

/** A certificate transparency log that signs SCTs for precertificates. */
export class TestCtLog {
  readonly key: LogKey;
  readonly baseUrl: string;
  constructor(options: { curve?: EcCurve; baseUrl?: string } = {}) {
    this.key = createLogKey(options.curve);
    this.baseUrl = options.baseUrl ?? "https://ctfe.test";
  }

  /** An RFC 6962 v1 SCT over a precert entry, serialized as it appears in the SCT list. */
  signSct(pre: { issuerKeyHash: Buffer; tbsCertificate: Buffer }, at: Date = new Date()): Buffer {
    const timestamp = Buffer.alloc(8);
    timestamp.writeBigUInt64BE(BigInt(at.getTime()));
    const tbsLength = Buffer.alloc(3);
    tbsLength.writeUIntBE(pre.tbsCertificate.length, 0, 3);
    const signed = Buffer.concat([
      Buffer.from([0, 0]), // version v1, signature type certificate_timestamp
      timestamp,
      Buffer.from([0, 1]), // entry type precert_entry
      pre.issuerKeyHash,
      tbsLength,
      pre.tbsCertificate,
      Buffer.from([0, 0]), // no extensions
    ]);
    const signature = sign("sha256", signed, this.key.keys.privateKey);
    const sigLength = Buffer.alloc(2);
    sigLength.writeUInt16BE(signature.length);
    return Buffer.concat([
      Buffer.from([0]),
      this.key.logId,
      timestamp,
      Buffer.from([0, 0]),
      Buffer.from([4, 3]), // sha256, ecdsa
      sigLength,
      signature,
    ]);
  }
}
