/**
 * What a training run is asked to do, and the presets the "Train Adapter…" command offers.
 * A run's spec is saved with it (run.json), so that Resume continues with the same settings.
 */
import type { TuningMethod } from "../engine/adapters";
import type { WeightPrecision } from "../engine/model/quantized";
import { LORA_DEFAULTS, LORA_MODULES } from "../engine/lora/config";
import { DEMO_RECIPE, presetRecipe, type PresetName } from "../engine/train/recipe";
import { TRAIN_RANGES as R, numberProblem, type NumberRule } from "../engine/option-ranges";
import { METHOD_LABELS } from "./run-labels";
import type { TrainDefaults } from "./settings";

export interface RunSpec {
  /** "demo": the built-in demo program (demo/run.js), which also writes a before/after report. */
  kind: "train" | "demo";
  model: string;
  data: string;
  /** What is trained (absent in runs saved before it was added, and in the presets: "excitor"). */
  method?: TuningMethod;
  /** LoRA's rank, alpha and adapted modules (method "lora" only; unset: PEFT's defaults, LORA_DEFAULTS). */
  loraR?: number;
  loraAlpha?: number;
  loraTargets?: string[];
  /** Unset fields take the engine's defaults from the method spec. Prompts K and rank r are Excitor's. */
  prompts?: number;
  rank?: number;
  layers?: number[];
  epochs: number;
  maxSteps?: number;
  learningRate?: number;
  batchSize: number;
  maxLength: number;
  validationShare: number;
  seed: number;
  /** Weight of the KL-to-base term on the base model's own samples (--retain-weight; unset: off). */
  retainWeight?: number;
  /** How a preset chose these numbers, in one line (shown in the wizard and the training panel). */
  recipe?: string;
  /**
   * The frozen CLIP vision encoder folder, for a dataset whose records have images (`--vision`):
   * the adapter becomes multimodal. Excitor's only; unset for text data.
   */
  vision?: string;
  /** How the frozen weights are held (`--weights`; unset: as the model stores them). */
  weights?: WeightPrecision;
}

export type { PresetName };

export const PRESETS: Record<PresetName, { label: string; detail: string }> = {
  quick: { label: "Quick", detail: "about 120 steps of batch 8 to check the data and the setup, with a rate high enough to see the answers change" },
  standard: { label: "Standard", detail: "at least 320 steps (and the epochs from your settings), batch from your settings, learning rate scaled to the data's size" },
};

/**
 * A spec from a preset, for a data set of `trainExamples` training examples (after the
 * validation split), and the user's default hyperparameters (0 in a default = the preset decides).
 * Quick ignores the settings; Standard takes their batch, epochs (as a minimum), K, r and rate.
 */
export function specFromPreset(preset: PresetName, model: string, data: string, d: TrainDefaults, trainExamples: number): RunSpec {
  const set = (v: number) => (v > 0 ? v : undefined);
  const r =
    preset === "quick"
      ? presetRecipe("quick", trainExamples)
      : presetRecipe("standard", trainExamples, { batchSize: d.batchSize, minEpochs: d.epochs, learningRate: set(d.learningRate), numPrompts: set(d.prompts), rank: set(d.rank) });
  return {
    kind: "train",
    model,
    data,
    maxLength: d.maxLength,
    validationShare: d.validationShare,
    seed: d.seed,
    epochs: r.epochs,
    maxSteps: r.maxSteps,
    batchSize: r.batchSize,
    learningRate: r.learningRate,
    prompts: r.numPrompts,
    rank: r.rank,
    recipe: `${PRESETS[preset].label}: ${r.reason}`,
  };
}

export { METHOD_LABELS };

/** The method of a spec (runs saved before methods existed trained Excitor adapters). */
export const methodOf = (spec: RunSpec): TuningMethod => spec.method ?? "excitor";

/** "LoRA r 8, alpha 16 on q_proj, v_proj": the method with its own knobs (defaults shown as what they are). */
export function methodSummary(spec: RunSpec): string {
  const method = methodOf(spec);
  if (method === "excitor") return `Excitor, K ${spec.prompts ?? "by size"}, r ${spec.rank ?? "by size"}`;
  if (method === "full") return "full fine-tuning (every base weight)";
  return `LoRA r ${spec.loraR ?? LORA_DEFAULTS.r}, alpha ${spec.loraAlpha ?? LORA_DEFAULTS.alpha} on ${(spec.loraTargets ?? LORA_DEFAULTS.targets).join(", ")}`;
}

