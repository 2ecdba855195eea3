/**
 * Which runs `excitor compare` makes: Excitor, LoRA as PEFT configures it (r 8 on q_proj and
 * v_proj), LoRA at Excitor's trainable-parameter count, and full fine-tuning, each at three
 * learning rates. Every run sees the same data, steps and seed; only the method and its rate
 * differ. The rates are a grid of the same shape for every method (three values a factor of
 * √10 apart), centred where each method trains well on small models: the two low-rank
 * adapters share one grid, and full fine-tuning, which moves every weight, sits a decade lower.
 * The best rate of each method is picked on the validation loss of the training data, never on
 * the held-out answers or on retention.
 */
import type { TuningMethod } from "../adapters";
import { LORA_DEFAULTS, moduleShape, type LoraModule } from "../lora/config";
import type { ModelConfig } from "../model/config";

export interface CompareRun {
  /** "excitor", "lora", "lora-matched" or "full": runs of one family share a sweep. */
  family: string;
  method: TuningMethod;
  /** One line a reader can reproduce it from, e.g. "r 8, alpha 16, q_proj,v_proj · lr 1e-2". */
  config: string;
  learningRate: number;
  lora?: { r: number; alpha: number; targets: LoraModule[] };
}

/** Three rates, a factor of √10 apart, around `centre`. */
export function rateGrid(centre: number): number[] {
  const s = Math.sqrt(10);
  return [centre / s, centre, centre * s].map((x) => Number(x.toPrecision(2)));
}

export const RATE_CENTRES = { adapter: 1e-2, full: 1e-3 } as const;

/** LoRA rank on q_proj and v_proj whose trainable parameters come closest to `params`. */
export function matchedLoraRank(model: ModelConfig, params: number): number {
  const perRank = LORA_DEFAULTS.targets.reduce((n, m) => n + moduleShape(model, m).reduce((a, b) => a + b, 0), 0) * model.numLayers;
  return Math.max(1, Math.round(params / perRank));
}

export function comparePlan(model: ModelConfig, excitor: { config: string; parameters: number }): CompareRun[] {
  const fmt = (lr: number) => `lr ${lr.toExponential(1)}`;
  const runs: CompareRun[] = [];
  for (const lr of rateGrid(RATE_CENTRES.adapter)) runs.push({ family: "excitor", method: "excitor", config: `${excitor.config} · ${fmt(lr)}`, learningRate: lr });
  const lora = (family: string, r: number) => {
    // PEFT's default scaling alpha/r = 2 (alpha 16 at r 8), kept at every rank.
    const alpha = 2 * r;
    for (const lr of rateGrid(RATE_CENTRES.adapter))
      runs.push({ family, method: "lora", config: `r ${r}, alpha ${alpha}, ${LORA_DEFAULTS.targets.join(",")} · ${fmt(lr)}`, learningRate: lr, lora: { r, alpha, targets: [...LORA_DEFAULTS.targets] } });
  };
  lora("lora", LORA_DEFAULTS.r);
  const matched = matchedLoraRank(model, excitor.parameters);
  if (matched !== LORA_DEFAULTS.r) lora("lora-matched", matched);
  for (const lr of rateGrid(RATE_CENTRES.full)) runs.push({ family: "full", method: "full", config: `every weight · ${fmt(lr)}`, learningRate: lr });
  return runs;
}
