// Feeds a cosign legacy `.sig` layer to sigstore-js as a v0.1 message-signature bundle, the way a verifier does;
// the tests use it to check that what we write is what a Sigstore verifier accepts.

import { createHash, X509Certificate } from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";

export function legacyLayerAsBundle(payload: Buffer, annotations: Record<string, string>) {
  const rekor = JSON.parse(annotations["dev.sigstore.cosign/bundle"] as string);
  const body = JSON.parse(Buffer.from(rekor.Payload.body, "base64").toString()) as { kind: string; apiVersion: string };
  const certDer = new X509Certificate(annotations["dev.sigstore.cosign/certificate"] as string).raw;
  return bundleFromJSON({
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: {
      x509CertificateChain: { certificates: [{ rawBytes: certDer.toString("base64") }] },
      tlogEntries: [
        {
          logIndex: String(rekor.Payload.logIndex),
          logId: { keyId: Buffer.from(rekor.Payload.logID, "hex").toString("base64") },
          kindVersion: { kind: body.kind, version: body.apiVersion },
          integratedTime: String(rekor.Payload.integratedTime),
          inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
          canonicalizedBody: rekor.Payload.body,
        },
      ],
    },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(payload).digest("base64") },
      signature: annotations["dev.cosignproject.cosign/signature"],
    },
  });
}
