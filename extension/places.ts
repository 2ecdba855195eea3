/** Where things are: the built-in demo model and data inside the extension, and the runs folder. */
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import type { ExcitorSettings } from "./settings";
import { ollamaName } from "./gguf-models";

export function builtInModel(root: string): string {
  return path.join(root, "demo", "model");
}

export function builtInDataset(root: string): string {
  return path.join(root, "demo", "data", "train.jsonl");
}

/** The demo's held-out questions and stories, which `npm run compare` judges on too. */
export function builtInHeldout(root: string): { heldout: string; domain: string } {
  return { heldout: path.join(root, "demo", "data", "heldout.jsonl"), domain: path.join(root, "demo", "data", "stories-heldout.jsonl") };
}

/** The model folder from the settings, or the built-in demo model. */
export function modelFolder(s: ExcitorSettings, root: string): string {
  return s.modelFolder !== "" ? s.modelFolder : builtInModel(root);
}

/** excitor.runsFolder, else .excitor/runs in the first workspace folder, else the extension's storage. */
export function runsFolder(s: ExcitorSettings, ctx: vscode.ExtensionContext): string {
  if (s.runsFolder !== "") return s.runsFolder;
  const ws = vscode.workspace.workspaceFolders?.[0];
  if (ws && ws.uri.scheme === "file") return path.join(ws.uri.fsPath, ".excitor", "runs");
  return path.join(ctx.globalStorageUri.fsPath, "runs");
}

/** A short label for a model or adapter folder (an Ollama blob by its Ollama name). */
export function folderLabel(dir: string, root: string): string {
  if (dir === builtInModel(root)) return "built-in demo model";
  return ollamaName(dir, { home: os.homedir(), env: process.env }) ?? path.basename(dir);
}

/**
 * Shows a folder: in the Explorer when it is inside the workspace (this also works in VS Code for
 * the web and remote windows, which have no OS file manager), else in the system's file manager.
 */
export async function revealFolder(dir: string): Promise<void> {
  const uri = vscode.Uri.file(dir);
  if (vscode.workspace.getWorkspaceFolder(uri)) await vscode.commands.executeCommand("revealInExplorer", uri);
  else await vscode.commands.executeCommand("revealFileInOS", uri);
}
