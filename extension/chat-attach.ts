/**
 * Where the chat's images come from: the attach button's file dialog, a file dropped from the
 * Explorer or an editor tab (a URI), or bytes pasted or dropped into the webview. Each is checked
 * (image-rules.ts) and copied into the chat's image folder (chat-image.ts) before the chat uses
 * it; a problem comes back as one line for the chat to show.
 */
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import { storeImage } from "./chat-image";
import { imageName, imageProblem, imageSizeProblem } from "./image-rules";
import type { ChatImage } from "./messages";

export type Attached = { ok: true; image: ChatImage } | { ok: false; error: string };

/**
 * The chat's image folder: in the workspace's storage (or the extension's global storage without a
 * workspace), or, for storage that is not on disk, the system's temp folder.
 */
export function imagesFolder(ctx: vscode.ExtensionContext): string {
  const base = ctx.storageUri ?? ctx.globalStorageUri;
  return base.scheme === "file" ? path.join(base.fsPath, "chat-images") : path.join(os.tmpdir(), "excitor-images");
}

/** Bytes from the webview (pasted or dropped). */
export function imageFromBytes(dir: string, rawName: string, base64: string): Attached {
  const bytes = Buffer.from(base64, "base64");
  return keep(dir, imageName(rawName), bytes);
}

/** A file by URI (dropped, or chosen in the dialog); its size is looked at before it is read. */
export async function imageFromUri(dir: string, uri: vscode.Uri): Promise<Attached> {
  const name = imageName(uri.path);
  try {
    const stat = await vscode.workspace.fs.stat(uri);
    if (stat.type & vscode.FileType.Directory) return { ok: false, error: `${name} is a folder, not an image` };
    const tooBig = imageSizeProblem(name, stat.size);
    if (tooBig) return { ok: false, error: tooBig };
    return keep(dir, name, await vscode.workspace.fs.readFile(uri));
  } catch (e) {
    return { ok: false, error: `${name}: cannot read (${e instanceof Error ? e.message : String(e)})` };
  }
}

/** The attach button: a PNG or JPEG file, or undefined when the dialog is dismissed. */
export async function chooseImage(dir: string): Promise<Attached | undefined> {
  const pick = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    filters: { Images: ["png", "jpg", "jpeg"] },
    openLabel: "Attach",
    title: "Attach an image (PNG or JPEG)",
  });
  return pick?.[0] ? imageFromUri(dir, pick[0]) : undefined;
}

function keep(dir: string, name: string, bytes: Uint8Array): Attached {
  const problem = imageProblem(name, bytes);
  if (problem) return { ok: false, error: problem };
  try {
    return { ok: true, image: { path: storeImage(dir, bytes), name } };
  } catch (e) {
    return { ok: false, error: `${name}: cannot keep a copy (${e instanceof Error ? e.message : String(e)})` };
  }
}