/** "336 steps of 16, learning rate 2.7e-2, K 30, r 16": what a spec will run, in one line (the method named when it is not Excitor). */
export function recipeSummary(spec: RunSpec, trainExamples: number): string {
  const perEpoch = Math.max(1, Math.ceil(trainExamples / spec.batchSize));
  const steps = Math.min(spec.maxSteps ?? Infinity, spec.epochs * perEpoch);
  const lr = spec.learningRate === undefined ? "the method's learning rate" : `learning rate ${spec.learningRate}`;
  const method = methodOf(spec) === "excitor" ? `K ${spec.prompts ?? "by size"}, r ${spec.rank ?? "by size"}` : methodSummary(spec);
  return `${steps} steps of ${spec.batchSize} (${spec.epochs} epoch${spec.epochs === 1 ? "" : "s"}), ${lr}, ${method}`;
}

/** The `excitor train` arguments for a spec. */
export function trainArgs(spec: RunSpec, outDir: string, resume: boolean, backend: string): string[] {
  const args = ["--backend", backend, "train", "--json", "--stdin-control", "--model", spec.model, "--data", spec.data, "--out", outDir];
  const add = (flag: string, v: number | number[] | undefined) => {
    if (v !== undefined) args.push(flag, Array.isArray(v) ? v.join(",") : String(v));
  };
  const method = methodOf(spec);
  // Runs saved before methods existed, and Excitor runs, keep the command they always had.
  if (spec.method !== undefined && method !== "excitor") args.push("--method", method);
  if (method === "excitor") {
    add("--prompts", spec.prompts);
    add("--rank", spec.rank);
  }
  if (method === "lora") {
    add("--lora-r", spec.loraR);
    add("--lora-alpha", spec.loraAlpha);
    if (spec.loraTargets) args.push("--lora-targets", spec.loraTargets.join(","));
  }
  // Full fine-tuning trains every layer; Excitor and LoRA adapt the chosen ones.
  if (method !== "full") add("--layers", spec.layers);
  args.push(...recipeArgs(spec));
  add("--retain-weight", spec.retainWeight);
  if (spec.vision !== undefined && method === "excitor") args.push("--vision", spec.vision);
  if (spec.weights !== undefined) args.push("--weights", spec.weights);
  if (resume) args.push("--resume");
  return args;
}

/**
 * `excitor export-job` for an Excitor spec: the same recipe as `trainArgs` gives `train`, written
 * as a PyTorch job into `outDir`. The job trains Excitor only, on float weights, without images.
 */
export function exportJobArgs(spec: RunSpec, outDir: string): string[] {
  const args = ["export-job", "--model", spec.model, "--data", spec.data, "--out", outDir];
  const add = (flag: string, v: number | number[] | undefined) => {
    if (v !== undefined) args.push(flag, Array.isArray(v) ? v.join(",") : String(v));
  };
  add("--prompts", spec.prompts);
  add("--rank", spec.rank);
  add("--layers", spec.layers);
  return [...args, ...recipeArgs(spec)];
}

/** The options of a spec's steps, batch, rate and data split, as `train` and `export-job` take them. */
function recipeArgs(spec: RunSpec): string[] {
  const fields: [string, number | undefined][] = [
    ["--epochs", spec.epochs],
    ["--max-steps", spec.maxSteps],
    ["--lr", spec.learningRate],
    ["--batch-size", spec.batchSize],
    ["--max-length", spec.maxLength],
    ["--validation-share", spec.validationShare],
    ["--seed", spec.seed],
  ];
  return fields.flatMap(([flag, v]) => (v === undefined ? [] : [flag, String(v)]));
}

/**
 * Editable fields of a spec, as the custom-hyperparameters form shows them; `methods`: the methods
 * it applies to (unset: every method). Each takes the range of the CLI option it becomes.
 */
