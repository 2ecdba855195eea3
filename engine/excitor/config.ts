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
  /** Present on a multimodal adapter: its image encoder and the feature sizes its projections take. */
  vision?: VisionBlock;
  /** Keys this version does not know, kept so that a save round-trips them. */
  extra: Record<string, unknown>;
}

/** adapter_config.json's `vision` block (spec § Multimodal). */
export interface VisionBlock {
  /** The CLIP vision folder, as written (a relative path is resolved from the adapter folder). */
  encoder: string;
  /** Which encoder layer's output is F: −1 the last, −2 the one before it. */
  featureLayer: number;
  /** Nv, the image tokens (class token + patches). */
  numTokens: number;
  /** Cv, the encoder's width. */
  hiddenSize: number;
}

/** The two projections shared by all adapted layers, spec names. */
export const VISION_TENSORS = { key: "base_model.model.vision.key.weight", value: "base_model.model.vision.value.weight" } as const;

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
  const { peft_type, task_type, base_model_name_or_path, num_prompts, rank, layers: _l, excitor_version, vision, ...extra } = json;
  void peft_type; void task_type; void num_prompts; void rank; void _l; void excitor_version;
  return {
    numPrompts: posInt("num_prompts"),
    rank: posInt("rank"),
    layers: (layers as number[]).slice(),
    baseModel: String(base_model_name_or_path ?? ""),
    ...(vision === undefined ? {} : { vision: readVisionBlock(vision, fail) }),
    extra,
  };
}

function readVisionBlock(v: unknown, fail: (field: string, msg: string) => never): VisionBlock {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail("vision", "must be an object with encoder, feature_layer, num_tokens and hidden_size");
  const o = v as Record<string, unknown>;
  const int = (k: string, ok: (n: number) => boolean, what: string): number => {
    const n = o[k];
    if (typeof n !== "number" || !Number.isInteger(n) || !ok(n)) fail(`vision.${k}`, `must be ${what} (got ${JSON.stringify(n)})`);
    return n as number;
  };
  if (typeof o.encoder !== "string" || o.encoder === "") fail("vision.encoder", `must be the path of a CLIP vision folder (got ${JSON.stringify(o.encoder)})`);
  return {
    encoder: o.encoder as string,
    featureLayer: o.feature_layer === undefined ? -1 : int("feature_layer", (n) => n < 0, "a negative layer index (−1: the last layer)"),
    numTokens: int("num_tokens", (n) => n > 0, "a positive integer"),
    hiddenSize: int("hidden_size", (n) => n > 0, "a positive integer"),
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
      ...(c.vision ? { vision: { encoder: c.vision.encoder, feature_layer: c.vision.featureLayer, num_tokens: c.vision.numTokens, hidden_size: c.vision.hiddenSize } } : {}),
      ...c.extra,
    },
    null,
    2,
  ) + "\n";
}

/** Shapes of the vision projections (both [Cq, Cv]). */
export function visionShape(m: ModelConfig, v: VisionBlock): number[] {
  return [m.numHeads * m.headDim, v.hiddenSize];
}

/** Shapes of one adapted layer's tensors for this model. */
export function expectedShapes(m: ModelConfig, c: ExcitorConfig): Record<ExcitorPart, number[]> {
  const cq = m.numHeads * m.headDim;
  return { prompts: [c.numPrompts, cq], "down.weight": [c.rank, m.hiddenSize], "up.weight": [cq, c.rank], gate: [m.numHeads] };
}
