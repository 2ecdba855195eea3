/**
 * The base-model picker the training wizard and the chat share: the built-in demo model, the
 * folders the caller knows (the excitor.modelFolder setting, the models runs were trained on),
 * the GGUF files on this machine (workspace, Ollama, LM Studio: gguf-models.ts) labelled with
 * their quantization and size, and Browse for a folder or a .gguf file. GGUF files Excitor cannot
 * use are listed last with the reason, so a model the user expected is never silently missing.
 */
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import { builtInModel, folderLabel } from "./places";
import { discoverGgufModels, ggufDescription, ggufOrigin, type GgufModel } from "./gguf-models";

export interface PickModelOptions {
  /** The extension's root, for the built-in demo model. */
  root: string;
  title: string;
  placeHolder: string;
  /** Folders (or files) to offer after the built-in model, with what they are ("excitor.modelFolder"). */
  known: { dir: string; description: string }[];
  /** The model in use, marked "current". */
  current?: string;
  /** Offer GGUF files (not where the base weights are trained: compare's full fine-tuning). */
  gguf: boolean;
}

type Item = vscode.QuickPickItem & { value?: string; browse?: "folder" | "gguf"; problem?: string };

/** The chosen model's path, or undefined when the picker or a dialog is dismissed. */
export async function pickBaseModel(o: PickModelOptions): Promise<string | undefined> {
  const pick = await vscode.window.showQuickPick(items(o), { title: o.title, placeHolder: o.placeHolder, ignoreFocusOut: true, matchOnDescription: true, matchOnDetail: true });
  if (!pick) return undefined;
  if (pick.problem) {
    void vscode.window.showErrorMessage(`Excitor cannot use ${pick.label.replace(/^\$\([^)]*\)\s*/, "")}: ${pick.problem}`);
    return undefined;
  }
  if (pick.value !== undefined) return pick.value;
  const gguf = pick.browse === "gguf";
  const uri = await vscode.window.showOpenDialog({
    canSelectFolders: !gguf,
    canSelectFiles: gguf,
    ...(gguf ? { filters: { "GGUF models": ["gguf"] } } : {}),
    openLabel: "Use this model",
    title: gguf ? "A GGUF model file" : "A Hugging Face model folder (config.json, *.safetensors, tokenizer.json)",
  });
  return uri?.[0]?.fsPath;
}

/** The picker's entries; a promise, so VS Code shows the picker busy while the GGUF headers are read. */
async function items(o: PickModelOptions): Promise<Item[]> {
  const builtIn = builtInModel(o.root);
  const out: Item[] = [{ label: "Built-in demo model", description: "1 M-parameter LLaMA shipped with Excitor", value: builtIn }];
  const same = (a: string, b: string) => path.resolve(a) === path.resolve(b);
  const add = (item: Item) => {
    if (!out.some((i) => i.value !== undefined && item.value !== undefined && same(i.value, item.value))) out.push(item);
  };
  for (const k of o.known) add({ label: folderLabel(k.dir, o.root), description: k.description, detail: k.dir, value: k.dir });
  const found = o.gguf ? await ggufModels() : [];
  const usable = found.filter((m) => !m.problem);
  const unusable = found.filter((m) => m.problem);
  if (usable.length) out.push({ label: "GGUF models on this machine", kind: vscode.QuickPickItemKind.Separator });
  for (const m of usable) add({ label: m.name, description: ggufDescription(m), detail: `${ggufOrigin(m)} · ${m.path}`, value: m.path });
  if (o.current !== undefined && !out.some((i) => i.value !== undefined && same(i.value, o.current!))) add({ label: folderLabel(o.current, o.root), description: "", detail: o.current, value: o.current });
  for (const i of out) if (o.current !== undefined && i.value !== undefined && same(i.value, o.current)) i.description = `${i.description ? `${i.description} · ` : ""}current`;
  if (unusable.length) {
    out.push({ label: "GGUF files Excitor cannot use", kind: vscode.QuickPickItemKind.Separator });
    for (const m of unusable) out.push({ label: `$(warning) ${m.name}`, description: ggufDescription(m), detail: `${ggufOrigin(m)}: ${m.problem}`, problem: m.problem });
  }
  out.push({ label: "", kind: vscode.QuickPickItemKind.Separator });
  out.push({ label: "Browse…", description: "a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)", browse: "folder" });
  if (o.gguf) out.push({ label: "Browse for a .gguf file…", description: "a llama.cpp model file (LLaMA, Mistral or Qwen2)", browse: "gguf" });
  return out;
}

/** GGUF files in the workspace, Ollama's and LM Studio's models. */
async function ggufModels(): Promise<GgufModel[]> {
  const ws = await vscode.workspace.findFiles("**/*.gguf", "**/node_modules/**", 200);
  return discoverGgufModels({ home: os.homedir(), env: process.env, workspaceFiles: ws.filter((u) => u.scheme === "file").map((u) => u.fsPath) });
}
