/**
 * Images attached to a chat with a multimodal adapter. The engine takes an image as a file path,
 * but a webview can only hand over bytes (a pasted or dropped picture has no path), so every
 * attached image, whatever its source, is checked (PNG or JPEG by its first bytes, at most
 * MAX_IMAGE_BYTES) and copied into the chat's own image folder under a name made from its
 * content: the conversation keeps working when the original is moved, the webview can show it
 * from one folder it is allowed to read, and attaching the same picture twice stores it once.
 * The checks themselves are in image-rules.ts, which the webview shares. No vscode import, so
 * it is tested in plain Node.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../engine/fs-atomic";
import { imageFormat } from "./image-rules";

/**
 * Copies checked image bytes into `dir` as `<content hash>.png|jpg` (written whole or not at all)
 * and returns that path. Call imageProblem first.
 */
export function storeImage(dir: string, bytes: Uint8Array): string {
  const format = imageFormat(bytes);
  if (!format) throw new Error("not a PNG or JPEG image");
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 24);
  const file = path.join(dir, `${hash}.${format === "png" ? "png" : "jpg"}`);
  if (!fs.existsSync(file)) writeFileAtomic(file, bytes);
  return file;
}

/**
 * Removes the images in `dir` that nothing refers to any more (`keep`: the paths the stored
 * conversation uses) and that are older than `minAgeMs`, so a chat in another window that was
 * just given one keeps it. Errors are ignored: this is housekeeping.
 */
export function pruneImages(dir: string, keep: ReadonlySet<string>, minAgeMs: number, now = Date.now()): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!/^[0-9a-f]{24}\.(png|jpg)$/.test(name)) continue;
    const file = path.join(dir, name);
    if (keep.has(file)) continue;
    try {
      if (now - fs.statSync(file).mtimeMs >= minAgeMs) fs.rmSync(file, { force: true });
    } catch {
      // gone already, or not ours to remove
    }
  }
}
