/**
 * "Excitor: Train Adapter…": pick the base model, the dataset and a preset (or edit every
 * hyperparameter, then confirm them on a summary), then hand the spec to the run manager. The
 * model and the dataset are checked as soon as they are chosen, with the engine's own messages,
 * so a bad file never becomes a run. A dataset whose records have images also asks for the vision
 * encoder (the run becomes multimodal: `--vision`). Each step can be left with Escape.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import { showEngineError } from "./errors";
import { builtInDataset } from "./places";
import { isGgufPath } from "../engine/formats/gguf";
import { checkTrainingFit } from "./fit-check";
import { pickBaseModel } from "./model-picker";
import { trainExamplesOf } from "../engine/train/recipe";
import { checkDataset, checkModel, defaultMaxLength } from "./preflight";
import type { TuningMethod } from "../engine/adapters";
import { LORA_DEFAULTS } from "../engine/lora/config";
import { EDITABLE, METHOD_LABELS, PRESETS, checkField, editableFor, methodOf, parseLayers, parseLoraTargets, recipeSummary, specFromPreset, withMethod, type PresetName, type RunSpec } from "./run-spec";
import type { ExcitorSettings } from "./settings";
import { datasetHasImages, visionEncoderProblem } from "./vision-preflight";

type Pick<T> = vscode.QuickPickItem & { value: T };

export async function askRunSpec(root: string, settings: ExcitorSettings, dataset?: vscode.Uri): Promise<{ spec: RunSpec; name: string } | undefined> {
  const model = await askModel(root, settings);
  if (!model) return undefined;
  const facts = checkModel(model);
  if (!facts.ok) {
    void showEngineError("Excitor: cannot train this model", facts.error);
    return undefined;
  }
  const data = dataset?.fsPath ?? (await askDataset(root));
  if (!data) return undefined;
  const checked = checkDataset(data);
  if (!checked.ok) {
    void showEngineError("Excitor: cannot train on this dataset", checked.error);
    return undefined;
  }
  // Records with images train a multimodal adapter: the engine needs the image encoder.
  let vision: string | undefined;
  if (datasetHasImages(data)) {
    vision = await askVisionEncoder(data);
    if (!vision) return undefined;
  }
  // The presets scale steps and learning rate to the data, so the wizard shows what each will run.
  const trainExamples = trainExamplesOf(checked.value.records, settings.train.validationShare);
  const planned = (k: PresetName): RunSpec => ({ ...specFromPreset(k, model, data, settings.train, trainExamples), ...(vision ? { vision } : {}) });
  const preset = await vscode.window.showQuickPick<Pick<PresetName | "custom">>(
    [
      ...(Object.keys(PRESETS) as PresetName[]).map((k) => {
        const plan = planned(k);
        return { label: PRESETS[k].label, description: recipeSummary(plan, trainExamples), detail: plan.recipe, value: k };
      }),
      { label: "Custom…", detail: "choose the method (Excitor, LoRA or full fine-tuning), then edit its knobs, layers, epochs, learning rate, batch, max length, validation share and seed", value: "custom" as const },
    ],
    { title: "Excitor: training preset", placeHolder: vision ? `How to train (images: vision encoder ${path.basename(vision)})` : "How to train", ignoreFocusOut: true },
  );
  if (!preset) return undefined;
  let spec = planned(preset.value === "custom" ? "standard" : preset.value);
  spec = { ...spec, maxLength: defaultMaxLength(spec.maxLength, facts.value.maxPositions) };
  if (preset.value === "custom") {
    const method = await askMethod("excitor", !isGgufPath(model));
    if (!method) return undefined;
    const edited = await editSpec(withVision(withMethod(spec, method), vision), vision, !isGgufPath(model));
    if (!edited) return undefined;
    spec = { ...edited, recipe: `Custom (${METHOD_LABELS[methodOf(edited)]}): the values you entered` };
  }
  const fitting = await confirmFits(spec);
  if (!fitting) return undefined;
  spec = fitting;
  // Runs of other methods say so in their name, so the Runs view and the tabs tell them apart.
  const method = methodOf(spec) === "excitor" ? "" : `-${methodOf(spec)}`;
  return { spec, name: `${path.basename(data).replace(/\.(jsonl?|json)$/i, "")}-${preset.value}${method}` };
}

/**
 * The vision encoder folder for a dataset with images, asked again while the folder chosen is not
 * one (the reason is shown); undefined when the dialog is dismissed.
 */
export async function askVisionEncoder(dataset: string, current?: string): Promise<string | undefined> {
  for (;;) {
    const uri = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: false,
      defaultUri: vscode.Uri.file(current ?? path.dirname(dataset)),
      openLabel: "Use this encoder",
      title: `${path.basename(dataset)} has images: the vision encoder folder (CLIP: config.json, preprocessor_config.json, *.safetensors)`,
    });
    const dir = uri?.[0]?.fsPath;
    if (!dir) return undefined;
    const problem = visionEncoderProblem(dir);
    if (!problem) return dir;
    void vscode.window.showErrorMessage(`Excitor: ${problem}`);
  }
}

