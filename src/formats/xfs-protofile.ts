// An mkfs.xfs protofile (xfsprogs `-p`, see mkfs.xfs(8)) describing a directory tree, so mkfs.xfs fills the
// new file system itself: no mount needed. As upstream's makefs.GenerateProtofile: every entry owned by
// 0:0, permissions kept, in each directory the non-directories first and then the directories, each
// directory closed by "$". Names are sorted, so the same tree gives the same protofile.
//
//   /                      a dummy line (formerly the boot file)
//   0 0                    blocks and inodes (unused)
//   d--755 0 0             the root directory
//    name ---644 0 0 /source/path
//    link l--777 0 0 target
//    sub d--755 0 0
//     …
//    $                     end of sub
//   $                      end of the root

import type { Stats } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { badRequest } from "../errors.ts";

/** Bounds: BOOT holds a handful of files; a runaway tree is a mistake. */
const maxEntries = 100_000;

function modeField(stats: Stats): string {
  let type: string;
  if (stats.isDirectory()) type = "d";
  else if (stats.isSymbolicLink()) type = "l";
  else if (stats.isFile()) type = "-";
  else throw badRequest("only directories, regular files and symlinks can go into an XFS protofile");
  const suid = stats.mode & 0o4000 ? "u" : "-";
  const sgid = stats.mode & 0o2000 ? "g" : "-";
  return `${type}${suid}${sgid}${(stats.mode & 0o777).toString(8).padStart(3, "0")} 0 0`;
}

// The protofile is whitespace-separated tokens: names and paths with whitespace cannot be expressed.
function checkToken(what: string, value: string): void {
  if (value === "" || /\s/.test(value))
    throw badRequest(`XFS protofile: ${what} "${value}" is empty or has whitespace`);
}

/** The protofile for the tree at `dir` (source paths in it absolute). */
export async function xfsProtofile(dir: string): Promise<string> {
  const root = resolve(dir);
  const rootStats = await lstat(root);
  if (!rootStats.isDirectory()) throw badRequest(`${root} is not a directory`);
  checkToken("source directory", root);
  const lines = ["/", "0 0", modeField(rootStats)];
  let count = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    const names = (await readdir(dir)).sort();
    const indent = " ".repeat(depth);
    const children: { name: string; path: string; stats: Stats }[] = [];
    for (const name of names) {
      if (++count > maxEntries) throw badRequest(`XFS protofile: more than ${maxEntries} entries`);
      checkToken("name", name);
      const path = join(dir, name);
      children.push({ name, path, stats: await lstat(path) });
    }
    for (const { name, path, stats } of children) {
      if (stats.isDirectory()) continue;
      let extra: string;
      if (stats.isSymbolicLink()) extra = await readlink(path);
      else extra = path;
      checkToken("path", extra);
      lines.push(`${indent}${name} ${modeField(stats)} ${extra}`);
    }
    for (const { name, path, stats } of children) {
      if (!stats.isDirectory()) continue;
      lines.push(`${indent}${name} ${modeField(stats)}`);
      await walk(path, depth + 1);
      lines.push(`${indent}$`);
    }
  };
  await walk(root, 1);
  lines.push("$");
  return `${lines.join("\n")}\n`;
}
