/** The "Runs" tree in the Excitor sidebar: one item per run folder, newest first, with its status. */
import * as vscode from "vscode";
import { runTime } from "./run-labels";
import type { RunInfo, RunManager } from "./run-manager";

const ICONS: Record<RunInfo["status"], string> = { running: "sync~spin", done: "pass", stopped: "debug-pause", failed: "error", interrupted: "debug-disconnect", deleted: "trash" };

export class RunItem extends vscode.TreeItem {
  constructor(readonly run: RunInfo) {
    super(run.name, vscode.TreeItemCollapsibleState.None);
    this.id = run.id;
    const where = run.status === "running" && !run.live ? " in another window" : "";
    this.description = `${run.status}${where}${run.spec.kind === "demo" ? " · demo" : ""} · ${runTime(run.createdAt)}`;
    this.tooltip = new vscode.MarkdownString(
      [
        `**${run.name}** (${run.status}${where})`,
        `folder: \`${run.dir}\``,
        `model: \`${run.spec.model}\``,
        `data: \`${run.spec.data}\``,
        run.error ? `error: ${run.error.message}` : "",
        run.status === "interrupted" ? (run.canResume ? "The window it ran in went away; Resume continues it from its last checkpoint." : "The window it ran in went away before its first checkpoint.") : "",
      ]
        .filter(Boolean)
        .join("\n\n"),
    );
    this.iconPath = new vscode.ThemeIcon(ICONS[run.status]);
    // Menus in package.json key on these words: running / idle / adapter / resumable / report.
    // A run training in another window is neither: this window can only open it.
    const tags = [run.status !== "running" ? "idle" : run.live ? "running" : "elsewhere"];
    if (run.hasAdapter) tags.push("adapter");
    if (run.canResume) tags.push("resumable");
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
