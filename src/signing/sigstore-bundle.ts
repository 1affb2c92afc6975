// Builds Sigstore bundles (v0.3, JSON form) from signing material: a DSSE envelope, the signer's certificate or
// key hint, and transparency log entries. Shared by the signer and the test Sigstore so both write one shape.

import { createHash } from "node:crypto";
import { SigstoreBundleMediaType } from "./cosign-format.ts";

/** DSSE's pre-authentication encoding: what a DSSE signature actually signs. */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export interface DsseEnvelopeJson {
  payload: string;
  payloadType: string;
  signatures: { sig: string; keyid: string }[];
}

/** A transparency log entry as Rekor v1 returns it, in the shape the bundle needs. */
export interface TransparencyLogEntry {
  body: Buffer;
  integratedTime: number;
  logIndex: number;
  /** hex */
  logID: string;
  kind: string;
  apiVersion: string;
  signedEntryTimestamp?: Buffer;
  inclusionProof?: { logIndex: number; treeSize: number; rootHash: Buffer; hashes: Buffer[]; checkpoint: string };
}

export interface TlogEntryJson {
  logIndex: string;
  logId: { keyId: string };
  kindVersion: { kind: string; version: string };
  integratedTime: string;
  inclusionPromise?: { signedEntryTimestamp: string };
  inclusionProof?: {
    logIndex: string;
    rootHash: string;
    treeSize: string;
    hashes: string[];
    checkpoint: { envelope: string };
  };
  canonicalizedBody: string;
}

export interface SigstoreBundleJson {
  mediaType: string;
  verificationMaterial: {
    certificate?: { rawBytes: string };
    publicKey?: { hint: string };
    tlogEntries: TlogEntryJson[];
    timestampVerificationData: { rfc3161Timestamps?: { signedTimestamp: string }[] };
  };
  dsseEnvelope: DsseEnvelopeJson;
}

export function dsseEnvelope(payload: Buffer, payloadType: string, signature: Buffer): DsseEnvelopeJson {
  return {
    payload: payload.toString("base64"),
    payloadType,
    signatures: [{ sig: signature.toString("base64"), keyid: "" }],
  };
}

export function tlogEntryJson(entry: TransparencyLogEntry): TlogEntryJson {
  const json: TlogEntryJson = {
    logIndex: String(entry.logIndex),
    logId: { keyId: Buffer.from(entry.logID, "hex").toString("base64") },
    kindVersion: { kind: entry.kind, version: entry.apiVersion },
    integratedTime: String(entry.integratedTime),
    canonicalizedBody: entry.body.toString("base64"),
  };
  if (entry.signedEntryTimestamp)
    json.inclusionPromise = { signedEntryTimestamp: entry.signedEntryTimestamp.toString("base64") };
  if (entry.inclusionProof) {
    const p = entry.inclusionProof;
    json.inclusionProof = {
      logIndex: String(p.logIndex),
      rootHash: p.rootHash.toString("base64"),
      treeSize: String(p.treeSize),
      hashes: p.hashes.map((h) => h.toString("base64")),
      checkpoint: { envelope: p.checkpoint },
    };
  }
  return json;
}

/** Reads the DER out of a single-certificate PEM. */
export function pemToDer(pem: string): Buffer {
  const match = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!match?.[1]) throw new Error("no certificate in PEM");
  return Buffer.from(match[1].replace(/\s+/g, ""), "base64");
}

/** The key hint cosign and sigstore-js use for a public key: base64 of sha256 of its SPKI DER. */
export function publicKeyHint(spkiDer: Buffer): string {
  return createHash("sha256").update(spkiDer).digest("base64");
}

export function dsseBundle(input: {
  envelope: DsseEnvelopeJson;
  certificatePem?: string;
  publicKeyHint?: string;
  tlogEntries: TransparencyLogEntry[];
}): SigstoreBundleJson {
  const verificationMaterial: SigstoreBundleJson["verificationMaterial"] = {
    tlogEntries: input.tlogEntries.map(tlogEntryJson),
    timestampVerificationData: {},
  };
  if (input.certificatePem)
    verificationMaterial.certificate = { rawBytes: pemToDer(input.certificatePem).toString("base64") };
  else verificationMaterial.publicKey = { hint: input.publicKeyHint ?? "" };
  return { mediaType: SigstoreBundleMediaType, verificationMaterial, dsseEnvelope: input.envelope };
}
