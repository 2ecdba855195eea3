/**
 * The attention heatmap panel: for a prompt and a response, what each layer and head attends to
 * with and without the adapter. One panel, reused; the engine (an `excitor serve` process from
 * the pool) computes the AttentionReport and the webview draws it. Exports come back from the
 * webview as PNG or SVG data and are written where the user says. Opened from a chat with an
 * image, the image goes along (a multimodal adapter then reports where the answer looks in it).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import { attentionChoices } from "./attention-target";
import { adapterKind } from "./chat-adapters";
import type { EnginePool } from "./engine-pool";
import { messageOf } from "./errors";
import { checkAttentionMessage, type AttentionToWebview, type AttentionView, type ChatImage } from "./messages";
import { folderLabel } from "./places";
import type { RunInfo } from "./run-manager";
import { writeFileAtomic } from "../engine/fs-atomic";
import { onCheckedMessage, webviewHtml, webviewOptions } from "./webview-html";

export const ATTENTION_VIEW_TYPE = "excitor.attention";

export interface AttentionTarget {
  model: string;
  adapter: string | null;
  prompt: string;
  input: string;
  /** "" = let the tuned model answer first. */
  response: string;
  /** The image the prompt is about (the chat's); sent when the adapter takes images. */
  image?: ChatImage;
}

/**
 * Which model and adapter to look at, asked from the palette: the chat's adapter, a run's, or
 * the base model alone. Undefined when the user dismisses the question.
 */
export async function askAttentionTarget(chat: { model: string; adapter: string | null; image?: ChatImage }, runs: RunInfo[], root: string): Promise<Pick<AttentionTarget, "model" | "adapter" | "image"> | undefined> {
  const choices = attentionChoices(chat, runs, (dir) => folderLabel(dir, root));
  const pick = await vscode.window.showQuickPick(choices, {
    title: "Excitor: Show Attention — which adapter?",
    placeHolder: "The heatmap compares the base model with this adapter",
    ignoreFocusOut: true,
  });
  return pick && { model: pick.model, adapter: pick.adapter, image: pick.image };
}

export class AttentionPanel {
  private panel?: vscode.WebviewPanel;
  private target?: AttentionTarget;
  private view: AttentionView = { modelLabel: "", adapterLabel: "", hasAdapter: false, prompt: "", input: "", response: "", busy: false };
  private generation = 0;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly pool: EnginePool,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** Opens the panel for `target` and analyses it. */
  show(target: AttentionTarget): void {
    this.target = target;
    const root = this.extensionUri.fsPath;
    this.view = {
      modelLabel: folderLabel(target.model, root),
      adapterLabel: target.adapter ? `${path.basename(target.adapter)}${adapterKind(target.adapter) === "LoRA" ? " (LoRA)" : ""}` : "none (base model only)",
      hasAdapter: target.adapter !== null,
      prompt: target.prompt,
      input: target.input,
      response: target.response,
      busy: false,
      image: target.image?.name,
    };
    if (!this.panel) this.attach(vscode.window.createWebviewPanel(ATTENTION_VIEW_TYPE, "Excitor: Attention", vscode.ViewColumn.Active, { ...webviewOptions(this.extensionUri), retainContextWhenHidden: true }));
    else this.panel.reveal();
    void this.analyze();
  }

  /** A panel restored after a reload has no engine attached yet: it shows an empty form. */
  restore(panel: vscode.WebviewPanel): void {
    panel.webview.options = { ...webviewOptions(this.extensionUri) };
    this.attach(panel);
  }

  private attach(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, "media", "excitor.svg");
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, "attention", "Excitor attention");
    const sub = onCheckedMessage(
      panel.webview,
      checkAttentionMessage,
      async (m) => {
        switch (m.type) {
          case "ready":
            return this.post();
          case "analyze":
            if (!this.target) throw new Error("open the panel from the chat, the runs view or “Excitor: Show Attention” to pick a model first");
            this.target = { ...this.target, prompt: m.prompt, input: m.input, response: m.response };
            Object.assign(this.view, { prompt: m.prompt, input: m.input, response: m.response });
            return this.analyze();
          case "dropImage":
            if (this.target) this.target = { ...this.target, image: undefined };
            this.view = { ...this.view, image: undefined };
            return this.post();
          case "export":
            return this.save(m.format, m.data);
        }
      },
      this.log,
      "attention panel",
    );
    panel.onDidDispose(() => {
      sub.dispose();
      this.panel = undefined;
    });
  }

  private async analyze(): Promise<void> {
    const t = this.target;
    if (!t) return;
    const mine = ++this.generation;
    this.view = { ...this.view, busy: true, error: undefined, report: undefined };
    this.post();
    try {
      const client = this.pool.get(t.model, t.adapter);
      const ready = await client.ready;
      // An adapter that does not take images is asked without one (the panel then names none).
      const image = ready.vision !== null ? t.image?.path : undefined;
      const result = await client.attention({ prompt: t.prompt, input: t.input || undefined, response: t.response === "" ? undefined : t.response, template: ready.template, image });
      if (mine !== this.generation) return;
      this.view = { ...this.view, busy: false, response: result.responseText, report: result.report, image: image === undefined ? undefined : t.image?.name };
    } catch (e) {
      if (mine !== this.generation) return;
      this.view = { ...this.view, busy: false, error: messageOf(e) };
      this.log.error(`attention: ${messageOf(e)}`);
    }
    this.post();
  }

  private async save(format: "png" | "svg", data: string): Promise<void> {
    const ws = vscode.workspace.workspaceFolders?.[0]?.uri;
    const suggested = ws ? vscode.Uri.joinPath(ws, `attention.${format}`) : undefined;
    const uri = await vscode.window.showSaveDialog({ defaultUri: suggested, filters: format === "png" ? { "PNG image": ["png"] } : { "SVG image": ["svg"] }, title: "Export the heatmap", saveLabel: "Export" });
    if (!uri) return;
    const bytes = format === "png" ? Buffer.from(data.slice(data.indexOf(",") + 1), "base64") : Buffer.from(data, "utf8");
    if (uri.scheme === "file") {
      fs.mkdirSync(path.dirname(uri.fsPath), { recursive: true });
      writeFileAtomic(uri.fsPath, bytes);
    } else await vscode.workspace.fs.writeFile(uri, bytes);
    void vscode.window.showInformationMessage(`Excitor: heatmap saved to ${uri.scheme === "file" ? uri.fsPath : uri.toString()}`);
  }

  private post(): void {
    const m: AttentionToWebview = { type: "view", view: this.view };
    void this.panel?.webview.postMessage(m);
  }
}
