// dpkg-deb (Debian dpkg): unpack a .deb's data without installing it, read its control fields.

import { type RunOptions, runTool, runToolText, type Tool } from "./run.ts";

export const dpkgDebTool: Tool = { command: "dpkg-deb", debianPackage: "dpkg" };

type Options = Pick<RunOptions, "signal" | "timeoutMs">;

/** Extracts the package's files into `destDir` (`dpkg-deb -x`; no maintainer scripts run). */
export async function dpkgDebExtract(debFile: string, destDir: string, options?: Options): Promise<void> {
  await runTool(dpkgDebTool, ["-x", debFile, destDir], options);
}

/** The package's control fields (`dpkg-deb -f`), e.g. Package, Version, Architecture, Depends. */
export async function dpkgDebFields(debFile: string, options?: Options): Promise<Record<string, string>> {
  return parseControlFields(await runToolText(dpkgDebTool, ["-f", debFile], options));
}

/** Parses one deb822 paragraph: "Key: value" lines, continuation lines start with a space. */
export function parseControlFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let current: string | undefined;
  for (const line of text.split("\n")) {
    if (line === "") {
      if (Object.keys(fields).length > 0) break; // only the first paragraph
      continue;
    }
    if ((line.startsWith(" ") || line.startsWith("\t")) && current !== undefined) {
      fields[current] += `\n${line.slice(1)}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    current = line.slice(0, colon);
    fields[current] = line.slice(colon + 1).trim();
  }
  return fields;
}