/** A spec with the run's vision encoder when its method takes one (Excitor), without it otherwise. */
function withVision(spec: RunSpec, vision: string | undefined): RunSpec {
  return vision && methodOf(spec) === "excitor" ? { ...spec, vision } : spec;
}

/** The base model to tune: a folder, or a GGUF file unless the run trains the base weights (`gguf` false: compare). */
export async function askModel(root: string, settings: ExcitorSettings, gguf = true): Promise<string | undefined> {
  return pickBaseModel({
    root,
    title: "Excitor: base model",
    placeHolder: "The frozen model to tune",
    known: settings.modelFolder !== "" ? [{ dir: settings.modelFolder, description: "excitor.modelFolder" }] : [],
    gguf,
  });
}

/**
 * Warns before a run the estimate says will not fit in the memory free now (fit-check.ts):
 * Train anyway, 4-bit weights when they would fit, or Cancel. The spec to run, or undefined.
 */
export async function confirmFits(spec: RunSpec): Promise<RunSpec | undefined> {
  const fit = checkTrainingFit(spec);
  if (!fit || fit.fits) return spec;
  const q4 = "Use 4-bit weights";
  const choice = await vscode.window.showWarningMessage(`Excitor: ${fit.message}`, { modal: true }, "Train anyway", ...(fit.withQ4 ? [q4] : []));
  if (choice === undefined) return undefined;
  return choice === q4 ? { ...spec, weights: "q4" } : spec;
}

