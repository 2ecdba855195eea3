import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Writes a file so that a reader (or a crash at any moment) sees either the old content
 * or the new one, never half of it: write a sibling temporary file, fsync, rename.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(tmp, "w");
  try {
    const parts = typeof data === "string" || data instanceof Uint8Array ? [data] : data;
    for (const part of parts) {
      if (typeof part === "string") fs.writeSync(fd, part);
      else {
        let off = 0;
        while (off < part.byteLength) off += fs.writeSync(fd, part, off, part.byteLength - off);
      }
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}
