/** The "Runs" tree in the Excitor sidebar: one item per run folder, newest first, with its status. */
import * as vscode from "vscode";
import { METHOD_LABELS, runTime } from "./run-labels";
import type { RunInfo, RunManager } from "./run-manager";
import { methodOf } from "./run-spec";
import { runTooltip } from "./run-tooltip";

const ICONS: Record<RunInfo["status"], string> = { running: "sync~spin", done: "pass", stopped: "debug-pause", failed: "error", interrupted: "debug-disconnect", deleted: "trash" };

export class RunItem extends vscode.TreeItem {
  constructor(readonly run: RunInfo) {
    super(run.name, vscode.TreeItemCollapsibleState.None);
    this.id = run.id;
    const where = run.status === "running" && !run.live ? " in another window" : "";
    const method = methodOf(run.spec) === "excitor" ? "" : ` · ${METHOD_LABELS[methodOf(run.spec)]}`;
    this.description = `${run.status}${where}${run.spec.kind === "demo" ? " · demo" : ""}${method} · ${runTime(run.createdAt)}`;
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

  /** The tooltip on hover only: it reads the run's metrics (its kept knowledge), too much for every refresh. */
  resolveTreeItem(item: vscode.TreeItem, element: RunItem): vscode.TreeItem {
    item.tooltip = new vscode.MarkdownString(runTooltip(element.run, this.runs().history(element.run.id)));
    return item;
  }

  getChildren(): RunItem[] {
    return this.runs()
      .list()
      .map((r) => new RunItem(r));
  }
}