export async function askDataset(root: string): Promise<string | undefined> {
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

/** What an empty optional field means, as the summary shows it. */
const UNSET: Partial<Record<keyof RunSpec, string>> = {
  prompts: "by model size",
  rank: "by model size",
  loraR: `${LORA_DEFAULTS.r} (PEFT's default)`,
  loraAlpha: `${LORA_DEFAULTS.alpha} (PEFT's default)`,
  loraTargets: `${LORA_DEFAULTS.targets.join(", ")} (PEFT's default)`,
  maxSteps: "no limit",
  learningRate: "the method's default",
  layers: "the top 15/16 of the layers",
};

/** What an empty field means for this spec's method (LoRA adapts every layer by default, Excitor the top 15/16). */
function unsetText(spec: RunSpec, key: Field): string {
  if (key === "layers" && methodOf(spec) === "lora") return "all layers";
  return UNSET[key] ?? "default";
}

const METHODS: { value: TuningMethod; label: string; detail: string }[] = [
  { value: "excitor", label: "Excitor", detail: "learnable prompts reweight the frozen model's attention; a few thousand parameters, and the base model's knowledge stays put" },
  { value: "lora", label: "LoRA", detail: `low-rank updates to the chosen linear layers (PEFT layout; defaults r ${LORA_DEFAULTS.r}, alpha ${LORA_DEFAULTS.alpha} on ${LORA_DEFAULTS.targets.join(", ")})` },
  { value: "full", label: "Full fine-tuning", detail: "every weight of the model is trained; the most memory, and the most forgetting" },
];

/** The method of a Custom run; the current one is listed first. Full fine-tuning only when the base weights can be trained (not a GGUF file). */
async function askMethod(current: TuningMethod, full = true): Promise<TuningMethod | undefined> {
  const offered = METHODS.filter((m) => full || m.value !== "full");
  const items = [...offered.filter((m) => m.value === current), ...offered.filter((m) => m.value !== current)].map((m) => ({
    ...m,
    description: m.value === "excitor" ? "default" : undefined,
  }));
  const pick = await vscode.window.showQuickPick(items, { title: "Excitor: what to train", placeHolder: "The tuning method", ignoreFocusOut: true });
  return pick?.value;
}

const LAYERS = { key: "layers" as const, label: "Adapted layers" };
const TARGETS = { key: "loraTargets" as const, label: "LoRA targets" };
const METHOD = { key: "method" as const, label: "Method" };
const VISION = { key: "vision" as const, label: "Vision encoder" };

/** The list-valued fields the form asks for with this spec's method (full fine-tuning trains every layer). */
function listFields(spec: RunSpec): (typeof LAYERS | typeof TARGETS)[] {
  const method = methodOf(spec);
  return [...(method === "full" ? [] : [LAYERS]), ...(method === "lora" ? [TARGETS] : [])];
}

/** Every field of the spec's method in turn, each prefilled (Enter keeps it), then the summary until Start or Cancel. */
async function editSpec(start: RunSpec, vision: string | undefined, full: boolean): Promise<RunSpec | undefined> {
  let spec: RunSpec = { ...start };
  const fields = editableFor(methodOf(spec));
  const lists = listFields(spec);
  const steps = fields.length + lists.length;
  for (const [i, field] of fields.entries()) if (!(await editField(spec, field, `${i + 1}/${steps}`))) return undefined;
  for (const [i, list] of lists.entries()) if (!(await editList(spec, list.key, `${fields.length + i + 1}/${steps}`))) return undefined;
  for (;;) {
    const choice = await summary(spec);
    if (choice === "start") return spec;
    if (choice === undefined || choice === "cancel") return undefined;
    const key = choice === "edit" ? await pickField(spec) : choice;
    if (key === undefined) continue;
    if (key === "method") {
      const method = await askMethod(methodOf(spec), full);
      if (method) spec = withVision(withMethod(spec, method), vision);
      continue;
    }
    if (key === "vision") {
      const dir = await askVisionEncoder(spec.data, spec.vision);
      if (dir) spec = { ...spec, vision: (vision = dir) };
      continue;
    }
    const field = EDITABLE.find((f) => f.key === key);
    if (field) await editField(spec, field, "edit");
    else if (key === "layers" || key === "loraTargets") await editList(spec, key, "edit");
  }
}

async function editField(spec: RunSpec, field: (typeof EDITABLE)[number], step: string): Promise<boolean> {
  const current = spec[field.key];
  const raw = await vscode.window.showInputBox({
    title: `Excitor: ${field.label} (${step})`,
    prompt: `${field.hint}; Enter keeps this value`,
    value: current === undefined ? "" : String(current),
    ignoreFocusOut: true,
    validateInput: (v) => checkField(field, v),
  });
  if (raw === undefined) return false;
  (spec as unknown as Record<string, number | undefined>)[field.key] = raw.trim() === "" ? undefined : Number(raw);
  return true;
}

async function editList(spec: RunSpec, key: "layers" | "loraTargets", step: string): Promise<boolean> {
  const parse = key === "layers" ? parseLayers : parseLoraTargets;
  const raw = await vscode.window.showInputBox({
    title: key === "layers" ? `Excitor: adapted layers (${step})` : `Excitor: LoRA targets (${step})`,
    prompt:
      key === "layers"
        ? `comma-separated layer numbers, e.g. 4,5,6,7 (empty: ${unsetText(spec, "layers")}); Enter keeps this value`
        : `comma-separated linear layers, e.g. q_proj,k_proj,v_proj,o_proj (empty: ${LORA_DEFAULTS.targets.join(",")}); Enter keeps this value`,
    value: spec[key]?.join(",") ?? "",
    ignoreFocusOut: true,
    validateInput: (v) => {
      const r = parse(v);
      return typeof r === "string" ? r : undefined;
    },
  });
  if (raw === undefined) return false;
  const value = parse(raw);
  if (key === "layers") spec.layers = value as number[] | undefined;
  else spec.loraTargets = value as string[] | undefined;
  return true;
}

type Field = keyof RunSpec;

/** Each value as the summary lists it: the method first, then its own fields. */
function values(spec: RunSpec): { key: Field; label: string; value: string }[] {
  const show = (key: Field, v: unknown) => (v === undefined ? `${unsetText(spec, key)}` : Array.isArray(v) ? v.join(", ") : String(v));
  return [
    { key: METHOD.key, label: METHOD.label, value: METHOD_LABELS[methodOf(spec)] },
    ...editableFor(methodOf(spec)).map((f) => ({ key: f.key, label: f.label, value: show(f.key, spec[f.key]) })),
    ...listFields(spec).map((l) => ({ key: l.key, label: l.label, value: show(l.key, spec[l.key]) })),
    ...(spec.vision ? [{ key: VISION.key, label: VISION.label, value: spec.vision }] : []),
  ];
}
async function summary(spec: RunSpec): Promise<"start" | "edit" | "cancel" | Field | undefined> {
  const rows = values(spec);
  const items: (vscode.QuickPickItem & { value?: "start" | "edit" | "cancel" | Field })[] = [
    { label: "$(play) Start training", detail: rows.map((r) => `${r.label} ${r.value}`).join(" · "), value: "start" },
    { label: "$(edit) Edit a value…", value: "edit" },
    { label: "$(close) Cancel", value: "cancel" },
    { label: "Values", kind: vscode.QuickPickItemKind.Separator },
    ...rows.map((r) => ({ label: r.label, description: r.value, value: r.key })),
  ];
  const pick = await vscode.window.showQuickPick(items, { title: "Excitor: custom training — summary", placeHolder: "Start training with these values, or pick one to change it", ignoreFocusOut: true });
  return pick?.value;
}

async function pickField(spec: RunSpec): Promise<Field | undefined> {
  const pick = await vscode.window.showQuickPick(
    values(spec).map((r) => ({ label: r.label, description: r.value, value: r.key })),
    { title: "Excitor: edit a value", placeHolder: "The value to change", ignoreFocusOut: true },
  );
  return pick?.value;
}
