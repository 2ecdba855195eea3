/**
 * What a training run is asked to do, and the presets the "Train Adapter…" command offers.
 * A run's spec is saved with it (run.json), so that Resume continues with the same settings.
 */
import { presetRecipe, type PresetName } from "../engine/train/recipe";
import type { TrainDefaults } from "./settings";

export interface RunSpec {
  /** "demo": the built-in demo program (demo/run.js), which also writes a before/after report. */
  kind: "train" | "demo";
  model: string;
  data: string;
  /** Unset fields take the engine's defaults from the method spec. */
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
  /** How a preset chose these numbers, in one line (shown in the wizard and the training panel). */
  recipe?: string;
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

/** "336 steps of 16, learning rate 2.7e-2, K 30, r 16": what a spec will run, in one line. */
export function recipeSummary(spec: RunSpec, trainExamples: number): string {
  const perEpoch = Math.max(1, Math.ceil(trainExamples / spec.batchSize));
  const steps = Math.min(spec.maxSteps ?? Infinity, spec.epochs * perEpoch);
  const lr = spec.learningRate === undefined ? "the method's learning rate" : `learning rate ${spec.learningRate}`;
  return `${steps} steps of ${spec.batchSize} (${spec.epochs} epoch${spec.epochs === 1 ? "" : "s"}), ${lr}, K ${spec.prompts ?? "by size"}, r ${spec.rank ?? "by size"}`;
}

/** The `excitor train` arguments for a spec. */
export function trainArgs(spec: RunSpec, outDir: string, resume: boolean, backend: string): string[] {
  const args = ["--backend", backend, "train", "--json", "--stdin-control", "--model", spec.model, "--data", spec.data, "--out", outDir];
  const add = (flag: string, v: number | number[] | undefined) => {
    if (v !== undefined) args.push(flag, Array.isArray(v) ? v.join(",") : String(v));
  };
  add("--prompts", spec.prompts);
  add("--rank", spec.rank);
  add("--layers", spec.layers);
  add("--epochs", spec.epochs);
  add("--max-steps", spec.maxSteps);
  add("--lr", spec.learningRate);
  add("--batch-size", spec.batchSize);
  add("--max-length", spec.maxLength);
  add("--validation-share", spec.validationShare);
  add("--seed", spec.seed);
  if (resume) args.push("--resume");
  return args;
}

/** Editable fields of a spec, as the custom-hyperparameters form shows them. */
export const EDITABLE: { key: keyof RunSpec; label: string; hint: string; integer: boolean; min: number; max: number; optional: boolean }[] = [
  { key: "prompts", label: "Prompts K", hint: "learnable prompts per adapted layer (empty: by model size)", integer: true, min: 1, max: 1024, optional: true },
  { key: "rank", label: "Rank r", hint: "rank of the Excitor query (empty: by model size)", integer: true, min: 1, max: 1024, optional: true },
  { key: "epochs", label: "Epochs", hint: "passes over the training set", integer: true, min: 1, max: 1000, optional: false },
  { key: "maxSteps", label: "Max steps", hint: "stop after this many optimizer steps (empty: no limit)", integer: true, min: 1, max: 10_000_000, optional: true },
  { key: "learningRate", label: "Learning rate", hint: "peak learning rate (empty: 9e-3 × batch / 256)", integer: false, min: 1e-8, max: 1, optional: true },
  { key: "batchSize", label: "Batch size", hint: "examples per optimizer step", integer: true, min: 1, max: 4096, optional: false },
  { key: "maxLength", label: "Max length", hint: "tokens per example; longer ones are cut", integer: true, min: 2, max: 131072, optional: false },
  { key: "validationShare", label: "Validation share", hint: "share of examples held out (0 to 0.99)", integer: false, min: 0, max: 0.99, optional: false },
  { key: "seed", label: "Seed", hint: "random seed", integer: true, min: 0, max: 2 ** 31 - 1, optional: false },
];

/** Why `raw` is not a valid value for the field, or undefined. Empty is valid for optional fields. */
export function checkField(field: (typeof EDITABLE)[number], raw: string): string | undefined {
  const t = raw.trim();
  if (t === "") return field.optional ? undefined : `${field.label} is required`;
  const n = Number(t);
  if (!Number.isFinite(n)) return `${field.label}: "${raw}" is not a number`;
  if (field.integer && !Number.isInteger(n)) return `${field.label}: "${raw}" is not a whole number`;
  if (n < field.min || n > field.max) return `${field.label}: must be from ${field.min} to ${field.max}`;
  return undefined;
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
 * (demo/run.ts: 6 epochs of batch 16 at 3e-2, K=30, r=16, max length 512 cut to the model's
 * context). The demo program does not read it; a test compares it with what the program trains.
 */
export function demoSpec(model: string, data: string, maxPositions?: number): RunSpec {
  return { kind: "demo", model, data, prompts: 30, rank: 16, epochs: 6, batchSize: 16, learningRate: 3e-2, maxLength: Math.min(512, maxPositions ?? 512), validationShare: 0.05, seed: 0 };
}
