// Minimal distribution-spec push over node:http, used to seed both registries identically for the benchmark.
import { createReadStream } from "node:fs";
import { type IncomingMessage, request } from "node:http";

interface Response {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** Error bodies are short JSON; anything longer is cut so a misbehaving server cannot flood memory. */
const MAX_BODY = 64 * 1024;

/** Bytes in memory, or a file on disk that is streamed (the benchmark blob is far too large to buffer). */
export type Body = Buffer | { path: string };

function send(method: string, url: string, headers: Record<string, string | number>, body?: Body): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (text.length < MAX_BODY) text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body && !Buffer.isBuffer(body)) {
      const file = createReadStream(body.path);
      file.on("error", (err) => req.destroy(err));
      file.pipe(req);
    } else {
      req.end(body);
    }
  });
}

function expectStatus(res: Response, status: number, what: string): void {
  if (res.status !== status)
    throw new Error(`${what}: expected ${status}, got ${res.status}: ${res.body.slice(0, 500)}`);
}

/** Pushes one blob with a monolithic upload (POST, then PUT with the digest). */
export async function pushBlob(
  baseUrl: string,
  repository: string,
  digest: string,
  size: number,
  content: Body,
): Promise<void> {
  const started = await send("POST", `${baseUrl}/v2/${repository}/blobs/uploads/`, { "Content-Length": 0 });
  expectStatus(started, 202, `start upload to ${repository}`);
  const location = started.headers.location;
  if (!location) throw new Error(`upload to ${repository}: no Location header`);
  const uploadUrl = new URL(location, baseUrl);
  uploadUrl.searchParams.set("digest", digest);
  const finished = await send(
    "PUT",
    uploadUrl.href,
    { "Content-Type": "application/octet-stream", "Content-Length": size },
    content,
  );
  expectStatus(finished, 201, `finish upload of ${digest}`);
}

export async function pushManifest(
  baseUrl: string,
  repository: string,
  reference: string,
  mediaType: string,
  manifest: Buffer,
): Promise<void> {
  const res = await send(
    "PUT",
    `${baseUrl}/v2/${repository}/manifests/${reference}`,
    { "Content-Type": mediaType, "Content-Length": manifest.length },
    manifest,
  );
  expectStatus(res, 201, `push manifest ${repository}:${reference}`);
}
