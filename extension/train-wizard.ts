/**
 * "Excitor: Train Adapter…": pick the base model, the dataset and a preset (or edit every
 * hyperparameter), then hand the spec to the run manager. Each step can be left with Escape.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import { builtInDataset, builtInModel } from "./places";
import { trainExamplesIn } from "../engine/train/recipe";
import { EDITABLE, PRESETS, checkField, parseLayers, recipeSummary, specFromPreset, type PresetName, type RunSpec } from "./run-spec";
import type { ExcitorSettings } from "./settings";

type Pick<T> = vscode.QuickPickItem & { value: T };

export async function askRunSpec(root: string, settings: ExcitorSettings, dataset?: vscode.Uri): Promise<{ spec: RunSpec; name: string } | undefined> {
  const model = await askModel(root, settings);
  if (!model) return undefined;
  const data = dataset?.fsPath ?? (await askDataset(root));
  if (!data) return undefined;
  // The presets scale steps and learning rate to the data, so the wizard shows what each will run.
  const trainExamples = trainExamplesIn(data, settings.train.validationShare, settings.train.seed);
  const planned = (k: PresetName) => specFromPreset(k, model, data, settings.train, trainExamples);
  const preset = await vscode.window.showQuickPick<Pick<PresetName | "custom">>(
    [
      ...(Object.keys(PRESETS) as PresetName[]).map((k) => ({ label: PRESETS[k].label, description: recipeSummary(planned(k), trainExamples), detail: planned(k).recipe, value: k })),
      { label: "Custom…", detail: "edit prompts K, rank r, layers, epochs, learning rate, batch, max length, validation share and seed", value: "custom" as const },
    ],
    { title: "Excitor: training preset", placeHolder: "How to train", ignoreFocusOut: true },
  );
  if (!preset) return undefined;
  let spec = planned(preset.value === "custom" ? "standard" : preset.value);
  if (preset.value === "custom") {
    const edited = await editSpec(spec);
    if (!edited) return undefined;
    spec = edited;
  }
  return { spec, name: `${path.basename(data).replace(/\.(jsonl?|json)$/i, "")}-${preset.value}` };
}

async function askModel(root: string, settings: ExcitorSettings): Promise<string | undefined> {
  const items: Pick<string>[] = [{ label: "Built-in demo model", description: "1 M-parameter LLaMA shipped with Excitor", value: builtInModel(root) }];
  if (settings.modelFolder !== "") items.unshift({ label: path.basename(settings.modelFolder), description: "excitor.modelFolder", detail: settings.modelFolder, value: settings.modelFolder });
  items.push({ label: "Browse…", description: "a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)", value: "" });
  const pick = await vscode.window.showQuickPick(items, { title: "Excitor: base model", placeHolder: "The frozen model to tune", ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.value !== "") return pick.value;
  const uri = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Use this model" });
  return uri?.[0]?.fsPath;
}

async function askDataset(root: string): Promise<string | undefined> {
  // Datasets, not the JSON files that sit in model folders or projects.
  const notData = "{**/node_modules/**,**/.excitor/**,**/.vscode/**,**/package*.json,**/tsconfig*.json,**/config.json,**/generation_config.json,**/tokenizer*.json,**/special_tokens_map.json,**/adapter_config.json,**/*.index.json}";
  const found = await vscode.workspace.findFiles("**/*.{jsonl,json}", notData, 50);
  const items: Pick<string>[] = [
    { label: "Built-in demo instructions", description: "questions about short stories (demo/data/train.jsonl)", value: builtInDataset(root) },
    ...found.map((u) => ({ label: vscode.workspace.asRelativePath(u), description: "workspace file", value: u.fsPath })),
    { label: "Browse…", description: "JSON Lines or a JSON array of Alpaca, chat or ShareGPT records", value: "" },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: "Excitor: dataset", placeHolder: "Instruction data to tune on", ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.value !== "") return pick.value;
  const uri = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: false, filters: { Datasets: ["jsonl", "json"] }, openLabel: "Train on this file" });
  return uri?.[0]?.fsPath;
}

async function editSpec(start: RunSpec): Promise<RunSpec | undefined> {
  const spec: RunSpec = { ...start };
  const steps = EDITABLE.length + 1;
  for (const [i, field] of EDITABLE.entries()) {
    const current = spec[field.key];
    const raw = await vscode.window.showInputBox({
      title: `Excitor: ${field.label} (${i + 1}/${steps})`,
      prompt: field.hint,
      value: current === undefined ? "" : String(current),
      ignoreFocusOut: true,
      validateInput: (v) => checkField(field, v),
    });
    if (raw === undefined) return undefined;
    (spec as unknown as Record<string, number | undefined>)[field.key] = raw.trim() === "" ? undefined : Number(raw);
  }
  const layers = await vscode.window.showInputBox({
    title: `Excitor: adapted layers (${steps}/${steps})`,
    prompt: "comma-separated layer numbers, e.g. 4,5,6,7 (empty: the top 15/16 of the layers)",
    value: spec.layers?.join(",") ?? "",
    ignoreFocusOut: true,
    validateInput: (v) => {
      const r = parseLayers(v);
      return typeof r === "string" ? r : undefined;
    },
  });
  if (layers === undefined) return undefined;
  spec.layers = parseLayers(layers) as number[] | undefined;
  return spec;
}
