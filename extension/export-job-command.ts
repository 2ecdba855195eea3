/**
 * "Excitor: Export Distributed Job…": the base model (a Hugging Face folder: the job reads its
 * safetensors), the dataset and a preset, as the training wizard asks them, then `excitor
 * export-job` writes a PyTorch job for torchrun into .excitor/jobs/. The message offers its README
 * and the command to run; the run folder it trains, copied into the runs folder, shows in the Runs view.
 */
import * as vscode from "vscode";
import { trainExamplesOf } from "../engine/train/recipe";
import type { Launcher } from "./engine-process";
import { showEngineError } from "./errors";
import { exportJob, jobFolder } from "./export-job-runner";
import { revealFolder } from "./places";
import { checkDataset, checkModel, defaultMaxLength } from "./preflight";
import { PRESETS, recipeSummary, specFromPreset, type PresetName } from "./run-spec";
import type { ExcitorSettings } from "./settings";
import { askDataset, askModel } from "./train-wizard";

export async function exportDistributedJob(root: string, settings: ExcitorSettings, launcher: Launcher, jobsRoot: string, runsRoot: string, log: (line: string) => void): Promise<void> {
  const model = await askModel(root, settings, false); // the job reads Hugging Face safetensors, not GGUF
  if (!model) return;
  const facts = checkModel(model);
  if (!facts.ok) return void showEngineError("Excitor: cannot export a job for this model", facts.error);
  const data = await askDataset(root);
  if (!data) return;
  const checked = checkDataset(data);
  if (!checked.ok) return void showEngineError("Excitor: cannot export a job for this dataset", checked.error);
  const trainExamples = trainExamplesOf(checked.value.records, settings.train.validationShare);
  const planned = (k: PresetName) => specFromPreset(k, model, data, settings.train, trainExamples);
  const preset = await vscode.window.showQuickPick(
    (Object.keys(PRESETS) as PresetName[]).map((k) => ({ label: PRESETS[k].label, description: recipeSummary(planned(k), trainExamples), detail: planned(k).recipe, value: k })),
    { title: "Excitor: training preset for the job", placeHolder: "The recipe the job runs (the same as Train Adapter… would)", ignoreFocusOut: true },
  );
  if (!preset) return;
  const plan = planned(preset.value);
  const spec = { ...plan, maxLength: defaultMaxLength(plan.maxLength, facts.value.maxPositions) };
  const dir = jobFolder(jobsRoot, spec);
  const outcome = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: "Excitor: tokenizing the data and writing the job…" }, () => exportJob(launcher, spec, dir, log));
  if (outcome.status === "failed") return void showEngineError("Excitor: cannot export the job", outcome.error);
  const choice = await vscode.window.showInformationMessage(
    `Excitor: the PyTorch job is in ${dir}. Run \`${outcome.command}\` on a machine with GPUs (README.md: several machines, Slurm, --fsdp); copy its run/ folder into ${runsRoot} to see the run here.`,
    "Open README",
    "Copy Command",
    "Reveal Folder",
  );
  if (choice === "Open README") await vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.file(outcome.readme));
  if (choice === "Copy Command") await vscode.env.clipboard.writeText(outcome.command);
  if (choice === "Reveal Folder") await revealFolder(dir);
}
