/**
 * "Excitor: Compare Methods": trains Excitor, LoRA and full fine-tuning on one dataset (the CLI's
 * `excitor compare`, a small learning-rate sweep each) with a progress notification that can
 * cancel it, then opens the report (accuracy against kept knowledge) in the Markdown preview.
 * The model and the dataset default to the built-in demo's, and are checked as the wizard checks them.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import { runCompare, compareMessage, comparePercent } from "./compare-runner";
import type { Launcher } from "./engine-process";
import { showEngineError } from "./errors";
import { checkDataset, checkModel } from "./preflight";
import type { ExcitorSettings } from "./settings";
import { builtInDataset, builtInHeldout } from "./places";
import { askDataset, askModel } from "./train-wizard";

/** `outRoot`: the folder the comparison's own folder is made in (next to the runs). */
export async function compareMethods(root: string, settings: ExcitorSettings, launcher: Launcher, outRoot: string, log: (line: string) => void): Promise<void> {
  const model = await askModel(root, settings, false); // full fine-tuning cannot train a GGUF file's weights
  if (!model) return;
  const facts = checkModel(model);
  if (!facts.ok) return void showEngineError("Excitor: cannot compare on this model", facts.error);
  const data = await askDataset(root);
  if (!data) return;
  const checked = checkDataset(data);
  if (!checked.ok) return void showEngineError("Excitor: cannot compare on this dataset", checked.error);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const out = path.join(outRoot, `compare-${stamp}`);
  const outcome = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "Excitor: comparing Excitor, LoRA and full fine-tuning", cancellable: true },
    (progress, token) => {
      let shown = 0;
      const judged = data === builtInDataset(root) ? builtInHeldout(root) : {};
      const handle = runCompare(launcher, { model, data, out, backend: settings.backend, ...judged }, (p) => {
        const pct = comparePercent(p);
        progress.report({ increment: Math.max(0, pct - shown), message: compareMessage(p) });
        shown = Math.max(shown, pct);
      }, log);
      token.onCancellationRequested(() => {
        handle.stop();
        progress.report({ message: "stopping after this step…" });
      });
      return handle.done;
    },
  );
  if (outcome.status === "done") await vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.file(outcome.report));
  else if (outcome.status === "stopped") void vscode.window.showInformationMessage("Excitor: the comparison was stopped; no report was written");
  else void vscode.window.showErrorMessage(`Excitor: the comparison failed: ${outcome.error}`, "Show Log").then((p) => p && vscode.commands.executeCommand("excitor.showLog"));
}
