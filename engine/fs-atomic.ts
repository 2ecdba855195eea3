import * as fs from "node:fs";
import * as path from "node:path";
import { fsFailure, makeDirs } from "./fs-errors";

/**
 * How files are opened for writing. Tests replace `open` to put a file on a full disk (an fd of
 * /dev/full fails every write with ENOSPC, as a full disk does); nothing else changes it.
 */
export const fileIo = {
  open: (file: string, flags: "w" | "a"): number => fs.openSync(file, flags),
};

/**
 * Writes a file so that a reader (or a crash at any moment) sees either the old content
 * or the new one, never half of it: write a sibling temporary file, fsync, rename.
 * A kill between the write and the rename leaves the temporary file (removeLeftoverTemps).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  writeFileAtomicWith(file, (write) => {
    for (const part of typeof data === "string" || data instanceof Uint8Array ? [data] : data) write(part);
  });
}

/**
 * writeFileAtomic for content produced piece by piece (a multi-gigabyte model file written one
 * tensor at a time, so it is never all in memory): `produce` calls `write` with each piece in order.
 * If `produce` throws, the temporary file is removed and the old content stays.
 */
export function writeFileAtomicWith(file: string, produce: (write: (part: string | Uint8Array) => void) => void): void {
  makeDirs(path.dirname(file));
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fd = fileIo.open(tmp, "w");
    try {
      produce((part) => writeAll(fd, [part]));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fsFailure(e, file, "write");
  }
}

/** Appends to a file (a log line), naming the file when the machine refuses. */
export function appendText(file: string, text: string): void {
  try {
    const fd = fileIo.open(file, "a");
    try {
      writeAll(fd, [text]);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw fsFailure(e, file, "write");
  }
}

function writeAll(fd: number, parts: readonly (string | Uint8Array)[]): void {
  for (const part of parts) {
    const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
    let off = 0;
    while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
  }
}

const TEMP = /\.tmp-(\d+)-\d+$/;

/**
 * Removes the temporary files that writes in `dir` left when their process was killed before the
 * rename; those of a live process (another window's write in progress) stay. Returns their names.
 */
export function removeLeftoverTemps(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = TEMP.exec(name);
    if (!m || writerAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** This process has no write in progress when a run starts, so its own pid counts as gone. */
function writerAlive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}
