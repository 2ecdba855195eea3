/** How the host shows an engine error: one line, and "Open File" at the bad line when it knows the file. */
import * as fs from "node:fs";
import * as vscode from "vscode";
import type { RunError } from "./run-manager";

export async function showEngineError(prefix: string, err: RunError): Promise<void> {
  // Weights are binary: an editor tab of them helps no one, the message names the file.
  const canOpen = err.file !== undefined && !/\.(safetensors|bin|onnx|gguf|pt|pth)$/i.test(err.file) && fs.existsSync(err.file) && fs.statSync(err.file).isFile();
  const pick = await vscode.window.showErrorMessage(`${prefix}: ${err.message}`, ...(canOpen ? ["Open File"] : []));
  if (pick === "Open File" && err.file) {
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(err.file));
    const line = Math.max(0, (err.line ?? 1) - 1);
    const range = doc.lineAt(Math.min(line, doc.lineCount - 1)).range;
    await vscode.window.showTextDocument(doc, { selection: range });
  }
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
