// Following symlinks inside a flattened image tree as the image itself would see them: every link is
// resolved against the tree root (absolute targets mean "from the root", `..` stops at the root), so a chain
// of links that each look harmless can never lead a reader out of the tree, as plain OS path lookup could.

import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../errors.ts";

/** How many links one lookup may follow before it is judged a loop (Linux's own limit is 40). */
const maxLinkHops = 40;

/**
 * Resolves `path` (absolute or relative, as seen inside the image) to a path on disk under `root`, following
 * symlinks within the tree. The last component is followed too unless `followLast` is false. The result may
 * not exist; callers read it as usual.
 */
export async function resolveInTree(
  root: string,
  path: string,
  options: { followLast?: boolean } = {},
): Promise<string> {
  const followLast = options.followLast ?? true;
  const pending = splitPath(path);
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, part];
    const isLast = pending.length === 0;
    const stat = await lstat(join(root, ...candidate)).catch(() => undefined);
    if (stat?.isSymbolicLink() && (followLast || !isLast)) {
      if (++hops > maxLinkHops) throw badRequest(`too many levels of symbolic links resolving "${path}" in the image`);
      const target = await readlink(join(root, ...candidate));
      if (target.startsWith("/")) resolved.length = 0;
      pending.unshift(...splitPath(target));
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

function splitPath(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}
