/**
 * The progress notification of a training run: step, loss, elapsed time and ETA as they come,
 * and a Cancel button that really stops the engine (it finishes the step, writes a checkpoint
 * and the adapter). When the run ends, a message offers what to do next; the demo opens its report.
 */
import * as vscode from "vscode";
import { fmtDuration } from "../cli/format";
import type { RunInfo, RunManager } from "./run-manager";
import { runProgress } from "./train-history";

export interface NextSteps {
  chat: (run: RunInfo) => void;
  attention: (run: RunInfo) => void;
}

export function followRun(runs: RunManager, runId: string, name: string, next: NextSteps): void {
  void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Excitor: training ${name}`, cancellable: true }, (progress, token) => {
    token.onCancellationRequested(() => runs.stop(runId));
    let shown = 0;
    // A resumed run: the time of its earlier segments counts too.
    let before = runProgress(runs.history(runId)).elapsedBefore;
    return new Promise<void>((resolve) => {
      const events = runs.onEvent((id, e) => {
        if (id !== runId) return;
        if (e.type === "start") {
          before = runProgress(runs.history(runId)).elapsedBefore;
          progress.report({ message: `${e.totalSteps} steps on ${e.trainExamples} examples (${e.backend})` });
        }
        if (e.type === "step") {
          const pct = (100 * e.step) / e.totalSteps;
          progress.report({
            increment: pct - shown,
            message: `step ${e.step}/${e.totalSteps} · loss ${e.loss.toFixed(3)} · ${e.tokensPerSecond.toFixed(0)} tokens/s · elapsed ${fmtDuration(before + e.elapsedSeconds)} · ETA ${fmtDuration(e.etaSeconds)}`,
          });
          shown = pct;
        }
        if (e.type === "cancelled") progress.report({ message: `stopping: checkpoint written at step ${e.step}` });
      });
      const status = runs.onStatus((info) => {
        if (info.id !== runId || info.status === "running") return;
        events.dispose();
        status.dispose();
        resolve();
        if (info.status === "done") {
          const open = () => info.report && vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.file(info.report));
          if (info.spec.kind === "demo") void open(); // the demo's point is its before/after report
          const actions = info.report ? ["Open Report", "Chat with It", "Show Attention"] : ["Chat with It", "Show Attention"];
          void vscode.window.showInformationMessage(`Excitor: training “${name}” finished; the adapter is in ${info.dir}`, ...actions).then((pick) => {
            if (pick === "Open Report") void open();
            if (pick === "Chat with It") next.chat(info);
            if (pick === "Show Attention") next.attention(info);
          });
        } else if (info.status === "stopped") {
          const how = info.canResume
            ? "the last checkpoint is kept (Excitor: Resume Training continues it)"
            : info.spec.kind === "demo"
              ? "Run Demo starts it over"
              : "it stopped before its first checkpoint, so it cannot be resumed";
          void vscode.window.showInformationMessage(`Excitor: training “${name}” stopped; ${how}`);
        } else if (info.status === "deleted") {
          void vscode.window.showInformationMessage(`Excitor: the folder of “${name}” was deleted, so its training stopped`);
        }
      });
    });
  });
}
