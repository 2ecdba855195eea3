/**
 * The training panel: live loss curves (training and validation), learning rate, tokens/s, ETA
 * and gate values for one run. It draws from the run manager's event history, so closing and
 * reopening it (or reloading the window) loses nothing: the webview asks for a snapshot when it
 * starts, then follows live events.
 */
import * as vscode from "vscode";
import { checkTrainingMessage, type TrainingSnapshot, type TrainingToWebview } from "./messages";
import { revealFolder } from "./places";
import { panelTitle } from "./run-labels";
import type { RunManager } from "./run-manager";
import { onCheckedMessage, webviewHtml, webviewOptions } from "./webview-html";

export const TRAINING_VIEW_TYPE = "excitor.training";

export class TrainingPanels {
  private readonly panels = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly runs: RunManager,
    private readonly log: vscode.LogOutputChannel,
    private readonly onResume: (runId: string) => void,
  ) {}

  /** Shows the panel of `runId`, creating it if needed. */
  show(runId: string): void {
    const existing = this.panels.get(runId);
    if (existing) return existing.reveal(undefined, true);
    const info = this.runs.get(runId);
    const title = info ? panelTitle(info.name, info.createdAt) : `Training: ${runId}`;
    const panel = vscode.window.createWebviewPanel(TRAINING_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Active, preserveFocus: true }, webviewOptions(this.extensionUri));
    this.attach(panel, runId);
  }

  /** Closes the panel of a run that is no more (its folder deleted, or rejected before it began). */
  close(runId: string): void {
    this.panels.get(runId)?.dispose();
  }

  /** Re-creates a panel VS Code restored after a reload (its state holds the run id). */
  restore(panel: vscode.WebviewPanel, state: unknown): void {
    const runId = typeof state === "object" && state !== null && typeof (state as { runId?: unknown }).runId === "string" ? (state as { runId: string }).runId : undefined;
    const info = runId ? this.runs.get(runId) : undefined;
    // Gone, or already shown again (the interrupted runs' panels are reopened at start, in case
    // the window did not keep its tabs).
    if (!runId || !info || this.panels.has(runId)) {
      panel.dispose();
      return;
    }
    panel.title = panelTitle(info.name, info.createdAt); // panels saved before titles carried the time
    panel.webview.options = webviewOptions(this.extensionUri);
    this.attach(panel, runId);
  }

  private attach(panel: vscode.WebviewPanel, runId: string): void {
    this.panels.set(runId, panel);
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, "media", "excitor.svg");
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, "training", "Excitor training");
    const post = (m: TrainingToWebview) => void panel.webview.postMessage(m);
    const subs = [
      onCheckedMessage(
        panel.webview,
        checkTrainingMessage,
        (m) => {
          switch (m.type) {
            case "ready":
              return post({ type: "snapshot", run: this.snapshot(runId) });
            case "stop":
              return this.runs.stop(runId);
            case "resume":
              return this.onResume(runId);
            case "openFolder": {
              const dir = this.runs.get(runId)?.dir;
              return dir && revealFolder(dir);
            }
          }
        },
        this.log,
        "training panel",
      ),
      this.runs.onEvent((id, event) => id === runId && post({ type: "event", runId, event })),
      this.runs.onStatus((info) => {
        if (info.id !== runId) return;
        if (info.status === "running") post({ type: "snapshot", run: this.snapshot(runId) });
        else post({ type: "status", runId, status: info.status, error: info.error?.message, canResume: info.canResume });
      }),
    ];
    panel.onDidDispose(() => {
      if (this.panels.get(runId) === panel) this.panels.delete(runId);
      subs.forEach((s) => s.dispose());
    });
  }

  private snapshot(runId: string): TrainingSnapshot {
    const info = this.runs.get(runId);
    return { runId, name: info?.name ?? runId, status: info?.status ?? "failed", error: info?.error?.message, recipe: info?.spec.recipe, canResume: info?.canResume ?? false, events: this.runs.history(runId) };
  }
}
