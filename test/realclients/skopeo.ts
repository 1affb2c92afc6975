import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/**
 * Runs skopeo with the machine's signature policy bypassed (tests must not depend on /etc/containers);
 * rejects with skopeo's stderr when it fails.
 */
export async function skopeo(args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync("skopeo", ["--insecure-policy", ...args], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`skopeo ${args.join(" ")} failed: ${stderr.trim() || String(err)}`);
  }
}

/** Copies every platform of an OCI layout's tag into a plain-HTTP registry, keeping digests. */
export function pushLayout(layoutDir: string, tag: string, destination: string): Promise<string> {
  return skopeo([
    "copy",
    "--all",
    "--preserve-digests",
    "--dest-tls-verify=false",
    `oci:${layoutDir}:${tag}`,
    `docker://${destination}`,
  ]);
}
