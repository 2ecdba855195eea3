/**
 * The machine's file-system refusals in words. A full disk, a read-only folder or a file where a
 * folder should be is the user's to fix, not a bug, so it becomes an ExcitorInputError naming the
 * path and the cause (Node's own message for a failed write names no file at all).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "./errors";

const CAUSES: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EFBIG: "file too large",
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "a part of the path is a file, not a folder",
  EISDIR: "it is a folder",
  ENAMETOOLONG: "name too long",
  EIO: "input/output error",
};

/** `e` as an ExcitorInputError naming `file` when its cause is one of CAUSES, else `e` unchanged. */
export function fsFailure(e: unknown, file: string, doing: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof ExcitorInputError || code === undefined || !(code in CAUSES)) return e;
  return new ExcitorInputError(`${file}: cannot ${doing}: ${CAUSES[code]}`, file);
}

/**
 * `mkdir -p` that ends with a message. Node's recursive mkdir loops forever where a parent exists
 * but refuses new entries (`/proc/x`), and names a file in the way only by errno.
 * Returns the folders it created, outermost first.
 */
export function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(d, { throwIfNoEntry: false });
    } catch (e) {
      // ENOTDIR: a file further up is in the way; the walk up finds it.
      if ((e as NodeJS.ErrnoException).code !== "ENOTDIR") throw fsFailure(e, d, "read the folder");
    }
    if (st) {
      if (!st.isDirectory()) throw new ExcitorInputError(d === path.resolve(dir) ? `${dir}: is a file, not a folder` : `${dir}: ${d} is a file, not a folder`, dir);
      break;
    }
    missing.unshift(d);
    d = path.dirname(d);
  }
  for (const m of missing) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && fs.statSync(m).isDirectory()) continue; // made meanwhile by another process
      if (code === "ENOENT") throw new ExcitorInputError(`${dir}: cannot create the folder: ${path.dirname(m)} does not accept new entries`, dir);
      throw fsFailure(e, dir, "create the folder");
    }
  }
  return missing;
}