export const EDITABLE: { key: keyof RunSpec; label: string; hint: string; rule: NumberRule; optional: boolean; methods?: TuningMethod[] }[] = [
  { key: "prompts", label: "Prompts K", hint: "learnable prompts per adapted layer (empty: by model size)", rule: R.numPrompts, optional: true, methods: ["excitor"] },
  { key: "rank", label: "Rank r", hint: "rank of the Excitor query (empty: by model size)", rule: R.rank, optional: true, methods: ["excitor"] },
  { key: "loraR", label: "LoRA rank r", hint: `rank of each LoRA update (empty: ${LORA_DEFAULTS.r})`, rule: R.loraR, optional: true, methods: ["lora"] },
  { key: "loraAlpha", label: "LoRA alpha", hint: `LoRA scaling numerator; updates are scaled by alpha / r (empty: ${LORA_DEFAULTS.alpha})`, rule: R.loraAlpha, optional: true, methods: ["lora"] },
  { key: "epochs", label: "Epochs", hint: "passes over the training set", rule: R.epochs, optional: false },
  { key: "maxSteps", label: "Max steps", hint: "stop after this many optimizer steps (empty: no limit)", rule: R.maxSteps, optional: true },
  { key: "learningRate", label: "Learning rate", hint: "peak learning rate (empty: the method's default)", rule: R.learningRate, optional: true },
  { key: "batchSize", label: "Batch size", hint: "examples per optimizer step", rule: R.batchSize, optional: false },
  { key: "maxLength", label: "Max length", hint: "tokens per example; longer ones are cut", rule: R.maxLength, optional: false },
  { key: "validationShare", label: "Validation share", hint: `share of examples held out (${R.validationShare.min} to ${R.validationShare.max})`, rule: R.validationShare, optional: false },
  { key: "seed", label: "Seed", hint: "random seed", rule: R.seed, optional: false },
];

/** The fields the form asks for with `method`. */
export const editableFor = (method: TuningMethod): typeof EDITABLE => EDITABLE.filter((f) => !f.methods || f.methods.includes(method));

/**
 * A spec switched to `method`: the other methods' own knobs are dropped (never passed to the
 * CLI), and a learning rate planned for Excitor's few parameters is left to the new method's
 * default (LoRA and full fine-tuning diverge at Excitor's rates).
 */
export function withMethod(spec: RunSpec, method: TuningMethod): RunSpec {
  const was = methodOf(spec);
  const out: RunSpec = { ...spec, method };
  const drop = (...keys: (keyof RunSpec)[]) => keys.forEach((k) => delete out[k]);
  // Image features reach the model through Excitor's prompts: the other methods have nowhere to put them.
  if (method !== "excitor") drop("prompts", "rank", "vision");
  if (method !== "lora") drop("loraR", "loraAlpha", "loraTargets");
  if (method === "full") drop("layers");
  if (method !== was) drop("learningRate");
  return out;
}

/** "q_proj, v_proj" → the LoRA modules; "" → undefined (PEFT's defaults); an error string for bad text. */
export function parseLoraTargets(raw: string): string[] | undefined | string {
  const t = raw.trim();
  if (t === "") return undefined;
  const parts = t.split(/[\s,]+/);
  const known = Object.keys(LORA_MODULES);
  const bad = parts.find((p) => !known.includes(p));
  if (bad !== undefined) return `LoRA targets: "${bad}" is not a LLaMA linear layer (use ${known.join(", ")})`;
  return known.filter((k) => parts.includes(k));
}

/** Why `raw` is not a valid value for the field, or undefined. Empty is valid for optional fields. */
export function checkField(field: (typeof EDITABLE)[number], raw: string): string | undefined {
  const t = raw.trim();
  if (t === "") return field.optional ? undefined : `${field.label} is required`;
  const problem = numberProblem(Number(t), field.rule);
  return problem === undefined ? undefined : `${field.label}: "${raw}" ${problem}`;
}

/** "4,5,6,7" → [4, 5, 6, 7]; "" → undefined (the default layers); an error string for bad text. */
export function parseLayers(raw: string): number[] | undefined | string {
  const t = raw.trim();
  if (t === "") return undefined;
  const parts = t.split(/[\s,]+/);
  const nums = parts.map(Number);
  if (nums.some((n) => !Number.isInteger(n) || n < 0)) return `Layers: "${raw}" is not a list of layer numbers like 4,5,6,7`;
  return nums;
}

/**
 * What "Excitor: Run Demo" runs, as the Runs view shows it: the demo program's own recipe
 * (DEMO_RECIPE, max length 512 cut to the model's context). The demo program does not read this
 * spec; a test compares it with what the program trains.
 */
export function demoSpec(model: string, data: string, maxPositions?: number): RunSpec {
  const r = DEMO_RECIPE;
  return {
    kind: "demo", model, data, prompts: r.numPrompts, rank: r.rank, epochs: r.epochs, batchSize: r.batchSize, learningRate: r.learningRate,
    retainWeight: r.retainWeight, maxLength: Math.min(512, maxPositions ?? 512), validationShare: r.validationShare, seed: 0,
  };
}
