/** The "Runs" tree in the Excitor sidebar: one item per run folder, newest first, with its status. */
import * as vscode from "vscode";
import type { RunInfo, RunManager } from "./run-manager";

const ICONS: Record<RunInfo["status"], string> = { running: "sync~spin", done: "pass", stopped: "debug-pause", failed: "error" };

export class RunItem extends vscode.TreeItem {
  constructor(readonly run: RunInfo) {
    super(run.name, vscode.TreeItemCollapsibleState.None);
    this.id = run.id;
    this.description = `${run.status}${run.spec.kind === "demo" ? " · demo" : ""} · ${new Date(run.createdAt).toLocaleString()}`;
    this.tooltip = new vscode.MarkdownString(
      [`**${run.name}** (${run.status})`, `folder: \`${run.dir}\``, `model: \`${run.spec.model}\``, `data: \`${run.spec.data}\``, run.error ? `error: ${run.error.message}` : ""].filter(Boolean).join("\n\n"),
    );
    this.iconPath = new vscode.ThemeIcon(ICONS[run.status]);
    // Menus in package.json key on these words: running / adapter / resumable / report.
    const tags = [run.status === "running" ? "running" : "idle"];
    if (run.hasAdapter) tags.push("adapter");
    if (run.status !== "running" && run.status !== "done") tags.push("resumable");
    if (run.report) tags.push("report");
    this.contextValue = `excitorRun ${tags.join(" ")}`;
    this.command = { command: "excitor.openTraining", title: "Open Training Panel", arguments: [this] };
  }
}

export class RunsTree implements vscode.TreeDataProvider<RunItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly runs: () => RunManager) {}

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: RunItem): vscode.TreeItem {
    return item;
  }

  getChildren(): RunItem[] {
    return this.runs()
      .list()
      .map((r) => new RunItem(r));
  }
}
