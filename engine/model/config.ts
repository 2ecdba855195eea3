/**
 * The model's shape, read from a Hugging Face `config.json` of the LLaMA family.
 * Field names follow meta-llama's ModelArgs; each maps to one config.json key.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { readJsonObject, type JsonObject } from "../json-file";

export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"] as const;
/** config.json's `model_type` of those architectures; another one is a model they would misread. */
export const SUPPORTED_MODEL_TYPES = ["llama", "mistral", "qwen2"] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export type RopeScaling =
  | { type: "linear"; factor: number }
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  /** One divisor per frequency, as GGUF files carry Llama 3's scaling (llama.cpp's rope_freqs tensor). */
  | { type: "factors"; factors: number[] };

export interface ModelConfig {
  architecture: Architecture;
  /** C: hidden size. */
  hiddenSize: number;
  /** MLP inner width. */
  intermediateSize: number;
  /** N: transformer blocks. */
  numLayers: number;
  /** H: query heads. */
  numHeads: number;
  /** Hkv: key/value heads; < H is grouped-query attention, 1 is multi-query. */
  numKvHeads: number;
  /** d: width of one head (`head_dim`, default C/H). */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  maxPositions: number;
  /** lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2 always; LLaMA when `attention_bias`). */
  qkvBias: boolean;
  /** o_proj carries a bias (LLaMA `attention_bias`). */
  oBias: boolean;
  /** Mistral's sliding-window attention: a token sees at most this many positions back, itself included. */
  slidingWindow?: number;
  bosTokenId?: number;
  eosTokenIds: number[];
}

type Json = JsonObject;

/** The longest context a config may declare (2^24 tokens; the longest models of 2026 hold 10M). */
export const MAX_CONTEXT = 1 << 24;

export function readModelConfig(dir: string): ModelConfig {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ExcitorInputError(`${dir}: model folder not found`, dir);
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found; a model folder needs a Hugging Face config.json`, file);
  return parseModelConfig(readJsonObject(file), file);
}

export function parseModelConfig(json: Json, file = "config.json"): ModelConfig {
  const fail = (field: string, msg: string): never => {
    throw new ExcitorInputError(`${file}: "${field}" ${msg}`, file);
  };
  const archs = json.architectures;
  const arch = Array.isArray(archs) ? String(archs[0]) : undefined;
  if (!arch) fail("architectures", `is missing; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch!))
    fail("architectures", `names ${arch}, which Excitor does not support; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  if (json.model_type !== undefined && !(SUPPORTED_MODEL_TYPES as readonly unknown[]).includes(json.model_type))
    fail("model_type", `is ${JSON.stringify(json.model_type)}, which Excitor does not support; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`);
  const int = (key: string, dflt?: number): number => {
    const v = json[key] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(key, `must be a positive integer (got ${JSON.stringify(json[key])})`);
    return v as number;
  };
  const num = (key: string, dflt: number): number => {
    const v = json[key] ?? dflt;
    if (typeof v !== "number" || !(v > 0)) fail(key, `must be a positive number (got ${JSON.stringify(json[key])})`);
    return v as number;
  };
  const act = json.hidden_act ?? "silu";
  if (act !== "silu") fail("hidden_act", `is "${act}"; only "silu" (SwiGLU) is supported`);

  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) fail("num_key_value_heads", `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = json.head_dim == null ? hiddenSize / numHeads : int("head_dim");
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) fail("head_dim", `must be an even integer (got ${headDim})`);

  const attentionBias = json.attention_bias === true;
  const isQwen2 = arch === "Qwen2ForCausalLM";
  const maxPositions = int("max_position_embeddings", 2048);
  // Tables sized by the context (RoPE, masks) would ask for absurd memory; no model reaches this.
  if (maxPositions > MAX_CONTEXT) fail("max_position_embeddings", `is ${maxPositions}; at most ${MAX_CONTEXT} tokens are supported`);
  let slidingWindow: number | undefined;
  const useSliding = arch === "MistralForCausalLM" || (isQwen2 && json.use_sliding_window === true);
  if (useSliding && typeof json.sliding_window === "number" && json.sliding_window < maxPositions) slidingWindow = json.sliding_window;

  const eos = json.eos_token_id;
  return {
    architecture: arch as Architecture,
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int("vocab_size"),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", 10000),
    ropeScaling: parseRopeScaling(json.rope_scaling, fail),
    maxPositions,
    tieWordEmbeddings: json.tie_word_embeddings === true,
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    slidingWindow,
    bosTokenId: typeof json.bos_token_id === "number" ? json.bos_token_id : undefined,
    eosTokenIds: typeof eos === "number" ? [eos] : Array.isArray(eos) ? eos.filter((x): x is number => typeof x === "number") : [],
  };
}

function parseRopeScaling(v: unknown, fail: (field: string, msg: string) => never): RopeScaling | undefined {
  if (v == null) return undefined;
  if (typeof v !== "object") fail("rope_scaling", "must be an object or null");
  const s = v as Json;
  const type = String(s.rope_type ?? s.type ?? "default");
  if (type === "default") return undefined;
  const factor = Number(s.factor);
  if (!(factor > 0)) fail("rope_scaling.factor", "must be a positive number");
  if (type === "linear") return { type, factor };
  if (type === "llama3")
    return {
      type,
      factor,
      lowFreqFactor: Number(s.low_freq_factor ?? 1),
      highFreqFactor: Number(s.high_freq_factor ?? 4),
      originalMaxPositions: Number(s.original_max_position_embeddings ?? 8192),
    };
  return fail("rope_scaling.rope_type", `"${type}" is not supported; supported: default, linear, llama3`);
}

/** Parameters of the base model (embeddings and lm_head counted once when tied). */
export function countBaseParameters(c: ModelConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attn = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + (c.qkvBias ? q + 2 * kv : 0) + (c.oBias ? c.hiddenSize : 0);
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const layer = attn + mlp + 2 * c.hiddenSize;
  const emb = c.vocabSize * c.hiddenSize;
  return c.numLayers * layer + emb + c.hiddenSize + (c.tieWordEmbeddings ? 0 : emb);
}
