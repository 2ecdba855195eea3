/** The adapter's own config (`adapter_config.json`), per ../shared/docs/excitor-method.md. */
import { ExcitorInputError } from "../errors";
import type { ModelConfig } from "../model/config";
import { readAdapterConfigJson } from "../lora/config";

export interface ExcitorConfig {
  /** K: learnable prompts per adapted layer. */
  numPrompts: number;
  /** r: width of the low-rank Excitor query. */
  rank: number;
  /** 0-based indices of the adapted layers. */
  layers: number[];
  baseModel: string;
  /** Keys this version does not know, kept so that a save round-trips them. */
  extra: Record<string, unknown>;
}

/** The spec's default: every layer for models of 8 layers or fewer, else the top ceil(15/16 · N). */
export function defaultLayers(numLayers: number): number[] {
  const n = numLayers <= 8 ? numLayers : Math.ceil((15 / 16) * numLayers);
  return Array.from({ length: n }, (_, i) => numLayers - n + i);
}

/** The four tensors of one adapted layer. */
export const EXCITOR_PARTS = ["prompts", "down.weight", "up.weight", "gate"] as const;
export type ExcitorPart = (typeof EXCITOR_PARTS)[number];

export function tensorName(layer: number, part: ExcitorPart): string {
  return `base_model.model.model.layers.${layer}.self_attn.excitor.${part}`;
}

export function readExcitorConfig(dir: string): ExcitorConfig {
  const { file, json } = readAdapterConfigJson(dir);
  const fail = (field: string, msg: string): never => {
    throw new ExcitorInputError(`${file}: "${field}" ${msg}`, file);
  };
  if (json.peft_type !== "EXCITOR") fail("peft_type", `is ${JSON.stringify(json.peft_type)}, expected "EXCITOR"`);
  const posInt = (k: string): number => {
    const v = json[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(k, `must be a positive integer (got ${JSON.stringify(v)})`);
    return v as number;
  };
  const layers = json.layers;
  if (!Array.isArray(layers) || !layers.every((l) => Number.isInteger(l) && l >= 0)) fail("layers", "must be a list of 0-based layer indices");
  const { peft_type, task_type, base_model_name_or_path, num_prompts, rank, layers: _l, excitor_version, ...extra } = json;
  void peft_type; void task_type; void num_prompts; void rank; void _l; void excitor_version;
  return {
    numPrompts: posInt("num_prompts"),
    rank: posInt("rank"),
    layers: (layers as number[]).slice(),
    baseModel: String(base_model_name_or_path ?? ""),
    extra,
  };
}

export function excitorConfigJson(c: ExcitorConfig): string {
  return JSON.stringify(
    {
      peft_type: "EXCITOR",
      task_type: "CAUSAL_LM",
      base_model_name_or_path: c.baseModel,
      num_prompts: c.numPrompts,
      rank: c.rank,
      layers: c.layers,
      excitor_version: 1,
      ...c.extra,
    },
    null,
    2,
  ) + "\n";
}

/** Shapes of one adapted layer's tensors for this model. */
export function expectedShapes(m: ModelConfig, c: ExcitorConfig): Record<ExcitorPart, number[]> {
  const cq = m.numHeads * m.headDim;
  return { prompts: [c.numPrompts, cq], "down.weight": [c.rank, m.hiddenSize], "up.weight": [cq, c.rank], gate: [m.numHeads] };
}
