// Fake Fulcio and Rekor v1 HTTP endpoints over a TestSigstore, enough for @sigstore/sign's clients and our
// keyless signer: POST /api/v2/signingCert and POST /api/v1/log/entries. The Fulcio side trusts the OIDC token's
// claims without checking its signature (it is a test double), but does check the proof of possession.

import { createHash, createPublicKey, verify } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestSigstore } from "./index.ts";
import { TestTransparencyLog } from "./tlog.ts";

export interface TestSigstoreServer {
  /** Base URL serving both Fulcio and Rekor paths. */
  url: string;
  /** Entries logged so far (bodies as Rekor stored them). */
  readonly entries: unknown[];
  close(): Promise<void>;
}

const maxRequestBytes = 1024 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxRequestBytes) throw new Error("request too large");
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Claims of an (unsigned) test OIDC token. */
export interface TestTokenClaims {
  iss: string;
  sub: string;
  email?: string;
  email_verified?: boolean;
  /** GitHub Actions: `OWNER/REPO/.github/workflows/FILE.yaml@REF`; becomes the SAN URI like Fulcio does. */
  job_workflow_ref?: string;
  aud?: string;
}

/** A JWT with the given claims and an `alg: none` header: only the fake Fulcio accepts it. */
export function makeTestIdentityToken(claims: TestTokenClaims): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ aud: "sigstore", iat: now, exp: now + 600, ...claims })}.`;
}

function identityOf(claims: TestTokenClaims): { subject: string; issuer: string; proofSubject: string } {
  if (claims.job_workflow_ref)
    return { subject: `https://github.com/${claims.job_workflow_ref}`, issuer: claims.iss, proofSubject: claims.sub };
  if (claims.email) return { subject: claims.email, issuer: claims.iss, proofSubject: claims.email };
  return { subject: claims.sub, issuer: claims.iss, proofSubject: claims.sub };
}

export async function startTestSigstoreServer(sigstore: TestSigstore): Promise<TestSigstoreServer> {
  const entries: unknown[] = [];

  async function signingCert(body: unknown, res: ServerResponse) {
    const request = body as {
      credentials?: { oidcIdentityToken?: string };
      publicKeyRequest?: { publicKey?: { content?: string }; proofOfPossession?: string };
    };
    const token = request.credentials?.oidcIdentityToken ?? "";
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as TestTokenClaims;
    const identity = identityOf(claims);
    const publicKey = createPublicKey(request.publicKeyRequest?.publicKey?.content ?? "");
    const proof = Buffer.from(request.publicKeyRequest?.proofOfPossession ?? "", "base64");
    if (!verify("sha256", Buffer.from(identity.proofSubject), publicKey, proof))
      return send(res, 400, { code: 400, message: "proof of possession failed" });
    const leaf = await sigstore.issueLeaf({ publicKey, subject: identity.subject, issuer: identity.issuer });
    send(res, 201, {
      signedCertificateEmbeddedSct: {
        chain: { certificates: [leaf.pem, sigstore.ca.intermediate.pem, sigstore.ca.root.pem] },
      },
    });
  }

  function createEntry(body: unknown, res: ServerResponse) {
    const proposed = body as {
      kind?: string;
      apiVersion?: string;
      spec?: { proposedContent?: { envelope: string; verifiers: string[] } };
    };
    let entryBody: unknown = proposed;
    if (proposed.kind === "dsse") {
      // Rekor turns a proposed DSSE entry into hashes of the envelope and payload plus the signatures.
      const content = proposed.spec?.proposedContent;
      const envelope = JSON.parse(content?.envelope ?? "{}") as { payload: string; signatures: { sig: string }[] };
      const verifierPem = Buffer.from(content?.verifiers[0] ?? "", "base64").toString("utf8");
      entryBody = TestTransparencyLog.dsseBody({
        envelopeJson: content?.envelope ?? "",
        payload: Buffer.from(envelope.payload, "base64"),
        signature: Buffer.from(envelope.signatures[0]?.sig ?? "", "base64"),
        verifierPem,
      });
    } else if (proposed.kind !== "hashedrekord") {
      return send(res, 400, { code: 400, message: `unsupported kind ${proposed.kind}` });
    }
    const entry = sigstore.rekor.append(entryBody);
    entries.push(entryBody);
    const uuid = createHash("sha256").update(entry.body).digest("hex");
    send(res, 201, {
      [uuid]: {
        body: entry.body.toString("base64"),
        integratedTime: entry.integratedTime,
        logID: entry.logID,
        logIndex: entry.logIndex,
        verification: {
          signedEntryTimestamp: entry.signedEntryTimestamp.toString("base64"),
          inclusionProof: {
            logIndex: entry.inclusionProof.logIndex,
            treeSize: entry.inclusionProof.treeSize,
            rootHash: entry.inclusionProof.rootHash.toString("hex"),
            hashes: entry.inclusionProof.hashes.map((h) => h.toString("hex")),
            checkpoint: entry.inclusionProof.checkpoint,
          },
        },
      },
    });
  }

  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method !== "POST") return send(res, 405, { code: 405, message: "method not allowed" });
        const body = await readJson(req);
        if (req.url === "/api/v2/signingCert") return await signingCert(body, res);
        if (req.url === "/api/v1/log/entries") return createEntry(body, res);
        send(res, 404, { code: 404, message: "not found" });
      } catch (err) {
        send(res, 400, { code: 400, message: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    entries,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
